"""Memory acceptance (DESIGN "Targets: accuracy"): at 1 M events each sketch, with its default
parameters, serializes to <= 1 % of the exact state it replaces.

The workload and the exact-state byte counts are the ones ``benchmarks/sketch_tradeoff.py``
measures the defaults with (see that module for why each exact size is fair): ~105 k distinct
users, ~120 k distinct Zipf-popular items, log-normal prices. ``pytest -s`` prints the table.
"""

from __future__ import annotations

from collections import Counter

import pytest

from app.sketches import CountMinSketch, FrequentItemsSketch, HllSketch, KllSketch, ReservoirSample
from benchmarks.sketch_tradeoff import (
    exact_counts_bytes,
    exact_distinct_bytes,
    exact_items_bytes,
    exact_values_bytes,
    make_workload,
)

EVENTS = 1_000_000
LIMIT = 0.01


@pytest.fixture(scope="module")
def workload():
    users, items, prices = make_workload(EVENTS, seed=11)
    return users, items, prices, Counter(items)


def test_every_sketch_is_at_most_one_percent_of_the_exact_state(workload):
    users, items, prices, counts = workload
    distinct_users = len(set(users))
    assert distinct_users > 90_000 and len(counts) > 90_000  # the ~100 k-distinct regime

    hll, kll, freq, cms, res = HllSketch(), KllSketch(), FrequentItemsSketch(), CountMinSketch(), ReservoirSample()
    hll.update_many(users)
    kll.update_many(prices)
    freq.update_many(items)
    cms.update_many(items)
    res.update_many(items)

    rows = [
        ("hll", hll, exact_distinct_bytes(distinct_users), "distinct users as 64-bit fingerprints"),
        ("kll", kll, exact_values_bytes(len(prices)), "sorted float64 prices"),
        ("frequent", freq, exact_counts_bytes(counts), "item -> count table"),
        ("cms", cms, exact_counts_bytes(counts), "item -> count table"),
        ("reservoir", res, exact_items_bytes(items), "every item"),
    ]
    print(f"\n{EVENTS:,} events, {distinct_users:,} distinct users, {len(counts):,} distinct items")
    print(f"{'sketch':<10} {'params':<58} {'bytes':>8} {'exact bytes':>12} {'ratio':>7}  exact state")
    over = []
    for name, sketch, exact, what in rows:
        size = len(sketch.to_bytes())  # envelope included: what travels and is stored
        ratio = size / exact
        print(f"{name:<10} {str(sketch.params)[:58]:<58} {size:>8,} {exact:>12,} {ratio:>7.3%}  {what}")
        if ratio > LIMIT:
            over.append((name, ratio))
    assert not over, f"sketches above {LIMIT:.0%} of the exact state: {over}"

    # The small sketches still answer sensibly at this scale (accuracy is tested elsewhere).
    assert hll.estimate().contains(distinct_users)
    top = freq.top(3)
    assert [e.item for e in top] == [k for k, _ in counts.most_common(3)]
    assert cms.frequency(top[0].item).contains(counts[top[0].item])
    assert kll.n == EVENTS and res.n_seen == EVENTS
