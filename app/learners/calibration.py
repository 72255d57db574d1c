"""Expected calibration error (ECE) as a river metric, so river's own ``progressive_val_score``
and our :class:`~app.learners.prequential.Prequential` compute it the same way.

Predictions are put in ``n_bins`` equal-width bins of the predicted probability of the positive
class; ECE is the example-weighted mean over bins of ``|mean predicted p - observed rate|``.
0 is perfectly calibrated; smaller is better.

>>> ece = ExpectedCalibrationError(n_bins=10)
>>> for y, p in [(True, 0.9), (False, 0.1), (True, 0.8), (False, 0.85)]:
...     ece.update(y, {False: 1 - p, True: p})
>>> round(ece.get(), 4)  # (|1 - .9| + |0 - .1| + |1 - 1.65|) / 4
0.2125
>>> [(round(p, 3), round(r, 3), n) for p, r, n in ece.reliability()]
[(0.1, 0.0, 1), (0.825, 0.5, 2), (0.9, 1.0, 1)]
>>> ece.revert(False, {False: 0.15, True: 0.85})
>>> round(ece.get(), 4)
0.1333

It works with river's machinery (composition, ``works_with``, progressive validation):

>>> from river import metrics
>>> metrics.LogLoss() + ExpectedCalibrationError()
LogLoss: 0.
ExpectedCalibrationError: 0.
"""

from __future__ import annotations

from river import base, metrics

__all__ = ["ExpectedCalibrationError"]


class ExpectedCalibrationError(metrics.base.BinaryMetric):
    """ECE over ``n_bins`` equal-width probability bins (binary classification)."""

    _fmt = ""

    def __init__(self, n_bins: int = 10, pos_val=True):
        super().__init__(pos_val=pos_val)
        self.n_bins = n_bins
        self._w = [0.0] * n_bins  # total weight per bin
        self._p = [0.0] * n_bins  # sum of predicted probabilities per bin
        self._y = [0.0] * n_bins  # sum of positive outcomes per bin
        self._total = 0.0

    @property
    def bigger_is_better(self) -> bool:
        return False

    @property
    def requires_labels(self) -> bool:
        return False

    def works_with(self, model) -> bool:
        return isinstance(model, base.Classifier)

    def _add(self, y_true, y_pred, w: float) -> None:
        p = y_pred.get(self.pos_val, 0.0) if isinstance(y_pred, dict) else y_pred
        p = 0.0 if p < 0.0 else 1.0 if p > 1.0 else p
        b = int(p * self.n_bins)
        if b == self.n_bins:
            b -= 1
        self._w[b] += w
        self._p[b] += w * p
        if y_true == self.pos_val:
            self._y[b] += w
        self._total += w

    def update(self, y_true, y_pred, w=1.0) -> None:
        self._add(y_true, y_pred, w)

    def revert(self, y_true, y_pred, w=1.0) -> None:
        self._add(y_true, y_pred, -w)

    def get(self) -> float:
        if self._total <= 0.0:
            return 0.0
        return sum(abs(y - p) for y, p in zip(self._y, self._p)) / self._total

    def reliability(self) -> list[tuple[float, float, float]]:
        """The reliability diagram: ``(mean predicted p, observed rate, weight)`` per non-empty bin."""
        return [
            (p / w, y / w, w if w != int(w) else int(w))
            for w, p, y in zip(self._w, self._p, self._y)
            if w > 0.0
        ]
