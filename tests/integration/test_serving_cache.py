"""Serving's caches over a real Redis: a re-emitted or re-merged window changes the answer at once,
even when its counts and emission time stay the same; the fast path answers as FastAPI does."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from adapters.redis_store import AggregateStore
from app.config import Settings
from app.contracts.aggregates import AggregateRecord
from app.sketches import new_sketch
from app.windows import floor_to, resolution_ladder
from serving.app import create_app

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

W, MIN, HOUR = 10_000, 60_000, 3_600_000
EMITTED = 1_700_000_000_000  # one fixed emission time: only the revision tells versions apart


def hll(start: int, users, *, revision: int = 0, events: int = 10, kind: str = "hll", field: str = "user_id"):
    sk = new_sketch(kind)
    sk.update_many(list(users))
    return AggregateRecord(kind=kind, field=field, window_start=start, window_end=start + W, events=events,
                           sketch=sk.to_bytes(), revision=revision, emitted_at=EMITTED)


@pytest.fixture
def store(redis_client, key_prefix) -> AggregateStore:
    return AggregateStore(redis_client, resolution_ladder(10), key_prefix=key_prefix)


@pytest.fixture
def client(store):
    with TestClient(create_app(Settings(), store=store, start_ingester=False)) as c:
        yield c


def distinct(client, start: int, end: int, **extra) -> dict:
    r = client.get("/v1/aggregates/distinct", params={"field": "user_id", "start": start, "end": end, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_reemitted_base_window_changes_the_answer_at_once(store, client) -> None:
    t = floor_to(int(time.time() * 1000) - 30 * MIN, MIN)
    store.put_many([hll(t + i * W, [f"u{i}-{j}" for j in range(10)]) for i in range(3)])
    first = distinct(client, t, t + 3 * W)  # three base windows: answer and sketches now cached
    cached = distinct(client, t, t + 3 * W)
    assert round(first["estimate"]) == 30 and cached["estimate"] == first["estimate"]
    # same events, same emission time, other users: only the revision differs
    assert store.put(hll(t + W, [f"new-{j}" for j in range(20)], revision=1, events=10)) == "written"
    again = distinct(client, t, t + 3 * W)
    assert round(again["estimate"]) == 40  # u0 (10) + new (20) + u2 (10); u1 is gone
    assert again["events"] == first["events"]


def test_remerged_rollup_changes_the_answer_at_once(store, client) -> None:
    t = floor_to(int(time.time() * 1000) - 30 * MIN, MIN)
    store.put_many([hll(t + i * W, [f"u{i}-{j}" for j in range(10)]) for i in range(6)])
    store.compact(upto=t + HOUR)
    first = distinct(client, t, t + MIN)  # one minute bucket
    assert first["resolutions"] == {"60": 1} and round(first["estimate"]) == 60
    store.put(hll(t + 2 * W, [f"other-{j}" for j in range(20)], revision=1))  # same events and emission time
    store.compact(upto=t + HOUR)  # the bucket's counts and emission time are unchanged: its revision is not
    again = distinct(client, t, t + MIN)
    assert again["events"] == first["events"] and round(again["estimate"]) == 70
    # lazily, on read, without compaction
    store.put(hll(t + 3 * W, [], revision=2))
    assert round(distinct(client, t, t + MIN)["estimate"]) == 60


def test_window_changing_between_heads_and_sketches_is_read_again(store, client, monkeypatch) -> None:
    t = floor_to(int(time.time() * 1000) - 30 * MIN, MIN)
    store.put_many([hll(t + i * W, [f"u{i}-{j}" for j in range(10)]) for i in range(2)])
    values = store.values
    calls = []

    def racing(series, wins):
        if not calls:  # the window is re-emitted after serving read its head
            store.put(hll(t, [f"late-{j}" for j in range(30)], revision=5))
        calls.append(len(wins))
        return values(series, wins)

    monkeypatch.setattr(store, "values", racing)
    body = distinct(client, t, t + 2 * W)
    assert round(body["estimate"]) == 40 and len(calls) == 2  # read again: never the old sketch or counts


def test_fast_path_answers_as_fastapi_does(store, client) -> None:
    t = floor_to(int(time.time() * 1000) - 3 * HOUR, HOUR)
    recs = []
    for i in range(0, 2 * 360, 7):
        s = t + i * W
        recs += [hll(s, [f"u{i % 50}", f"u{i}"]), hll(s, [f"i{i % 5}"], kind="frequent", field="item_id"),
                 hll(s, [f"i{i % 5}"], kind="cms", field="item_id"),
                 AggregateRecord("count", "*", s, s + W, 3, b"", revision=0, emitted_at=EMITTED)]
        kll = new_sketch("kll")
        kll.update_many([float(i), float(i + 1)])
        recs.append(AggregateRecord("kll", "price", s, s + W, 2, kll.to_bytes(), emitted_at=EMITTED))
    store.put_many(recs)
    rng = {"start": t + 5 * MIN + 20_000, "end": t + 2 * HOUR - 30_000}
    cases = [("/v1/aggregates/distinct", {"field": "user_id"}), ("/v1/aggregates/top", {"field": "item_id", "k": 3}),
             ("/v1/aggregates/quantiles", {"field": "price", "q": [0.1, 0.9]}),
             ("/v1/aggregates/frequency", {"field": "item_id", "value": "i3"}),
             ("/v1/aggregates/timeseries", {"metric": "events", "step": 600})]
    for path, params in cases:
        fast = client.get(path, params={**params, **rng})
        slow = client.get(path, params={**params, **rng, "unknown": "1"})  # unknown parameter: FastAPI's route
        assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
        assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
        a, b = fast.json(), slow.json()
        assert abs(a.pop("freshness_ms") - b.pop("freshness_ms")) < 5_000
        assert a == b, path
    # errors always come from FastAPI's handlers, with their messages
    bad = client.get("/v1/aggregates/distinct", params={"field": "price"})
    assert bad.status_code == 404 and "unknown field" in bad.json()["detail"]
    assert client.get("/v1/aggregates/top", params={"field": "item_id", "k": 0}).status_code == 422


def test_store_without_header_keys_is_read_from_values_then_backfilled(store, client, redis_client) -> None:
    t = floor_to(int(time.time() * 1000) - 30 * MIN, MIN)
    store.put_many([hll(t + i * W, [f"u{i}-{j}" for j in range(10)]) for i in range(8)])
    store.compact(upto=t + HOUR)
    before = distinct(client, t, t + MIN + 2 * W)
    # as written before header keys existed: no 'h' keys, no layout mark
    heads = list(redis_client.scan_iter(match=store.p + "h*"))
    assert len(heads) >= 10  # 8 windows and their roll-up buckets
    redis_client.delete(*heads)
    redis_client.hdel(store.meta_key, "layout")
    legacy = AggregateStore(redis_client, resolution_ladder(10), key_prefix=store.p)
    with TestClient(create_app(Settings(), store=legacy, start_ingester=False)) as c:
        assert {k: v for k, v in distinct(c, t, t + MIN + 2 * W).items() if k != "freshness_ms"} == \
            {k: v for k, v in before.items() if k != "freshness_ms"}
        assert legacy.backfill_heads() == len(heads)
        assert legacy.layout == 2 and redis_client.hget(store.meta_key, "layout") == b"2"
        assert distinct(c, t, t + MIN + 2 * W)["estimate"] == before["estimate"]
    assert all(0 < redis_client.pttl(h) <= redis_client.pttl(store.p + "w" + h.decode()[len(store.p) + 1:]) + 5
               for h in redis_client.scan_iter(match=store.p + "h*"))
