"""A model that watches its own predictions for drift and relearns faster when it finds one.

:class:`DriftAdaptive` wraps a river classifier (a pipeline of :mod:`app.learners.pipelines`).
Everything happens inside ``learn_one``, so river's own ``progressive_val_score`` over the
wrapped model runs exactly what the learner service runs (parity holds with the recovery on):

1. the prediction the model made for ``x`` just before (``predict_proba_one``, cached; computed
   again if ``x`` is another object or the model learned since — the same number either way)
   goes with the label to a :class:`~app.learners.drift.DriftMonitor`;
2. on a detection, :attr:`drift_event` is set for the caller to publish, and the recovery action
   runs: every AdaGrad accumulator of squared gradients in the model is multiplied by ``boost``
   (default 0.1), so each feature's step size goes back up (by 1/sqrt(0.1) = 3.2x for a weight
   that had slowed down) and the model relearns what the drift changed. AdaGrad's steps shrink
   as evidence accumulates, which is right for a fixed concept and too slow after a change; the
   boost undoes that shrinkage once per detection, and the model keeps learning as before;
3. the model learns ``(x, y)``.

>>> import random
>>> from river import linear_model, optim
>>> model = DriftAdaptive(linear_model.LogisticRegression(optim.AdaGrad(0.1)), DriftMonitor(warmup=200))
>>> rng, events = random.Random(1), []
>>> for i in range(4000):
...     x = {"a": rng.random() - 0.5}
...     y = (x["a"] > 0) if i < 2000 else (x["a"] < 0)   # the concept flips at 2,000
...     p = model.predict_proba_one(x)
...     model.learn_one(x, y)
...     if model.drift_event:
...         events.append(model.drift_event)
>>> [(e.index, e.signal, e.direction) for e in events], model.boosts
([(2023, 'surprise', 'up')], 1)
"""

from __future__ import annotations

from river import base

from app.learners.drift import DriftEvent, DriftMonitor

__all__ = ["DriftAdaptive"]


class DriftAdaptive(base.Wrapper, base.Classifier):
    """Wraps ``model``; detects drift on its prequential predictions; boosts learning on drift.

    Parameters
    ----------
    model
        A river classifier (``predict_proba_one`` / ``learn_one``).
    monitor
        The detector (default :class:`~app.learners.drift.DriftMonitor` with its defaults).
    boost
        Factor applied to AdaGrad's accumulated squared gradients on each detection (1 = no
        action: detection and publishing only).
    """

    def __init__(self, model: base.Classifier, monitor: DriftMonitor | None = None, boost: float = 0.1) -> None:
        self.model = model
        self.monitor = monitor if monitor is not None else DriftMonitor()
        self.boost = boost
        self.n = 0  # examples learned
        self.boosts = 0  # recovery actions taken
        self.drift_event: DriftEvent | None = None  # set by the learn_one that detected a drift
        self._last_x: dict | None = None
        self._last_p: dict | None = None

    @property
    def _wrapped_model(self):
        return self.model

    @property
    def _multiclass(self) -> bool:
        return False

    def __getitem__(self, key):
        return self.model[key]  # pipeline steps by name, as on the plain pipeline

    @property
    def steps(self):
        return self.model.steps

    def predict_proba_one(self, x: dict) -> dict:
        p = self.model.predict_proba_one(x)
        self._last_x, self._last_p = x, p
        return p

    def learn_one(self, x: dict, y: bool) -> None:
        p = self._last_p if x is self._last_x else self.model.predict_proba_one(x)
        self._last_x = self._last_p = None
        event = self.monitor.update(y, p.get(True, 0.0), self.n)
        self.drift_event = event
        if event is not None and self.boost != 1.0:
            self._boost()
        self.n += 1
        self.model.learn_one(x, y)

    def _boost(self) -> None:
        self.boosts += 1
        steps = self.model.steps.values() if hasattr(self.model, "steps") else [self.model]
        for step in steps:
            for name in ("optimizer", "weight_optimizer", "latent_optimizer"):
                g2 = getattr(getattr(step, name, None), "g2", None)
                if g2 is not None:
                    factor = self.boost
                    for k in g2:
                        g2[k] = g2[k] * factor

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_last_x"] = state["_last_p"] = None  # a cache, not state
        return state
