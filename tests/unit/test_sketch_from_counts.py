"""Sketches filled from a window's dictionary (app/sketches/from_counts.py) against the library's
own sketches: count-min to the byte, HLL registers to the byte, frequent items identical when the
group fits and inside every DataSketches invariant when it does not; and the accuracy of what
changed (HLL's composite estimator) against exact truth over 200 seeded trials."""

from __future__ import annotations

import random

import datasketches as ds
import numpy as np
import pytest

from app.sketches import CountMinSketch, FrequentItemsSketch, HllSketch
from app.sketches.dictionary import StringDictionary
from app.sketches.from_counts import count_min_hash_seeds, frequent_capacity, hll_promotes
from app.sketches.murmur import murmur3_x64_128

# MurmurHash3_x64_128 reference values (the canonical C++ code, via the mmh3 package), both halves.
MURMUR_VECTORS = [
    (b"a", 0, 0x85555565F6597889, None),
    (b"hello world, this is long", 7, 0x7F83DFA368F5DE87, 0x2905DA7E6F0F001C),
]


def _values(rng: random.Random, n: int) -> list[str]:
    # ASCII and multi-byte UTF-8, lengths 1..40 (0, 1 and 2 whole 16-byte blocks, every tail length)
    out = {f"v{rng.randrange(10**9)}" + "é" * rng.randrange(3) + "x" * rng.randrange(25) for _ in range(n)}
    return sorted(out)


def _counts(rng: random.Random, n: int) -> np.ndarray:
    return np.array([max(1, int(rng.paretovariate(1.1))) for _ in range(n)])


@pytest.mark.parametrize(("data", "seed", "h1", "h2"), MURMUR_VECTORS)
def test_murmur_matches_the_reference(data: bytes, seed: int, h1: int, h2: int | None):
    got1, got2 = murmur3_x64_128(data, np.array([0, len(data)]), seed)
    assert int(got1[0]) == h1
    assert h2 is None or int(got2[0]) == h2


def test_count_min_seeds_are_the_librarys():
    """The per-row seeds (libstdc++'s engine, emulated) and the hash give the library's counters."""
    assert len(set(count_min_hash_seeds(5))) == 5
    rng = random.Random(1)
    values = _values(rng, 300)
    lib = ds.count_min_sketch(5, 100, 9001)
    for v in values:
        lib.update(v, 1.0)
    table = np.frombuffer(lib.serialize(), "<f8", 500, 24).reshape(5, 100)
    d = StringDictionary.from_values(values)
    for row, seed in enumerate(count_min_hash_seeds(5)):
        buckets = (d.hashes(seed)[0] % np.uint64(100)).astype(np.int64)
        assert np.array_equal(np.bincount(buckets, minlength=100), table[row])


@pytest.mark.parametrize("n", [1, 50, 3_000])
def test_count_min_from_a_dictionary_is_the_librarys_to_the_byte(n: int):
    rng = random.Random(n)
    values = _values(rng, n)
    d = StringDictionary.from_values([*values, None, ""])
    codes = np.array(rng.sample(range(len(values)), len(values) // 2 or 1) + [len(values), len(values) + 1])
    counts = _counts(rng, len(codes))
    ours, lib = CountMinSketch(), CountMinSketch()
    ours.update("seen-before", 3)
    lib.update("seen-before", 3)
    ours.update_dictionary(d, codes, counts)
    # the library skips "" itself; a missing value is no value
    lib.update_counts([values[c] if c < len(values) else "" for c in codes[:-2]] + [""], counts[:-1].tolist())
    assert ours.payload() == lib.payload()


@pytest.mark.parametrize("n", [5, 384, 385, 1_000, 30_000])
def test_hll_from_a_dictionary_has_the_librarys_registers(n: int):
    rng = random.Random(n)
    values = _values(rng, n)
    d = StringDictionary.from_values([None, "", *values])
    codes = np.arange(len(d))
    ours, lib = HllSketch(), HllSketch()
    ours.update_dictionary(d, codes, np.ones(len(d), dtype=np.int64))
    lib.update_many(values)
    mine, ref = ours.payload(), lib.payload()
    assert mine[:5] == ref[:5]  # preamble, version, family, lg_k, lg_arr
    if hll_promotes(12, len(values)):
        assert ref[7] & 3 == 2 and mine[40:] == ref[40:]  # HLL mode: the same registers
        assert mine[5] & 16  # marked out of order: the composite estimator, as after any merge
    else:  # coupon list or set: the library's own updates
        assert sorted(np.frombuffer(mine[4 * mine[0] :], "<u4")) == sorted(np.frombuffer(ref[4 * ref[0] :], "<u4"))
        assert ours.estimate() == lib.estimate()
    assert ours.estimate().contains(len(values))
    # it merges with library-built sketches like any other
    more = HllSketch()
    more.update_many([f"other-{i}" for i in range(500)])
    ours.merge(more)
    assert ours.estimate().contains(len(values) + 500)


def test_hll_from_a_dictionary_keeps_its_95_percent_bounds():
    """Over 200 seeded trials of 400..40,000 distinct values, the truth lies inside the reported
    95 % interval at least 95 % of the time (the composite estimator's own bounds)."""
    rng = random.Random(7)
    inside = 0
    trials = 200
    for t in range(trials):
        n = int(400 * 100 ** rng.random())
        d = StringDictionary.from_values([f"t{t}-u{i}" for i in range(n)])
        s = HllSketch()
        s.update_dictionary(d, np.arange(n), np.ones(n, dtype=np.int64))
        inside += s.estimate(0.95).contains(n)
    assert inside >= 0.95 * trials, inside


@pytest.mark.parametrize("n", [10, 384, 385, 5_000])
def test_frequent_items_from_a_dictionary(n: int):
    rng = random.Random(n)
    values = _values(rng, n)
    counts = _counts(rng, n)
    d = StringDictionary.from_values([*values, None])
    codes = np.array([*range(n), n])
    ours, lib = FrequentItemsSketch(), FrequentItemsSketch()
    ours.update_dictionary(d, codes, np.array([*counts, 99]))  # the missing value is dropped
    lib.update_counts(values, counts.tolist())
    truth = dict(zip(values, counts.tolist(), strict=True))
    assert ours.total_weight == lib.total_weight == sum(truth.values())
    if n <= frequent_capacity(9):  # fits: the library's own updates, exact
        assert ours.payload() == lib.payload() and ours.threshold() == 0
    else:  # the largest counts exactly, the offset the largest left out: tighter than the purges
        assert ours.threshold() == sorted(truth.values())[-frequent_capacity(9) - 1]
        assert ours.threshold() <= lib.threshold()
    reported = {e.item for e in ours.top(None)}
    for item, count in truth.items():
        assert ours.bounds(item).contains(count), item
        if count > ours.threshold():
            assert item in reported, item  # no false negatives above the threshold
    # a merge with a library-built window keeps every bound
    other = FrequentItemsSketch()
    some = values[:100]
    other.update_counts(some, [5] * len(some))
    ours.merge(other)
    for item in some:
        assert ours.bounds(item).contains(truth[item] + 5)
    again = FrequentItemsSketch.from_bytes(ours.to_bytes())
    assert again.top(10) == ours.top(10)


def test_dictionary_of_a_packed_window_is_its_values():
    from flink_jobs import window_columns

    import pandas as pd

    frame = pd.DataFrame({"event_time": [1, 2, 3], "user_id": ["ü", "b", "ü"], "session_id": ["s", "s", "s"],
                          "item_id": ["i", "j", "k"], "category": ["c"] * 3, "country": ["US"] * 3,
                          "device": ["m"] * 3, "price": [1.0] * 3, "features": [None] * 3, "raw": [b"{}"] * 3})  # fmt: skip
    cols = window_columns.PackedColumns(window_columns.pack(frame))
    d = cols.dictionary("user_id")
    assert d.values.tolist() == ["ü", "b"] and cols.codes("user_id").tolist() == [0, 1, 0]
    ref = StringDictionary.from_values(["ü", "b"])
    assert np.array_equal(d.hashes(9001)[0], ref.hashes(9001)[0])
