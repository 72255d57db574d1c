"""Users: segments with their own tastes, a home country and device, and very unequal activity.

A segment is hidden from the events (it is what a model has to discover); it shows only
through behaviour: which devices and categories its users favour, and how they click. Activity
is Pareto-distributed, so a few users produce many sessions, as on every real site. Bots are
extra users that only appear in bursts (see :mod:`app.generator.timeline`).

>>> import numpy as np
>>> p = Population.build(np.random.default_rng(3), n_users=500, n_bots=5, latent_dim=4)
>>> len(p.user_ids), len(p.bot_indices), p.latent.shape
(505, 5, (505, 4))
>>> p.countries[0] in COUNTRY_CODES and DEVICES[p.devices[0]] in ("mobile", "desktop", "tablet")
True
>>> u = p.pick_user(0.5)
>>> 0 <= u < 500
True
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

#: (ISO 3166-1 alpha-2, share of users)
COUNTRIES: tuple[tuple[str, float], ...] = (
    ("US", 0.28), ("IN", 0.10), ("GB", 0.08), ("DE", 0.08), ("FR", 0.06), ("BR", 0.06),
    ("JP", 0.05), ("CA", 0.04), ("ES", 0.04), ("IT", 0.04), ("MX", 0.03), ("NL", 0.03),
    ("AU", 0.03), ("KR", 0.03), ("PL", 0.02), ("SE", 0.02), ("NG", 0.01),
)  # fmt: skip
COUNTRY_CODES = tuple(c for c, _ in COUNTRIES)
DEVICES = ("mobile", "desktop", "tablet")


@dataclass(frozen=True)
class Segment:
    name: str
    share: float
    device_probs: tuple[float, float, float]  # mobile, desktop, tablet
    sessions_per_user: float  # mean of the Pareto activity weight: how often its users come back
    price_sensitivity: float  # click-logit change per unit of log(price / category median)


SEGMENTS: tuple[Segment, ...] = (
    Segment("commuters", 0.26, (0.85, 0.05, 0.10), 1.4, -0.6),
    Segment("office_browsers", 0.20, (0.15, 0.80, 0.05), 1.0, -0.2),
    Segment("bargain_hunters", 0.18, (0.55, 0.35, 0.10), 1.2, -1.4),
    Segment("enthusiasts", 0.12, (0.40, 0.50, 0.10), 1.8, 0.3),
    Segment("families", 0.16, (0.45, 0.20, 0.35), 0.8, -0.8),
    Segment("window_shoppers", 0.08, (0.60, 0.25, 0.15), 0.6, 0.0),
)
BOT_DEVICE = 1  # bots run on desktops (headless browsers)


@dataclass
class Population:
    """Users by index; bots are the last ``len(bot_indices)`` indices."""

    user_ids: list[str]
    user_keys: list[bytes]  # Kafka keys, encoded once
    segments: list[int]  # index into SEGMENTS; -1 for bots
    countries: list[str]
    devices: list[int]  # home device, index into DEVICES
    latent: np.ndarray  # (users, latent_dim) taste vectors of the hidden click model
    bot_indices: list[int]
    _activity_cum: list[float]  # cumulative activity of the humans, for picking who starts a session

    @classmethod
    def build(
        cls, rng: np.random.Generator, n_users: int, n_bots: int = 20, latent_dim: int = 8
    ) -> Population:
        total = n_users + n_bots
        shares = np.array([s.share for s in SEGMENTS])
        seg = rng.choice(len(SEGMENTS), size=n_users, p=shares / shares.sum())
        country_p = np.array([w for _, w in COUNTRIES])
        country = rng.choice(len(COUNTRIES), size=total, p=country_p / country_p.sum())
        device = np.empty(total, dtype=np.int64)
        for k, s in enumerate(SEGMENTS):
            mask = seg == k
            device[:n_users][mask] = rng.choice(3, size=int(mask.sum()), p=s.device_probs)
        device[n_users:] = BOT_DEVICE
        # Pareto(1.5) activity: heavy-tailed, finite mean; scaled by how loyal the segment is.
        loyalty = np.array([s.sessions_per_user for s in SEGMENTS])[seg]
        activity = (rng.pareto(1.5, size=n_users) + 1.0) * loyalty
        # Tastes cluster by segment, with individual variation around the segment's centre.
        centres = rng.standard_normal((len(SEGMENTS), latent_dim)) / np.sqrt(latent_dim)
        latent = np.empty((total, latent_dim))
        latent[:n_users] = centres[seg] + 0.7 * rng.standard_normal((n_users, latent_dim)) / np.sqrt(latent_dim)
        latent[n_users:] = rng.standard_normal((n_bots, latent_dim)) / np.sqrt(latent_dim)
        width = max(7, len(str(total - 1)))
        ids = [f"u{k:0{width}d}" for k in rng.permutation(total).tolist()]
        return cls(
            user_ids=ids,
            user_keys=[u.encode() for u in ids],
            segments=seg.tolist() + [-1] * n_bots,
            countries=[COUNTRY_CODES[c] for c in country.tolist()],
            devices=device.tolist(),
            latent=latent,
            bot_indices=list(range(n_users, total)),
            _activity_cum=np.cumsum(activity / activity.sum()).tolist(),
        )

    @property
    def n_humans(self) -> int:
        return len(self._activity_cum)

    def pick_user(self, u: float) -> int:
        """The human whose activity interval contains ``u`` (uniform in [0, 1))."""
        return min(bisect.bisect_right(self._activity_cum, u), self.n_humans - 1)
