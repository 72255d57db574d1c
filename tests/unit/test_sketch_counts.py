"""``update_counts``: a window's values pre-counted give the sketch that one update per event gives
(bit for bit for count-min, the same registers for HLL, valid bounds for frequent items)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from app.sketches import new_sketch


def _stream(n: int = 20_000, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [f"i{int(rng.paretovariate(1.1)) % 5_000}" for _ in range(n)]


def _both_ways(kind: str):
    """The same stream, one update per value and pre-counted: (one by one, counted, distinct values)."""
    values = _stream()
    counts = Counter(values)
    one_by_one, counted = new_sketch(kind), new_sketch(kind)
    one_by_one.update_many(values)
    counted.update_counts(list(counts), list(counts.values()))
    return one_by_one, counted, len(counts)


def test_count_min_pre_counted_is_bit_identical():
    one_by_one, counted, _ = _both_ways("cms")
    assert counted.to_bytes() == one_by_one.to_bytes()


def test_hll_ignores_repeats():
    one_by_one, counted, distinct = _both_ways("hll")
    ref, got = one_by_one.estimate(), counted.estimate()
    # same registers; only the HIP accumulator sees another order
    assert abs(got.value - ref.value) <= (ref.upper_bound - ref.lower_bound) / 2
    assert got.lower_bound <= distinct <= got.upper_bound


def test_frequent_items_weighted_updates_keep_their_guarantees():
    values = _stream()
    truth = Counter(values)
    counted = new_sketch("frequent", lg_max_k=6)  # small on purpose: the sketch must purge
    counted.update_counts(list(truth), list(truth.values()))
    assert counted.total_weight == len(values)
    threshold = counted.threshold()
    assert threshold > 0
    for item, n in truth.items():
        assert counted.bounds(item).contains(n), item
    reported = {e.item for e in counted.top(k=None)}
    heavy = {i for i, n in truth.items() if n > threshold}
    assert heavy and heavy <= reported  # no false negatives above the threshold


def test_default_update_counts_repeats_values():
    kll = new_sketch("kll")
    kll.update_counts([1.0, 5.0], [3, 1])
    assert kll.n == 4


def test_count_min_rejects_negative_weights():
    with pytest.raises(ValueError):
        new_sketch("cms").update_counts(["a"], [-1])
