"""How traffic varies over event time: a diurnal curve, and bot bursts on top of it.

The diurnal factor averages 1 over a day (the generator scales it so that its ``rate`` holds at
the start of a run). A bot burst multiplies the rate by ``1 + intensity`` for its duration, and
the extra events belong to one bot.

>>> round(diurnal_factor(20 * 3_600_000, amplitude=0.5), 3)  # 20:00 UTC, the peak
1.5
>>> round(diurnal_factor(8 * 3_600_000, amplitude=0.5), 3)  # 08:00 UTC, the trough
0.5
>>> import random
>>> b = BurstSchedule(random.Random(1), start_ms=0, every_s=60, duration_s=10, intensity=2.0)
>>> active = [b.multiplier(t * 1000) > 1 for t in range(0, 600)]
>>> 0 < sum(active) < 600
True
"""

from __future__ import annotations

import math
import random

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 24 * MS_PER_HOUR
PEAK_HOUR_UTC = 20.0


def hour_of_day(ms: float) -> float:
    """UTC hour of day as a fraction, in [0, 24)."""
    return (ms % MS_PER_DAY) / MS_PER_HOUR


def diurnal_factor(ms: float, amplitude: float = 0.5, peak_hour: float = PEAK_HOUR_UTC) -> float:
    """Traffic relative to the daily mean: ``1 + amplitude * cos(...)``, highest at ``peak_hour``."""
    return 1.0 + amplitude * math.cos(2.0 * math.pi * (hour_of_day(ms) - peak_hour) / 24.0)


class BurstSchedule:
    """Bot bursts: start times a Poisson process (mean gap ``every_s``), each ``duration_s`` long.

    ``every_s <= 0`` disables bursts.
    """

    def __init__(
        self,
        rng: random.Random,
        start_ms: float,
        every_s: float,
        duration_s: float,
        intensity: float,
    ) -> None:
        self._rng = rng
        self.every_ms = every_s * 1000.0
        self.duration_ms = duration_s * 1000.0
        self.intensity = intensity
        self.enabled = every_s > 0 and duration_s > 0 and intensity > 0
        self.start = math.inf
        self.end = -math.inf
        self.bursts = 0  # bursts started so far
        if self.enabled:
            self.start = start_ms + rng.expovariate(1.0) * self.every_ms

    def multiplier(self, t_ms: float) -> float:
        """Rate multiplier at ``t_ms`` (non-decreasing calls): ``1 + intensity`` inside a burst."""
        while t_ms >= self.start + self.duration_ms:
            # That burst is over: the next one starts after a fresh gap.
            self.start += self.duration_ms + self._rng.expovariate(1.0) * self.every_ms
        if t_ms < self.start:
            return 1.0
        if self.end < self.start:  # first call inside this burst
            self.end = self.start + self.duration_ms
            self.bursts += 1
        return 1.0 + self.intensity

    def bot_share(self) -> float:
        """Inside a burst, the share of events that come from the bot."""
        return self.intensity / (1.0 + self.intensity)
