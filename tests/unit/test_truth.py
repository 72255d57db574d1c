"""Ground truth: equal to a brute-force recount, exact for any range and filter, and it survives a save/load."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import pytest

from app.contracts.events import Event, Rejection, parse_event
from app.generator import EventGenerator, Truth
from app.generator.event_table import EventTable
from app.generator.truth import QUANTILES, events_file_for

START = 1_800_000_000_000
WINDOW_S = 10


@pytest.fixture(scope="module")
def run():
    gen = EventGenerator(
        seed=21, rate=300, start_ms=START, n_users=2_000, n_items=800,
        malformed_rate=0.03, late_rate=0.03, late_by_ms=4_000, bot_burst_every_s=20,
    )  # fmt: skip
    msgs = list(gen.events(20_000))
    truth = Truth(window_seconds=WINDOW_S)
    for m in msgs:
        truth.add(m)
    return gen, msgs, truth


def _brute_force(msgs) -> dict:
    """Everything recounted from the raw bytes, as the pipeline would read them, in plain Python."""
    on_time: list[Event] = []
    late: list[Event] = []
    reasons: Counter[str] = Counter()
    for m in msgs:
        r = parse_event(m.value)
        if isinstance(r, Rejection):
            reasons[r.reason] += 1
        else:
            (late if m.kind == "late" else on_time).append(r)
    windows: dict[int, dict] = defaultdict(lambda: {"events": 0, "users": set(), "late": 0})
    for e in on_time:
        w = windows[e.event_time // (WINDOW_S * 1000) * WINDOW_S * 1000]
        w["events"] += 1
        w["users"].add(e.user_id)
    for e in late:
        windows[e.event_time // (WINDOW_S * 1000) * WINDOW_S * 1000]["late"] += 1
    prices = sorted(e.price for e in on_time)
    items = Counter(e.item_id for e in on_time)
    return {
        "messages": len(msgs),
        "valid": len(on_time),
        "late": len(late),
        "malformed": sum(reasons.values()),
        "malformed_reasons": dict(sorted(reasons.items())),
        "event_types": dict(Counter(e.event_type for e in on_time)),
        "time_range": {"min_event_time": min(e.event_time for e in on_time), "max_event_time": max(e.event_time for e in on_time)},
        "distinct": {f: len({getattr(e, f) for e in on_time}) for f in ("user_id", "session_id", "item_id")},
        "by": {f: dict(sorted(Counter(getattr(e, f) for e in on_time).items())) for f in ("country", "device", "category")},
        "top_items": [[i, n] for i, n in sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:100]],
        "price_quantiles": {f"{q:.2f}": prices[max(math.ceil(q * len(prices)) - 1, 0)] for q in QUANTILES},
        "windows": [
            {"start": s, "events": w["events"], "users": len(w["users"]), "late": w["late"]} for s, w in sorted(windows.items())
        ],
    }


def test_truth_equals_a_brute_force_recount(run):
    gen, msgs, truth = run
    summary = truth.summary()
    expected = _brute_force(msgs)
    for key, value in expected.items():
        assert summary[key] == value, key
    assert summary["malformed"] == gen.counts["malformed"] > 0
    assert summary["late"] == gen.counts["late"] > 0
    assert summary["valid"] + summary["late"] + summary["malformed"] == len(msgs)
    # every late event is counted in the window its event time falls in
    assert sum(w["late"] for w in summary["windows"]) == summary["late"]


def test_any_range_and_filter_is_exact(run):
    _, msgs, truth = run
    events = [(m.event, m.kind) for m in msgs if m.kind != "malformed"]
    table = truth.table()
    rng = random.Random(0)
    lo, hi = START - 10_000, max(e.event_time for e, _ in events) + 1
    for _ in range(40):
        start = rng.randrange(lo, hi)
        end = rng.randrange(start, hi + 1)
        filters = rng.choice([{}, {"country": "US"}, {"device": "mobile"}, {"category": "books", "device": "desktop"}, {"country": "XX"}])
        chosen = [
            e for e, kind in events
            if kind == "valid" and start <= e.event_time < end and all(getattr(e, f) == v for f, v in filters.items())
        ]  # fmt: skip
        view = table.select(start, end, **filters)
        assert view.count() == len(chosen)
        assert view.distinct("user_id") == len({e.user_id for e in chosen})
        assert truth.distinct_users(start, end, **filters) == len({e.user_id for e in chosen})
        assert view.distinct("item_id") == len({e.item_id for e in chosen})
        if chosen:
            item = rng.choice(chosen).item_id
            assert view.frequency("item_id", item) == sum(e.item_id == item for e in chosen)
            prices = sorted(e.price for e in chosen)
            q = rng.random()
            assert view.quantile(q) == prices[max(math.ceil(q * len(prices)) - 1, 0)]
            assert view.rank(prices[0]) == sum(p <= prices[0] for p in prices) / len(prices)
    assert table.select(late=True).count() == sum(kind == "late" for _, kind in events)
    assert table.select(late=None).count() == len(events)


def test_save_and_load_round_trip(run, tmp_path):
    _, _, truth = run
    path = truth.save(tmp_path / "runs" / "truth.json")
    assert path.exists() and events_file_for(path).exists()
    loaded = Truth.load(path)
    assert loaded.summary() == truth.summary()
    a, b = truth.table(), loaded.table()
    for start, end, filters in [(START, START + 30_000, {}), (START + 5_000, START + 9_000, {"device": "tablet"})]:
        assert a.select(start, end, **filters).distinct("user_id") == b.select(start, end, **filters).distinct("user_id")
        assert a.select(start, end, **filters).top("item_id", 5) == b.select(start, end, **filters).top("item_id", 5)
    # Loaded truth can keep accumulating.
    loaded.add_raw(b"not json")
    assert loaded.summary()["malformed"] == truth.summary()["malformed"] + 1


def test_raw_messages_give_the_same_truth(run):
    _, msgs, truth = run
    again = Truth(window_seconds=WINDOW_S)
    for m in msgs:
        again.add_raw(m.value, late=m.kind == "late")
    assert again.summary() == truth.summary()


def test_events_and_dicts_can_be_added_directly():
    e = parse_event(b'{"event_id":"e","event_type":"impression","event_time":5,"user_id":"u","session_id":"s",'
                    b'"item_id":"i","category":"c","country":"US","device":"mobile","price":2}')  # fmt: skip
    t = Truth()
    t.add_event(e)
    t.add_event(e.to_dict(), late=True)
    s = t.summary()
    assert (s["valid"], s["late"], s["distinct"]["user_id"]) == (1, 1, 1)


def test_quantiles_are_inclusive_and_empty_truth_is_well_defined():
    t = EventTable.from_rows([{"event_time": i, "price": float(p)} for i, p in enumerate([5, 1, 3, 2, 4])])
    assert [t.quantile(q) for q in (0.0, 0.2, 0.21, 0.5, 0.99, 1.0)] == [1.0, 1.0, 2.0, 3.0, 5.0, 5.0]
    assert t.rank(3.0) == 0.6
    empty = Truth().summary()
    assert empty["valid"] == 0 and empty["windows"] == [] and empty["price_quantiles"] == {}
