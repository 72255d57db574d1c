"""ROC AUC with O(1) updates, as a river metric.

river's :class:`~river.metrics.ROCAUC` updates one confusion matrix per threshold on every
example (about 3 µs at its default 10 thresholds, 17 µs at 50): too slow for a learner that
must handle tens of thousands of examples per second, and coarse at 10. :class:`BinnedROCAUC`
counts positives and negatives per probability bin (one increment per update) and computes
the AUC from the two histograms on :meth:`~BinnedROCAUC.get`, counting pairs that share a bin
as ties (half). With 1,000 bins it is within about 1e-3 of the exact AUC for spread-out scores.

>>> from river import metrics
>>> y_true = [0, 0, 1, 1]
>>> y_pred = [.1, .4, .35, .8]
>>> auc = BinnedROCAUC()
>>> for yt, yp in zip(y_true, y_pred):
...     auc.update(yt, yp)
>>> auc
BinnedROCAUC: 75.00%
>>> auc.revert(0, .4)
>>> auc.get()
1.0

Ties count half; an empty or one-class stream gives 0.5 (no information), not an error:

>>> tied = BinnedROCAUC()
>>> tied.update(True, 0.3); tied.update(False, 0.3)
>>> tied.get(), BinnedROCAUC().get()
(0.5, 0.5)
"""

from __future__ import annotations

from river import base, metrics

__all__ = ["BinnedROCAUC"]


class BinnedROCAUC(metrics.base.BinaryMetric):
    """Area under the ROC curve from ``n_bins`` equal-width bins of the positive-class probability."""

    _fmt = ".2%"

    def __init__(self, n_bins: int = 1000, pos_val=True):
        super().__init__(pos_val=pos_val)
        self.n_bins = n_bins
        self._pos = [0.0] * n_bins
        self._neg = [0.0] * n_bins

    @property
    def bigger_is_better(self) -> bool:
        return True

    @property
    def requires_labels(self) -> bool:
        return False

    def works_with(self, model) -> bool:
        return isinstance(model, base.Classifier)

    def _add(self, y_true, y_pred, w: float) -> None:
        p = y_pred.get(self.pos_val, 0.0) if isinstance(y_pred, dict) else y_pred
        b = int(p * self.n_bins)
        if b >= self.n_bins:
            b = self.n_bins - 1
        elif b < 0:
            b = 0
        if y_true == self.pos_val:
            self._pos[b] += w
        else:
            self._neg[b] += w

    def update(self, y_true, y_pred, w=1.0) -> None:
        self._add(y_true, y_pred, w)

    def revert(self, y_true, y_pred, w=1.0) -> None:
        self._add(y_true, y_pred, -w)

    def get(self) -> float:
        neg_below = 0.0
        area = 0.0
        for pos, neg in zip(self._pos, self._neg):
            area += pos * (neg_below + 0.5 * neg)
            neg_below += neg
        total_pos = sum(self._pos)
        if total_pos <= 0.0 or neg_below <= 0.0:
            return 0.5
        return area / (total_pos * neg_below)
