"""The item catalog: Zipf-distributed popularity, a category and a price for every item.

Item ``0`` is the most popular, item ``k`` has popularity proportional to ``1 / (k + 1) ** s``;
ids are shuffled so that an id says nothing about the rank. Prices are log-normal around a
per-category median, so price quantiles are skewed the way real catalogs are.

>>> import numpy as np
>>> c = Catalog.build(np.random.default_rng(7), n_items=1000, zipf_s=1.1)
>>> len(c), bool(c.popularity[0] > c.popularity[1] > c.popularity[999])
(1000, True)
>>> round(float(c.popularity.sum()), 6)
1.0
>>> c.categories[0] in CATEGORY_NAMES and c.prices[0] > 0
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: (name, share of the catalog, median price, log-normal sigma of the price)
CATEGORIES: tuple[tuple[str, float, float, float], ...] = (
    ("books", 0.14, 14.0, 0.5),
    ("electronics", 0.10, 120.0, 1.0),
    ("fashion", 0.12, 40.0, 0.7),
    ("home", 0.09, 55.0, 0.8),
    ("grocery", 0.08, 7.0, 0.6),
    ("toys", 0.06, 25.0, 0.7),
    ("beauty", 0.07, 20.0, 0.6),
    ("sports", 0.06, 45.0, 0.8),
    ("games", 0.05, 40.0, 0.5),
    ("music", 0.05, 12.0, 0.5),
    ("garden", 0.04, 35.0, 0.8),
    ("automotive", 0.03, 80.0, 1.0),
    ("pets", 0.04, 22.0, 0.6),
    ("office", 0.03, 18.0, 0.7),
    ("health", 0.03, 25.0, 0.6),
    ("travel", 0.01, 350.0, 0.9),
)
CATEGORY_NAMES = tuple(c[0] for c in CATEGORIES)


def zipf_weights(n: int, s: float) -> np.ndarray:
    """Normalized Zipf weights for ranks ``1..n``.

    >>> w = zipf_weights(4, 1.0)
    >>> [round(float(x), 3) for x in w]
    [0.48, 0.24, 0.16, 0.12]
    """
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return w / w.sum()


@dataclass
class Catalog:
    """Items by popularity rank (index 0 = most popular); parallel lists for fast lookups."""

    item_ids: list[str]
    categories: list[str]
    category_index: np.ndarray  # int, index into CATEGORIES
    prices: list[float]
    log_price_ratio: np.ndarray  # log(price / category median): how expensive for its kind
    popularity: np.ndarray  # Zipf probabilities, sums to 1

    @classmethod
    def build(cls, rng: np.random.Generator, n_items: int, zipf_s: float = 1.1) -> Catalog:
        shares = np.array([c[1] for c in CATEGORIES])
        cat = rng.choice(len(CATEGORIES), size=n_items, p=shares / shares.sum())
        medians = np.array([c[2] for c in CATEGORIES])[cat]
        sigmas = np.array([c[3] for c in CATEGORIES])[cat]
        z = rng.standard_normal(n_items)
        # Cents, never zero: a free item is a different business.
        prices = np.maximum(np.round(medians * np.exp(sigmas * z), 2), 0.01)
        width = max(6, len(f"{n_items - 1:x}"))
        ids = [f"i{k:0{width}x}" for k in rng.permutation(n_items).tolist()]
        return cls(
            item_ids=ids,
            categories=[CATEGORY_NAMES[c] for c in cat.tolist()],
            category_index=cat,
            prices=[float(p) for p in prices.tolist()],
            log_price_ratio=np.log(prices / medians),
            popularity=zipf_weights(n_items, zipf_s),
        )

    def __len__(self) -> int:
        return len(self.item_ids)


class ItemSampler:
    """Draws item indices from fixed weights, a block at a time (one numpy call per block).

    >>> import numpy as np
    >>> s = ItemSampler(np.array([0.0, 1.0, 0.0]), np.random.default_rng(1), block=4)
    >>> [s.take() for _ in range(6)]
    [1, 1, 1, 1, 1, 1]
    """

    __slots__ = ("_cum", "_rng", "_block", "_buf")

    def __init__(self, weights: np.ndarray, rng: np.random.Generator, block: int = 4096) -> None:
        cum = np.cumsum(weights, dtype=np.float64)
        self._cum = cum / cum[-1]
        self._rng = rng
        self._block = block
        self._buf: list[int] = []  # drawn indices, reversed: list.pop() is the cheapest take

    def take(self) -> int:
        buf = self._buf
        if not buf:
            u = self._rng.random(self._block)
            # side="right" so a zero-weight item (equal neighbouring cumulative values) is never drawn
            idx = np.searchsorted(self._cum, u, side="right")
            buf.extend(np.minimum(idx, len(self._cum) - 1)[::-1].tolist())
        return buf.pop()
