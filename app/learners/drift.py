"""Concept-drift detection on the model's per-example log loss (ADWIN).

The learner feeds every prequential prediction's log loss to :class:`LossDriftMonitor`; when
ADWIN finds that the recent mean loss differs from the older part of its window, the monitor
returns a :class:`DriftEvent` (which example, at which watermark, the loss before and after),
which the learner publishes to ``metrics.v1``. By default only increases of the loss are
reported: a loss that falls while the model learns is not worth an alert.

>>> import random
>>> rng = random.Random(7)
>>> monitor = LossDriftMonitor()
>>> events = []
>>> for i in range(4000):
...     p = 0.9 if i < 2000 else 0.1          # the model is right, then suddenly wrong
...     y = rng.random() < 0.9
...     e = monitor.update(y, p, index=i, watermark=1_000 * i)
...     if e:
...         events.append(e)
>>> first = events[0]
>>> 2000 <= first.index < 2100, first.loss_after > first.loss_before
(True, True)
>>> first.to_dict()["type"]
'drift'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from river import drift

__all__ = ["DriftEvent", "LossDriftMonitor", "log_loss_one"]

_EPS = 1e-15


def log_loss_one(y_true: bool, p_true: float) -> float:
    """Log loss of one prediction, clamped as river's ``LogLoss`` does.

    >>> round(log_loss_one(True, 0.5), 6), round(log_loss_one(False, 1.0), 3)
    (0.693147, 34.54)
    """
    p = _EPS if p_true < _EPS else 1.0 - _EPS if p_true > 1.0 - _EPS else p_true
    return -math.log(p) if y_true else -math.log(1.0 - p)


@dataclass(frozen=True)
class DriftEvent:
    """One detected change of the loss."""

    index: int  # number of examples seen before the one that triggered detection
    watermark: int | None  # the learner's event-time watermark (ms) at detection
    loss_before: float  # mean loss over ADWIN's whole window just before the cut
    loss_after: float  # mean loss over the recent part ADWIN kept
    window: int  # examples in the recent part
    detections: int  # detections so far, this one included

    def to_dict(self) -> dict:
        return {"type": "drift", **asdict(self)}


class LossDriftMonitor:
    """ADWIN over the per-example log loss.

    Parameters
    ----------
    delta
        ADWIN's confidence parameter: smaller = fewer false alarms, slower detection.
    increases_only
        Report only changes where the recent loss is higher than before.
    grace_period
        Examples ADWIN sees before it may detect anything.
    """

    def __init__(self, delta: float = 0.002, increases_only: bool = True, grace_period: int = 1000) -> None:
        self.delta = delta
        self.increases_only = increases_only
        self.grace_period = grace_period
        self.detector = drift.ADWIN(delta=delta, grace_period=grace_period)
        self.detections = 0

    def update(self, y_true: bool, p_true: float, index: int, watermark: int | None = None) -> DriftEvent | None:
        """Feed one prediction (probability of the positive class); return an event on drift."""
        loss = log_loss_one(y_true, p_true)
        detector = self.detector
        before = detector.estimation
        detector.update(loss)
        if not detector.drift_detected:
            return None
        after = detector.estimation
        if self.increases_only and after <= before:
            return None
        self.detections += 1
        return DriftEvent(index, watermark, before, after, detector.width, self.detections)
