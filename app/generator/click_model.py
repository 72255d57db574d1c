"""The hidden click model: who clicks what, and how that changes at the drift point.

A logistic model over observable context (position, dwell, device, hour, price) plus two
things a linear model on one-hot features cannot represent: crosses (segment x category,
device x category, device x position) and, above all, the dot product of a user's and an
item's latent taste vectors. A model with user/item embeddings (a deep or factorization
model) can learn that term; a linear model only learns per-id biases. So a deep model beats
a linear one on this stream, by a margin set by ``latent_weight``.

After the drift point a second *regime* applies, a new season on a redesigned site: the base
rate moves by ``drift_shift`` (default +0.4: more clicks), segments' category tastes flip (what a
segment liked it now avoids), item quality and the device x category effects are mostly re-drawn,
item taste vectors are mostly new, and the position effect per device changes (a redesigned
results page). Dwell and hour effects stay. So a model trained
before the drift is confidently wrong after it (its loss rises above what its own predictions
expect), which is what :mod:`app.learners.drift` detects.

>>> import numpy as np
>>> from app.generator.catalog import Catalog
>>> from app.generator.population import Population
>>> rng = np.random.default_rng(0)
>>> cat, pop = Catalog.build(rng, 200), Population.build(rng, 100, n_bots=2, latent_dim=8)
>>> m = ClickModel(rng, cat, pop)
>>> p = m.probability(0, user=3, item=5, position=1, device=0, dwell=2.0, hour=20.0)
>>> 0.0 < p < 1.0
True
>>> m.probability(0, 3, 5, 1, 0, 2.0, 20.0) > m.probability(0, 3, 5, 10, 0, 2.0, 20.0)  # position bias
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import mul

import numpy as np

from app.generator.catalog import CATEGORIES, Catalog
from app.generator.population import DEVICES, SEGMENTS, Population

MAX_POSITION = 10
BOT_CLICK_PROBABILITY = 0.35  # bots click indiscriminately, which is what gives them away


@dataclass
class Regime:
    """The click model's parameters in force between two drift points."""

    static: list[list[float]]  # [segment][item]: base + segment taste + price sensitivity + quality
    device_category: list[list[float]]  # [device][category]
    item_latent: list[tuple[float, ...]]
    purchase_base: float
    position_bias: list[list[float]]  # [device][position]


class ClickModel:
    def __init__(
        self,
        rng: np.random.Generator,
        catalog: Catalog,
        population: Population,
        *,
        base_logit: float = -2.9,
        latent_weight: float = 2.5,
        drift_shift: float = 0.4,
    ) -> None:
        self.latent_weight = latent_weight
        self.item_category: list[int] = catalog.category_index.tolist()
        self.user_segment = population.segments
        self.user_latent = [tuple(row) for row in population.latent.tolist()]
        self.log_price_ratio: list[float] = catalog.log_price_ratio.tolist()
        latent_dim = population.latent.shape[1]
        n_items, n_cat, n_seg = len(catalog), len(CATEGORIES), len(SEGMENTS)

        # Mobile screens show fewer results: position matters more there (a device x position cross).
        # After the drift the redesigned site turns that around: a bigger mobile page (position
        # matters less there), a denser desktop page (more).
        decays = ({0: 0.75, 1: 0.45, 2: 0.6}, {0: 0.2, 1: 0.9, 2: 0.3})
        position_bias = [
            [[0.0] + [-decay[d] * math.log(k) for k in range(1, MAX_POSITION + 1)] for d in range(len(DEVICES))]
            for decay in decays
        ]
        self.position_bias = position_bias[0]
        self.dwell_weight = 0.35  # longer looks at the list, more clicks
        self.hour_weight = 0.3  # evenings click more

        quality = 0.5 * rng.standard_normal(n_items)
        affinity = 0.8 * rng.standard_normal((n_seg, n_cat))
        item_latent = rng.standard_normal((n_items, latent_dim)) / math.sqrt(latent_dim)
        self.regimes = [self._regime(rng, catalog, base_logit, quality, affinity, item_latent, -1.2, position_bias[0])]

        # Drift: base rate moves, segment tastes flip, item quality and vectors mostly new.
        quality2 = 0.2 * quality + 0.45 * rng.standard_normal(n_items)
        affinity2 = -affinity
        item_latent2 = 0.4 * item_latent + 0.9 * rng.standard_normal((n_items, latent_dim)) / math.sqrt(latent_dim)
        self.regimes.append(
            self._regime(rng, catalog, base_logit + drift_shift, quality2, affinity2, item_latent2, -1.5, position_bias[1])
        )

    def _regime(self, rng, catalog, base, quality, affinity, item_latent, purchase_base, position_bias) -> Regime:
        sens = np.array([s.price_sensitivity for s in SEGMENTS])
        cat = catalog.category_index
        static = base + affinity[:, cat] + sens[:, None] * catalog.log_price_ratio[None, :] + quality[None, :]
        device_category = 0.4 * rng.standard_normal((len(DEVICES), len(CATEGORIES)))
        return Regime(
            static=static.tolist(),
            device_category=device_category.tolist(),
            item_latent=[tuple(r) for r in item_latent.tolist()],
            purchase_base=purchase_base,
            position_bias=position_bias,
        )

    def hour_term(self, hour: float) -> float:
        """Part of the logit that depends only on the (UTC) hour of day; peaks at 20:00."""
        return self.hour_weight * math.cos(2.0 * math.pi * (hour - 20.0) / 24.0)

    def affinity(self, regime: int, user: int, item: int) -> float:
        """The latent taste match of user and item (the term only embeddings can learn)."""
        return sum(map(mul, self.user_latent[user], self.regimes[regime].item_latent[item]))

    def logit(
        self, regime: int, user: int, item: int, position: int, device: int, log_dwell: float, hour_term: float
    ) -> float:
        """The click logit of a human user; ``hour_term`` from :meth:`hour_term` (cached by callers)."""
        r = self.regimes[regime]
        return (
            r.static[self.user_segment[user]][item]
            + r.device_category[device][self.item_category[item]]
            + r.position_bias[device][position]
            + self.dwell_weight * log_dwell
            + hour_term
            + self.latent_weight * sum(map(mul, self.user_latent[user], r.item_latent[item]))
        )

    def probability(
        self, regime: int, user: int, item: int, position: int, device: int, dwell: float, hour: float
    ) -> float:
        """P(click | impression) for a human user; bots click with :data:`BOT_CLICK_PROBABILITY`."""
        if self.user_segment[user] < 0:
            return BOT_CLICK_PROBABILITY
        z = self.logit(regime, user, item, position, device, math.log(dwell), self.hour_term(hour))
        return 1.0 / (1.0 + math.exp(-z))

    def purchase_probability(self, regime: int, user: int, item: int) -> float:
        """P(purchase | click): taste match helps, an expensive item for its category hurts."""
        if self.user_segment[user] < 0:
            return 0.0  # bots never buy
        r = self.regimes[regime]
        z = r.purchase_base + 0.8 * self.affinity(regime, user, item) - 0.5 * self.log_price_ratio[item]
        return 1.0 / (1.0 + math.exp(-z))
