"""Prequential (predict-then-learn) evaluation whose numbers equal river's own
:func:`river.evaluate.progressive_val_score` on the same rows in the same order.

For every example: predict the class probabilities, update every metric with them (metrics that
need labels get the arg-max label, exactly as river's ``metrics.base.Metrics`` container does),
then learn. The metric objects are river metrics, so their state is the same and they pickle:
the learner puts a :class:`Prequential` inside every model artifact, and metrics after a restart
equal those of a fault-free run.

>>> from river import datasets, evaluate
>>> from app.learners.pipelines import build
>>> preq = Prequential().run(build("logreg"), datasets.Phishing())
>>> preq
Prequential(n=1250, log_loss=0.267981, roc_auc=0.959403, accuracy=0.894400, ece=0.049925)

The same numbers as river's own loop, to the last bit:

>>> theirs = evaluate.progressive_val_score(
...     datasets.Phishing(), build("logreg"), rm.base.Metrics(default_metrics()))
>>> [m.get() for m in theirs] == list(preq.get().values())
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from river import metrics as rm

from app.learners.auc import BinnedROCAUC
from app.learners.calibration import ExpectedCalibrationError

__all__ = ["Prequential", "default_metrics", "metric_name"]

_NAMES = {"LogLoss": "log_loss", "ROCAUC": "roc_auc", "BinnedROCAUC": "roc_auc", "ExpectedCalibrationError": "ece"}


def default_metrics() -> list[rm.base.Metric]:
    """Log loss, ROC AUC (1,000 bins), accuracy and expected calibration error (10 bins).

    All update in O(1) (river's own ``ROCAUC`` costs a confusion matrix per threshold).
    """
    return [rm.LogLoss(), BinnedROCAUC(n_bins=1000), rm.Accuracy(), ExpectedCalibrationError(n_bins=10)]


def metric_name(metric: rm.base.Metric) -> str:
    """Snake-case report name of a metric.

    >>> metric_name(rm.LogLoss()), metric_name(rm.MacroF1())
    ('log_loss', 'macro_f1')
    """
    cls = metric.__class__.__name__
    return _NAMES.get(cls) or re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls).lower()


class Prequential:
    """Predict-then-learn evaluator over river metrics.

    Parameters
    ----------
    metrics
        River classification metrics (a list, or a river ``Metrics`` container such as
        ``LogLoss() + Accuracy()``); default :func:`default_metrics`. They are updated in place,
        so passing the same objects to ``progressive_val_score`` elsewhere is a fair comparison
        only with fresh copies (``metric.clone()``).
    """

    def __init__(self, metrics: Iterable[rm.base.Metric] | None = None) -> None:
        self.metrics = list(metrics) if metrics is not None else default_metrics()
        self.n = 0
        names = [metric_name(m) for m in self.metrics]
        self.names = [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]
        self._index()

    def _index(self) -> None:
        self._by_proba = [m.update for m in self.metrics if not m.requires_labels]
        self._by_label = [m.update for m in self.metrics if m.requires_labels]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_by_proba"], state["_by_label"]  # bound methods: rebuilt on load
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._index()

    def update(self, y_true, y_pred) -> None:
        """Update the metrics with one prediction (class probabilities, as ``predict_proba_one``).

        An empty or ``None`` prediction is not scored (as in river); it is still counted in
        :attr:`n`, which counts the examples seen.
        """
        self.n += 1
        if not y_pred:
            return
        for update in self._by_proba:
            update(y_true, y_pred)
        if self._by_label:
            label = max(y_pred, key=y_pred.get)
            for update in self._by_label:
                update(y_true, label)

    def step(self, model, x: dict, y) -> dict:
        """Predict ``x``, score the prediction against ``y``, then learn ``(x, y)``; return it."""
        y_pred = model.predict_proba_one(x)
        self.update(y, y_pred)
        model.learn_one(x, y)
        return y_pred

    def run(self, model, dataset: Iterable[tuple[dict, object]]) -> Prequential:
        """:meth:`step` over every ``(x, y)`` of ``dataset``."""
        for x, y in dataset:
            self.step(model, x, y)
        return self

    def get(self) -> dict[str, float]:
        """Current value of every metric, by report name."""
        return {name: float(m.get()) for name, m in zip(self.names, self.metrics)}

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v:.6f}" for k, v in self.get().items())
        return f"Prequential(n={self.n}, {values})"
