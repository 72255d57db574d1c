"""Concept-drift detection on a model's own prequential predictions (ADWIN on two signals).

For every example the model predicted ``p`` before it learned the label ``y``. Two signals of
that pair have mean 0 while the model is calibrated, *whatever the click rate or how hard the
data is*, so their changes mean the model went stale, not that the traffic changed:

* ``surprise`` = log loss(y, p) − H(p), the loss minus the loss the model itself expects
  (H = binary entropy). It rises when the model is confidently wrong (the concept changed: what
  it learned no longer holds). Only rises are reported: it falls when a model learns or
  recovers. The raw loss cannot tell a stale model from harder data: it rises every evening
  when more people click, and it *falls* after a drift that lowers the click rate.
* ``residual`` = y − p: the click rate moved away from the predictions, **either direction**
  (``direction`` = ``"up"`` or ``"down"``).

Each signal has its own ADWIN; a change is reported as a :class:`DriftEvent`, which the learner
publishes to ``metrics.v1``.
The first ``warmup`` examples are not fed to the detectors: a fresh model's loss falls while it
learns, which is not drift.

>>> import random
>>> rng = random.Random(7)
>>> monitor = DriftMonitor(warmup=500)
>>> events = []
>>> for i in range(6000):
...     q = 0.1 if i < 3000 else 0.3          # the true click rate triples at 3,000 ...
...     e = monitor.update(rng.random() < q, 0.1, index=i)   # ... and the model keeps saying 0.1
...     if e:
...         events.append(e)
>>> first = events[0]
>>> 3000 <= first.index < 3400, first.direction, first.signal
(True, 'up', 'surprise')
>>> first.to_dict()["type"]
'drift'

A click rate that falls under the predictions is found by the residual:

>>> monitor, events = DriftMonitor(warmup=500), []
>>> for i in range(6000):
...     e = monitor.update(rng.random() < (0.3 if i < 3000 else 0.1), 0.3, index=i)
...     if e:
...         events.append(e)
>>> [(e.signal, e.direction) for e in events][:1], 3000 <= events[0].index < 3400
([('residual', 'down')], True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from river import drift

__all__ = ["DriftEvent", "DriftMonitor", "log_loss_one", "entropy_one"]

_EPS = 1e-15
SIGNALS = ("surprise", "residual")
#: Directions of change reported per signal.
REPORTED = {"surprise": ("up",), "residual": ("up", "down")}


def log_loss_one(y_true: bool, p_true: float) -> float:
    """Log loss of one prediction, clamped as river's ``LogLoss`` does.

    >>> round(log_loss_one(True, 0.5), 6), round(log_loss_one(False, 1.0), 3)
    (0.693147, 34.54)
    """
    p = _EPS if p_true < _EPS else 1.0 - _EPS if p_true > 1.0 - _EPS else p_true
    return -math.log(p) if y_true else -math.log(1.0 - p)


def entropy_one(p: float) -> float:
    """Expected log loss of a calibrated prediction ``p`` (binary entropy, nats).

    >>> round(entropy_one(0.5), 6), entropy_one(0.0)
    (0.693147, 0.0)
    """
    if p <= _EPS or p >= 1.0 - _EPS:
        return 0.0
    return -(p * math.log(p) + (1.0 - p) * math.log(1.0 - p))


@dataclass(frozen=True)
class DriftEvent:
    """One detected change of a signal."""

    index: int  # number of examples seen before the one that triggered detection
    watermark: int | None  # the learner's event-time watermark (ms) at detection
    signal: str  # "surprise" | "residual"
    direction: str  # "up" | "down"
    before: float  # mean of the signal over ADWIN's whole window just before the cut
    after: float  # mean of the signal over the recent part ADWIN kept
    window: int  # examples in the recent part
    detections: int  # detections so far (both signals), this one included

    def to_dict(self) -> dict:
        return {"type": "drift", **asdict(self)}

    def at(self, watermark: int | None) -> DriftEvent:
        return replace(self, watermark=watermark)


class DriftMonitor:
    """ADWIN on the surprise and on the residual of each prediction; both directions.

    Parameters
    ----------
    delta
        ADWIN's confidence parameter: smaller = fewer false alarms, slower detection.
    warmup
        Examples ignored at the start (a fresh model's loss falls as it learns).
    grace_period
        Examples ADWIN sees before it may detect anything.
    signals
        Which signals to watch (default both).
    """

    def __init__(
        self, delta: float = 0.002, warmup: int = 2_000, grace_period: int = 1_000, signals: tuple = SIGNALS
    ) -> None:
        unknown = set(signals) - set(SIGNALS)
        if unknown or not signals:
            raise ValueError(f"signals must be a non-empty subset of {SIGNALS}")
        self.delta = delta
        self.warmup = warmup
        self.grace_period = grace_period
        self.signals = tuple(signals)
        self.detectors = {s: drift.ADWIN(delta=delta, grace_period=grace_period) for s in self.signals}
        self.seen = 0
        self.detections = 0

    def update(self, y_true: bool, p_true: float, index: int, watermark: int | None = None) -> DriftEvent | None:
        """Feed one prediction (probability of the positive class); return an event on drift."""
        self.seen += 1
        if self.seen <= self.warmup:
            return None
        found = None
        for name, detector in self.detectors.items():
            if name == "surprise":
                value = log_loss_one(y_true, p_true) - entropy_one(p_true)
            else:
                value = (1.0 if y_true else 0.0) - p_true
            before = detector.estimation
            detector.update(value)
            if detector.drift_detected and found is None:
                after = detector.estimation
                direction = "up" if after > before else "down"
                if direction not in REPORTED[name]:
                    continue
                self.detections += 1
                found = DriftEvent(index, watermark, name, direction, before, after, detector.width, self.detections)
        return found
