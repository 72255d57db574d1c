"""Serving's read path without Redis: the fast cover planner, heads, the sketch cache, the fast path's parser."""

from __future__ import annotations

import random

import pytest

from app.windows import Window, plan_cover
from serving.fastpath import parse
from serving.reads import SketchCache, _matches, fast_cover, parse_heads

LADDERS = [(10_000, 60_000, 3_600_000, 86_400_000), (10, 60, 3600), (30, 60, 3600), (10,), (5, 10, 20, 40)]


def test_fast_cover_is_plan_cover() -> None:
    rnd = random.Random(3)
    for _ in range(4_000):
        widths = rnd.choice(LADDERS)
        top = widths[-1] * rnd.choice([2, 20, 200])
        start = rnd.randrange(-top, top)
        end = start + rnd.randrange(1, top)
        avail = [rnd.choice([None, rnd.randrange(-top, 2 * top)]) for _ in widths]
        assert fast_cover(start, end, widths, avail) == plan_cover(start, end, widths, avail), (start, end, widths, avail)


def test_fast_cover_of_seven_days_as_serving_plans_it() -> None:
    widths = LADDERS[0]
    now = 1_795_700_000_000
    avail = [now - 7_200_000, now - 86_400_000, now - 14 * 86_400_000, None]
    for i in range(200):
        end = now - i * 10_000
        assert fast_cover(end - 7 * 86_400_000, end, widths, avail) == plan_cover(end - 7 * 86_400_000, end, widths, avail)


def test_parse_heads_and_matches() -> None:
    wins = [Window(0, 10), Window(10, 10), Window(20, 10)]
    heads = [b"T1|3|100|2|10|999|1|1|", b"", b"T1|0|7|0|30|1000|1|1|"]
    found = parse_heads(wins, heads)
    assert [(f.window.start, f.events, f.late_events, f.newest_end, f.base_windows) for f in found] == [
        (0, 100, 2, 10, 1), (20, 7, 0, 30, 1)]
    with pytest.raises(ValueError):
        parse_heads(wins[:1], [b"?"])
    assert _matches(b"T1|3|100|2|10|999|1|1|TRB...", heads[0])
    assert not _matches(b"T1|4|100|2|10|999|1|1|TRB...", heads[0])  # re-emitted: another revision


def test_sketch_cache_is_an_lru_by_bytes() -> None:
    cache = SketchCache(budget_bytes=100)
    for i in range(5):
        cache.put(("s", i), f"sketch{i}", 30)
    assert len(cache) == 3  # 90 bytes kept of 150
    assert cache.get_many([("s", 0), ("s", 1), ("s", 2), ("s", 4)]) == [None, None, "sketch2", "sketch4"]
    cache.put(("s", 5), "sketch5", 30)  # evicts the least recently used: 3
    assert cache.get_many([("s", 3), ("s", 2)]) == [None, "sketch2"]


@pytest.mark.parametrize(
    ("path", "qs", "accepted"),
    [
        ("/v1/aggregates/distinct", b"field=user_id&start=1000&end=2000", True),
        ("/v1/aggregates/distinct", b"field=user_id&confidence=0.9", True),
        ("/v1/aggregates/distinct", b"start=1000&end=2000", False),  # field missing: FastAPI's 422
        ("/v1/aggregates/distinct", b"field=user_id&field=item_id", False),  # repeated
        ("/v1/aggregates/distinct", b"field=user_id&x=1", False),  # unknown parameter
        ("/v1/aggregates/distinct", b"field=user_id&confidence=1", False),  # out of (0, 1)
        ("/v1/aggregates/distinct", b"field=user_id&confidence=1e-1", False),  # not plain: FastAPI decides
        ("/v1/aggregates/distinct", b"field=user_id&start=2000&end=1000", True),  # the service raises 400
        ("/v1/aggregates/distinct", b"field=user_id&start=bad", False),  # QueryError: FastAPI answers
        ("/v1/aggregates/distinct", b"field=user_id&country=DE&device=mobile", False),
        ("/v1/aggregates/top", b"field=item_id&k=10", True),
        ("/v1/aggregates/top", b"field=item_id&k=0", False),
        ("/v1/aggregates/top", b"field=item_id&k=010", False),
        ("/v1/aggregates/quantiles", b"field=price&q=0.5&q=0.99", True),
        ("/v1/aggregates/quantiles", b"field=price&q=1.5", False),
        ("/v1/aggregates/frequency", b"field=item_id&value=i1", True),
        ("/v1/aggregates/frequency", b"field=item_id&value=", False),
        ("/v1/aggregates/timeseries", b"metric=events&step=60", True),
        ("/v1/aggregates/timeseries", b"step=-1", False),
        ("/v1/samples", b"n=20&country=DE", True),
        ("/v1/samples", b"n=10001", False),
        ("/v1/samples", b"n=%FF", False),  # not UTF-8
        ("/v1/models", b"", False),
    ],
)
def test_fast_path_takes_only_what_it_can_validate(path: str, qs: bytes, accepted: bool) -> None:
    assert (parse(path, qs) is not None) is accepted


def test_fast_path_params_and_defaults() -> None:
    _, rng, params = parse("/v1/aggregates/quantiles", b"field=price&start=1000&end=5000&category=books")
    assert (rng.start, rng.end, rng.dim, rng.dim_value) == (1000, 5000, "category", "books")
    assert params == {"field": "price"}  # q defaults to [0.5] in the call
    _, rng, params = parse("/v1/aggregates/frequency", b"field=item_id&value=a+b%2Fc&end=2024-01-01T00:00:00Z")
    assert params == {"field": "item_id", "value": "a b/c", "confidence": 0.95}
    assert rng.end - rng.start == 3_600_000


def _found(widths_starts, heads=None):
    from serving.reads import Found

    return [Found(Window(s, w), (heads or {}).get(s, b"T1|0|1|0|0|0|1|1|"), 1, 0, s + w, 1) for s, w in widths_starts]


def test_block_merges_equal_window_merges_and_follow_heads() -> None:
    from app.sketches import new_sketch
    from serving.reads import merge_blocks, merge_parts

    rnd = random.Random(5)
    # a cover's shape: 10 s windows, minutes (one missing), an hour, minutes, 10 s windows
    shape = [(t, 10) for t in range(50, 60, 10)] + [(t, 60) for t in range(60, 3600, 60) if t != 600] \
        + [(3600, 3600)] + [(t, 60) for t in range(7200, 7200 + 37 * 60, 60)] + [(9420, 10), (9430, 10)]
    found = _found(shape)
    parts = []
    for _ in found:
        sk = new_sketch("hll")
        sk.update_many(f"u{rnd.randrange(10**6)}" for _ in range(1500))  # HLL mode, as real windows are
        parts.append(sk)
    cache = SketchCache(budget_bytes=1 << 30)
    one_by_one = merge_parts(parts, "s").estimate().value
    # unions of HLL-mode sketches are exact (sparse ones may differ within their bounds: other estimator)
    assert merge_blocks(cache, "s", found, parts).estimate().value == one_by_one
    n = len(cache)
    assert 0 < n < len(found)
    assert merge_blocks(cache, "s", found, parts).estimate().value == one_by_one and len(cache) == n  # all hits
    # one window re-emitted (new head, new sketch): the blocks holding it are new keys
    i = 20
    changed = _found(shape, heads={shape[i][0]: b"T1|1|1|0|0|0|1|1|"})
    parts2 = list(parts)
    parts2[i] = new_sketch("hll")
    parts2[i].update_many(f"new{j}" for j in range(3000))
    expected = merge_parts(parts2, "s").estimate().value
    assert expected > one_by_one
    assert merge_blocks(cache, "s", changed, parts2).estimate().value == expected
    assert merge_blocks(cache, "s", found, parts).estimate().value == one_by_one  # the old heads: old blocks
