"""A deterministic synthetic stream of ``examples.v1`` records for tests and benchmarks.

Labels come from a hidden logistic model over the same raw fields the feature function sees
(device, country, category, item popularity and bias, user bias, price, hour of day, ``features``
entries, stream context), so a linear learner can learn most of it. With ``drift_at`` the hidden
item, category and feature weights flip sign from that example on: an abrupt concept drift.
(The realistic generator of the design lives in ``app.generator``; this one is small on purpose.)

>>> rows = synthetic_examples(5, seed=1)
>>> sorted(rows[0])
['category', 'context', 'country', 'device', 'event_id', 'event_time', 'example_time', 'features', 'item_id', 'label', 'price', 'session_id', 'user_id']
>>> rows == synthetic_examples(5, seed=1)
True
>>> from app.contracts.examples import Example
>>> all(Example.from_dict(r).to_json() for r in rows)
True
>>> round(sum(r["label"] for r in synthetic_examples(20_000, seed=2)) / 20_000, 2)
0.22
"""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_examples"]

DEVICES = ("mobile", "desktop", "tablet")
COUNTRIES = ("US", "DE", "FR", "GB", "IN", "BR", "JP", "CA")


def synthetic_examples(
    n: int,
    *,
    seed: int = 0,
    drift_at: int | None = None,
    n_users: int = 5_000,
    n_items: int = 1_000,
    n_categories: int = 20,
    start_ms: int = 1_795_700_000_000,
    events_per_s: float = 50.0,
) -> list[dict]:
    """``n`` example records (dicts in the :class:`~app.contracts.examples.Example` shape)."""
    rng = np.random.default_rng(seed)
    # the world
    pop = 1.0 / np.arange(1, n_items + 1) ** 1.1
    pop /= pop.sum()
    item_bias = rng.normal(0.0, 0.8, n_items)
    item_cat = rng.integers(0, n_categories, n_items)
    item_price = np.round(rng.lognormal(3.0, 1.0, n_items), 2)
    cat_w = rng.normal(0.0, 0.6, n_categories)
    user_bias = rng.normal(0.0, 0.4, n_users)
    device_w = np.array([0.3, -0.2, 0.0])
    country_w = rng.normal(0.0, 0.3, len(COUNTRIES))
    # the stream
    items = rng.choice(n_items, size=n, p=pop)
    users = rng.integers(0, n_users, n)
    devices = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    countries = rng.choice(len(COUNTRIES), size=n, p=[0.3, 0.15, 0.1, 0.1, 0.15, 0.1, 0.05, 0.05])
    t = start_ms + np.cumsum(rng.exponential(1000.0 / events_per_s, n)).astype(np.int64)
    quality = rng.normal(0.0, 1.0, n)
    rank = rng.integers(1, 11, n)
    user_recent = rng.poisson(3.0, n)
    item_recent = rng.poisson(1.0 + 2_000.0 * pop[items])
    price = item_price[items]
    hour = (t % 86_400_000) / 86_400_000.0 * 2.0 * np.pi
    sign = np.ones(n)
    if drift_at is not None:
        sign[drift_at:] = -1.0
    z = (
        -2.5
        + sign * (item_bias[items] + cat_w[item_cat[items]] + 1.5 * quality)
        + user_bias[users]
        + device_w[devices]
        + country_w[countries]
        - 0.12 * rank
        - 0.25 * (np.log1p(price) - 3.0)
        + 0.4 * np.sin(hour)
        + 0.3 * np.log1p(item_recent)
    )
    labels = rng.random(n) < 1.0 / (1.0 + np.exp(-z))
    delay = rng.integers(1_000, 30_000, n)
    rows = []
    for i in range(n):
        rows.append(
            {
                "event_id": f"e{seed}-{i}",
                "event_time": int(t[i]),
                "user_id": f"u{users[i]}",
                "session_id": f"s{users[i]}-{int(t[i]) // 1_800_000}",
                "item_id": f"i{items[i]}",
                "category": f"c{item_cat[items[i]]}",
                "country": COUNTRIES[countries[i]],
                "device": DEVICES[devices[i]],
                "price": float(price[i]),
                "label": int(labels[i]),
                "example_time": int(t[i] + delay[i]),
                "features": {"quality": round(float(quality[i]), 4), "rank": int(rank[i])},
                "context": {"user_recent": int(user_recent[i]), "item_recent": int(item_recent[i])},
            }
        )
    return rows
