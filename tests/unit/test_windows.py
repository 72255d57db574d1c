"""The pure cover planner (app.windows): exact tiling, minimality, retention, alignment, parsing."""

from __future__ import annotations

import functools
import random

import pytest

from app.windows import (
    DAY_S,
    HOUR_S,
    Window,
    canonical_cover,
    ceil_to,
    children,
    floor_to,
    parents,
    parse_time,
    plan_cover,
    resolution_ladder,
    steps,
)

S = 1000
LADDER = (10 * S, 60 * S, HOUR_S * S, DAY_S * S)


def assert_tiles(cover) -> None:
    """Windows are aligned, contiguous, non-overlapping, and span exactly [cover.start, cover.end)."""
    t = cover.start
    for w in cover.windows:
        assert w.start == t, (w, t)
        assert w.start % w.width == 0
        t = w.end
    assert t == cover.end


def min_tiling(start: int, end: int, widths: tuple[int, ...]) -> int:
    """Brute force: fewest aligned windows tiling [start, end) (dynamic programming)."""

    @functools.lru_cache(maxsize=None)
    def best(t: int) -> float:
        if t == end:
            return 0
        return min((1 + best(t + w) for w in widths if t % w == 0 and t + w <= end), default=float("inf"))

    return int(best(start))


def test_cover_of_aligned_range_is_exact_and_coarse() -> None:
    start = 3 * DAY_S * S
    c = plan_cover(start, start + 2 * DAY_S * S + 3 * HOUR_S * S, LADDER)
    assert (c.start, c.end) == (start, start + 2 * DAY_S * S + 3 * HOUR_S * S)
    assert [w.width for w in c.windows] == [DAY_S * S] * 2 + [HOUR_S * S] * 3
    assert_tiles(c)


def test_unaligned_range_widens_only_to_the_base_window() -> None:
    c = plan_cover(12_345, 987_654, LADDER)
    assert (c.start, c.end) == (10_000, 990_000)
    assert_tiles(c)


@pytest.mark.parametrize("seed", range(200))
def test_cover_is_minimal_against_brute_force(seed: int) -> None:
    rnd = random.Random(seed)
    widths = (1, 3, 6, 24)
    start = rnd.randrange(0, 200)
    end = start + rnd.randrange(1, 200)
    c = plan_cover(start, end, widths)
    assert_tiles(c)
    assert (c.start, c.end) == (start, end)
    assert len(c.windows) == min_tiling(start, end, widths)


@pytest.mark.parametrize("seed", range(50))
def test_any_range_up_to_seven_days_merges_a_few_hundred_windows(seed: int) -> None:
    rnd = random.Random(seed)
    start = rnd.randrange(0, 10**13)
    end = start + rnd.randrange(1, 7 * DAY_S * S + 1)
    c = plan_cover(start, end, LADDER)
    assert_tiles(c)
    assert c.start <= start and c.end >= end and c.end - end < 10 * S and start - c.start < 10 * S
    assert len(c.windows) <= 7 + 2 * 23 + 2 * 59 + 2 * 5 + 2


def test_seven_days_ending_now_with_default_retention_stays_small() -> None:
    ladder = resolution_ladder(10)
    widths = [r.ms for r in ladder]
    now = 1_700_000_123_456
    avail = [now - r.retention_ms for r in ladder[:-1]] + [None]
    c = plan_cover(now - 7 * DAY_S * S, now, widths, avail)
    assert_tiles(c)
    assert c.end == ceil_to(now, 10 * S)
    assert len(c.windows) < 300
    for w in c.windows:
        level = widths.index(w.width)
        assert avail[level] is None or w.start >= avail[level]


@pytest.mark.parametrize("seed", range(100))
def test_retention_widens_outward_and_never_uses_expired_windows(seed: int) -> None:
    rnd = random.Random(seed)
    widths = (1, 3, 6, 24)
    now = 500
    avail = [now - rnd.randrange(1, 30), now - rnd.randrange(30, 90), now - rnd.randrange(90, 200), None]
    start = rnd.randrange(200, now)
    end = rnd.randrange(start + 1, now + 20)
    c = plan_cover(start, end, widths, avail)
    assert_tiles(c)
    assert c.start <= start and c.end >= end
    for w in c.windows:
        level = widths.index(w.width)
        assert avail[level] is None or w.start >= avail[level], (w, avail)


def test_only_coarsest_level_available() -> None:
    c = plan_cover(25, 29, (1, 10, 100), available_from=(1000, 1000, None))
    assert c.windows == (Window(0, 100),)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="before end"):
        plan_cover(5, 5, LADDER)
    with pytest.raises(ValueError, match="divide"):
        plan_cover(0, 100, (10, 15))
    with pytest.raises(ValueError, match="one entry per resolution"):
        plan_cover(0, 100, (10, 20), available_from=(None,))


def test_canonical_cover_matches_plan_without_retention() -> None:
    assert tuple(canonical_cover(10_000, 7_300_000, LADDER)) == plan_cover(10_000, 7_300_000, LADDER).windows


def test_parents_and_children_are_inverse() -> None:
    w = Window(3_730_000, 10 * S)
    ps = parents(w, LADDER)
    assert [p.width for p in ps] == list(LADDER[1:])
    for p in ps:
        assert p.start <= w.start < p.end
    minute = ps[0]
    assert w in children(minute, 10 * S) and len(children(minute, 10 * S)) == 6


def test_steps_and_rounding() -> None:
    assert [(w.start, w.end) for w in steps(61_000, 180_000, 60_000)] == [(60_000, 120_000), (120_000, 180_000)]
    assert floor_to(-5, 10) == -10 and ceil_to(-5, 10) == 0


def test_resolution_ladder() -> None:
    ladder = resolution_ladder(10)
    assert [r.seconds for r in ladder] == [10, 60, 3600, 86400]
    assert all(a.retention_s <= b.retention_s for a, b in zip(ladder, ladder[1:]))
    assert ladder[-1].retention_s >= 7 * DAY_S
    assert [r.seconds for r in resolution_ladder(7)] == [7]  # nothing above 7 s divides evenly
    assert [r.seconds for r in resolution_ladder(60)] == [60, 3600, 86400]
    assert resolution_ladder(10, retention_s={60: 3 * DAY_S})[1].retention_s == 3 * DAY_S
    assert resolution_ladder(10, retention_s={60: 60})[1].retention_s == ladder[0].retention_s  # never below finer


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("1700000000000", 1_700_000_000_000),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T22:13:20.123456Z", 1_700_000_000_123),
        ("2023-11-14t22:13:20z", 1_700_000_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
        ("2023-11-14T17:13:20-05:00", 1_700_000_000_000),
    ],
)
def test_parse_time(text: str, ms: int) -> None:
    assert parse_time(text) == ms


@pytest.mark.parametrize(
    "text",
    ["", "-1", "abc", "2023-11-14", "2023-11-14T22:13:20", "99999999999999999999", "1e12", "1.5", "٣٤٥",
     "2023-13-45T00:00:00Z", "10000-01-01T00:00:00Z", "NaN", "T" * 100],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)
