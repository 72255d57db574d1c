"""Serving over a real Redis: AggregateRecords built from real sketches go straight into the store,
and the HTTP API answers over many windows and resolutions (no Kafka: start_ingester=False)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from adapters.redis_store import AggregateStore
from app.config import Settings
from app.contracts.aggregates import AggregateRecord
from app.sketches import new_sketch
from app.windows import floor_to, resolution_ladder
from serving.app import create_app
from serving.ingest import AggregateIngester

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

W = 10_000  # base window, ms
MIN, HOUR = 60_000, 3_600_000
TOKEN = "s3cret-token"


def now_ms() -> int:
    return int(time.time() * 1000)


def record(kind: str, field: str, start: int, values=(), *, events: int | None = None, dim: str = "all",
           dim_value: str = "", revision: int = 0, late: int = 0) -> AggregateRecord:
    sketch = b""
    if kind not in ("count", "late"):
        sk = new_sketch(kind)
        sk.update_many(list(values))
        sketch = sk.to_bytes()
    return AggregateRecord(kind=kind, field=field, window_start=start, window_end=start + W,
                           events=len(values) if events is None else events, sketch=sketch, dim=dim,
                           dim_value=dim_value, late_events=late, revision=revision, emitted_at=now_ms())


@pytest.fixture
def store(redis_client, key_prefix) -> AggregateStore:
    return AggregateStore(redis_client, resolution_ladder(10), key_prefix=key_prefix)


def make_client(store, **settings) -> TestClient:
    app = create_app(Settings(**{"admin_token": TOKEN, **settings}), store=store, start_ingester=False)
    return TestClient(app)


@pytest.fixture
def client(store):
    with make_client(store) as c:
        yield c


# -- accuracy over many windows and resolutions -------------------------------------------------------
def test_distinct_within_bounds_over_many_windows_and_resolutions(store, client) -> None:
    # Minute-aligned relative to t0, so the covered windows (hence the estimate) are the same every run.
    rnd = random.Random(7)
    t1 = floor_to(now_ms() - 30_000, MIN)
    t0 = t1 - 2 * HOUR - 30 * MIN
    per_window = {}
    for s in range(t0, t1, W):
        per_window[s] = [f"user-{rnd.randrange(40_000)}" for _ in range(40)]
    recs = [record("hll", "user_id", s, users) for s, users in per_window.items()]
    for i in range(0, len(recs), 200):
        assert set(store.put_many(recs[i : i + 200])) == {"written"}

    params = {"field": "user_id", "start": t0 + 95_000, "end": t1 - 25_000}
    lazy = client.get("/v1/aggregates/distinct", params=params)  # roll-ups merged on read
    assert lazy.status_code == 200, lazy.text
    body = lazy.json()
    cov = body["covered"]
    # the start is older than the 10 s retention (2 h): widened to its minute; the end to its 10 s
    assert (cov["start"], cov["end"]) == (t0 + MIN, t1 - 20_000)
    inside = [s for s in per_window if cov["start"] <= s < cov["end"]]
    truth = len({u for s in inside for u in per_window[s]})
    assert body["lower_bound"] <= truth <= body["upper_bound"], (truth, body)
    assert abs(body["estimate"] - truth) / truth < 0.05
    assert body["events"] == sum(len(per_window[s]) for s in inside)
    assert body["base_windows"] == len(inside)
    assert {"10", "60", "3600"} <= set(body["resolutions"])
    assert body["windows"] == body["windows_planned"] < 200
    assert body["sketch"]["type"] == "hll" and body["sketch"]["params"]["lg_k"] == 12
    assert body["confidence"] >= 0.95 and body["window_seconds"] == 10 and body["late_events"] == 0

    upto = now_ms()
    store.compact(upto=upto)
    # the buckets holding the last window that have not ended yet stay dirty: usually the hour
    # and the day; just after an hour boundary only the day
    still_open = sum(1 for width in (MIN, HOUR, 24 * HOUR) if floor_to(t1 - W, width) + width > upto)
    assert store.freshness()["dirty_rollups"] == still_open
    store.compact(upto=now_ms() + 2 * 86_400_000)
    assert store.freshness()["dirty_rollups"] == 0
    again = client.get("/v1/aggregates/distinct", params=params).json()
    for k in ("estimate", "lower_bound", "upper_bound", "events", "windows"):
        assert again[k] == body[k]


def test_other_sketches_hold_the_truth_over_a_range(store, client) -> None:
    rng = np.random.default_rng(3)
    t1 = floor_to(now_ms() - 20_000, 5 * MIN)
    t0 = t1 - 20 * MIN
    items_all, prices_all, events = Counter(), [], 0
    recs = []
    for s in range(t0, t1, W):
        items = [f"item-{int(x)}" for x in rng.zipf(1.6, 300) if x < 5000]
        prices = rng.exponential(20.0, len(items)).tolist()
        items_all.update(items)
        prices_all += prices
        events += len(items)
        evs = [f'{{"item_id":"{i}","price":{p}}}' for i, p in zip(items, prices)]
        recs += [record("frequent", "item_id", s, items), record("kll", "price", s, prices),
                 record("cms", "item_id", s, items), record("reservoir", "*", s, evs),
                 record("count", "*", s, events=len(items)), record("late", "*", s, events=0, late=1)]
    store.put_many(recs)
    store.compact()
    rng_params = {"start": t0, "end": t1}

    top = client.get("/v1/aggregates/top", params={"field": "item_id", "k": 5, **rng_params}).json()
    assert [r["item"] for r in top["estimate"]] == [i for i, _ in items_all.most_common(5)]
    for row in top["estimate"]:
        assert row["lower_bound"] <= items_all[row["item"]] <= row["upper_bound"]
    assert top["confidence"] == 1.0 and top["events"] == events and top["threshold"] >= 0

    q = client.get("/v1/aggregates/quantiles", params=[("field", "price"), ("q", 0.5), ("q", 0.99),
                                                        ("start", t0), ("end", t1)]).json()
    ordered = np.sort(prices_all)
    for row in q["estimate"]:
        # KLL compaction is randomized: check the answer's true rank, at twice the 99 % error (no flakes)
        rank = np.searchsorted(ordered, row["estimate"], side="right") / len(ordered)
        assert abs(rank - row["q"]) <= 2 * q["rank_error"] + 1 / len(ordered), (row, rank)
        assert row["lower_bound"] <= row["estimate"] <= row["upper_bound"]
    assert q["confidence"] == 0.99 and q["sketch"]["params"]["k"] == 200

    name = items_all.most_common(3)[2][0]
    f = client.get("/v1/aggregates/frequency", params={"field": "item_id", "value": name, **rng_params}).json()
    assert f["lower_bound"] <= items_all[name] <= f["upper_bound"] and f["value"] == name

    ts = client.get("/v1/aggregates/timeseries", params={"metric": "events", "step": 60, **rng_params}).json()
    assert sum(p["value"] for p in ts["points"]) == events and len(ts["points"]) == 20
    late = client.get("/v1/aggregates/timeseries", params={"metric": "late_events", "step": 300, **rng_params})
    assert [p["value"] for p in late.json()["points"]] == [30] * 4

    smp = client.get("/v1/samples", params={"n": 50, **rng_params}).json()
    assert smp["sample_size"] == 50 and smp["population"] == events
    assert all(set(e) == {"item_id", "price"} for e in smp["estimate"])


def test_filter_selects_the_dimension_breakdown(store, client) -> None:
    t = floor_to(now_ms() - 5 * MIN, W)
    store.put_many([record("hll", "user_id", t, [f"u{i}" for i in range(100)]),
                    record("hll", "user_id", t, [f"u{i}" for i in range(7)], dim="country", dim_value="DE")])
    de = client.get("/v1/aggregates/distinct", params={"field": "user_id", "country": "DE"}).json()
    everyone = client.get("/v1/aggregates/distinct", params={"field": "user_id"}).json()
    assert round(de["estimate"]) == 7 and de["filter"] == {"dim": "country", "value": "DE"}
    assert round(everyone["estimate"]) == 100 and everyone["filter"] is None
    fr = client.get("/v1/aggregates/distinct", params={"field": "user_id", "country": "FR"}).json()
    assert fr["estimate"] == 0 and fr["windows"] == 0 and fr["freshness_ms"] is None


# -- exactly-once: replays and revisions ---------------------------------------------------------------
def _events(client, start: int, end: int) -> dict:
    r = client.get("/v1/aggregates/timeseries", params={"metric": "events", "step": (end - start) // 1000,
                                                         "start": start, "end": end})
    assert r.status_code == 200, r.text
    return r.json()


def test_replayed_window_does_not_double_count(store, client) -> None:
    hour = floor_to(now_ms() - 2 * HOUR, HOUR)
    minute = hour + 7 * MIN
    recs = [record("count", "*", minute + i * W, events=5) for i in range(6)]
    assert store.put_many(recs) == ["written"] * 6
    assert store.put_many(recs) == ["unchanged"] * 6  # replay after a restart
    store.compact(upto=now_ms())
    assert _events(client, minute, minute + MIN)["points"][0]["value"] == 30
    assert _events(client, hour, hour + HOUR)["points"][0]["value"] == 30

    again = record("count", "*", minute + 2 * W, events=9, revision=1)  # re-emitted with late data
    assert store.put(again) == "written"
    assert store.put(again) == "unchanged"
    store.compact(upto=now_ms())
    assert _events(client, minute, minute + MIN)["points"][0]["value"] == 34
    hour_answer = _events(client, hour, hour + HOUR)
    assert hour_answer["points"][0]["value"] == 34 and hour_answer["windows"] == 1

    users = [f"u{i}" for i in range(50)]
    store.put(record("hll", "user_id", minute, users))
    store.put(record("hll", "user_id", minute, users))
    d = client.get("/v1/aggregates/distinct", params={"field": "user_id", "start": hour, "end": hour + HOUR}).json()
    assert round(d["estimate"]) == 50 and d["events"] == 50


def test_revisions_only_move_forward(store, client) -> None:
    t = floor_to(now_ms() - 10 * MIN, MIN)
    assert store.put(record("count", "*", t, events=20, revision=2)) == "written"
    assert store.put(record("count", "*", t, events=15, revision=1)) == "stale"
    assert store.put(record("count", "*", t, events=15, revision=0)) == "stale"
    assert _events(client, t, t + MIN)["points"][0]["value"] == 20
    assert store.put(record("count", "*", t, events=30, revision=3)) == "written"
    assert _events(client, t, t + MIN)["points"][0]["value"] == 30  # lazily re-merged minute


def test_rollup_keeps_children_that_expired(store, redis_client) -> None:
    t = floor_to(now_ms() - 30 * MIN, MIN)
    store.put_many([record("count", "*", t + i * W, events=1) for i in range(3)])
    store.compact()
    redis_client.delete(store.key(W, "count|*|all|", t))  # as if the child had expired
    store.put(record("count", "*", t + 4 * W, events=10))
    store.compact()
    ws = store.windows("count", "*", "all", "", t, t + MIN)
    assert [w.events for w in ws.windows] == [13] and ws.windows[0].base_windows == 4


def test_invalid_records_are_rejected(store) -> None:
    t = floor_to(now_ms(), W)
    bad = [
        AggregateRecord("count", "*", t + 1, t + 1 + W, 1, b""),  # not aligned
        AggregateRecord("count", "*", t, t + 2 * W, 1, b""),  # not the base width
        AggregateRecord("hll", "user_id", t, t + W, 1, b"garbage"),
        AggregateRecord("hll", "user_id", t, t + W, 1, new_sketch("kll").to_bytes()),  # wrong sketch kind
        AggregateRecord("count", "*", t, t + W, 1, b"", dim="planet", dim_value="Mars"),
        AggregateRecord("count", "*", t, t + W, -1, b""),
    ]
    for rec in bad:
        with pytest.raises(ValueError):
            store.put(rec)


# -- freshness -----------------------------------------------------------------------------------------
def test_freshness_ms_is_now_minus_newest_window_end(store, client) -> None:
    start = floor_to(now_ms() - 30_000, W)
    store.put_many([record("hll", "user_id", start - W, ["a"]), record("hll", "user_id", start, ["b"])])
    before = now_ms()
    body = client.get("/v1/aggregates/distinct", params={"field": "user_id"}).json()
    after = now_ms()
    assert before - (start + W) <= body["freshness_ms"] <= after - (start + W)
    assert 20_000 <= body["freshness_ms"] < 60_000
    old = client.get("/v1/aggregates/distinct", params={"field": "user_id", "end": start - W}).json()
    assert old["freshness_ms"] is None and old["windows"] == 0
    assert store.freshness()["newest_window_end"] == start + W


# -- errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/aggregates/distinct", {"field": "price"}),
        ("/v1/aggregates/top", {"field": "session_id"}),
        ("/v1/aggregates/quantiles", {"field": "user_id"}),
        ("/v1/aggregates/quantiles", {"field": "features."}),
        ("/v1/aggregates/frequency", {"field": "category", "value": "x"}),
    ],
)
def test_unknown_field_is_404(client, path, params) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 404 and "unknown field" in r.json()["detail"]


def test_feature_fields_are_known_to_kll(client) -> None:
    assert client.get("/v1/aggregates/quantiles", params={"field": "features.dwell"}).status_code == 200


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/v1/aggregates/distinct", {"field": "user_id", "start": 2000, "end": 1000}, 400, "before end"),
        ("/v1/aggregates/distinct", {"field": "user_id", "start": 1000, "end": 1000}, 400, "before end"),
        ("/v1/aggregates/distinct", {"field": "user_id", "start": "yesterday"}, 400, "RFC 3339"),
        ("/v1/aggregates/distinct", {"field": "user_id", "country": "DE", "device": "mobile"}, 400, "one filter"),
        ("/v1/aggregates/distinct", {"field": "user_id", "country": ""}, 400, "empty"),
        ("/v1/aggregates/distinct", {"field": "user_id", "confidence": 1.5}, 422, "confidence"),
        ("/v1/aggregates/distinct", {}, 422, "field"),
        ("/v1/aggregates/top", {"field": "item_id", "k": 0}, 422, "k"),
        ("/v1/aggregates/top", {"field": "item_id", "k": 1001}, 422, "k"),
        ("/v1/aggregates/top", {"field": "item_id", "k": "many"}, 422, "k"),
        ("/v1/aggregates/quantiles", {"field": "price", "q": 1.5}, 400, "[0, 1]"),
        ("/v1/aggregates/quantiles", {"field": "price", "q": "nan"}, 400, "[0, 1]"),
        ("/v1/aggregates/frequency", {"field": "item_id"}, 422, "value"),
        ("/v1/aggregates/timeseries", {"step": 15}, 400, "multiple"),
        ("/v1/aggregates/timeseries", {"metric": "revenue"}, 400, "metric"),
        ("/v1/aggregates/timeseries", {"step": 10, "start": 0, "end": 30_000_000}, 400, "points"),
        ("/v1/aggregates/timeseries", {"step": 60, "start": 0, "end": 30 * 86_400_000}, 400, "points"),
        ("/v1/samples", {"n": 0}, 422, "n"),
    ],
)
def test_bad_parameters_get_a_message(client, path, params, status, message) -> None:
    r = client.get(path, params=params)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_range_longer_than_retention_is_400(client) -> None:
    end = now_ms()
    r = client.get("/v1/aggregates/distinct", params={"field": "user_id", "start": end - 500 * 86_400_000, "end": end})
    assert r.status_code == 400 and "retention" in r.json()["detail"]


def test_seven_day_range_is_answered(client) -> None:
    end = now_ms()
    r = client.get("/v1/aggregates/distinct", params={"field": "user_id", "start": end - 7 * 86_400_000, "end": end})
    assert r.status_code == 200 and r.json()["windows_planned"] < 300


class FakeIngester:
    alive = True
    ready = threading.Event()
    rebuild_status = {"state": "idle"}

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def rebuild(self, flush: bool = False) -> dict:
        self.calls.append(flush)
        return {"state": "running", "flush": flush}

    def stop(self) -> None:
        pass


def test_admin_token_required(store) -> None:
    fake = FakeIngester()
    app = create_app(Settings(admin_token=TOKEN, max_body_bytes=1000), store=store, start_ingester=False,
                     ingester=fake)
    with TestClient(app) as c:
        assert c.post("/v1/admin/rebuild").status_code == 401
        assert c.post("/v1/admin/rebuild", headers={"Authorization": "Basic abc"}).status_code == 401
        r = c.post("/v1/admin/rebuild", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 403 and r.json()["detail"] == "wrong admin token"
        ok = c.post("/v1/admin/rebuild?flush=true", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 202 and ok.json()["state"] == "running" and fake.calls == [True]
    with make_client(store, admin_token="") as c:
        r = c.post("/v1/admin/rebuild", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403 and r.json()["detail"] == "admin disabled"


def test_oversized_body_is_413(store) -> None:
    with make_client(store, max_body_bytes=1000) as c:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert c.post("/v1/admin/rebuild", content=b"x" * 1001, headers=auth).status_code == 413
        chunked = c.post("/v1/admin/rebuild", content=iter([b"x" * 600, b"x" * 600]), headers=auth)
        assert chunked.status_code == 413  # no Content-Length: counted while streaming
        assert c.post("/v1/admin/rebuild", content=b"x" * 1000, headers=auth).status_code == 503  # no ingester


def test_not_ready_while_redis_is_down() -> None:
    client = redis.Redis(port=1, socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    dead = AggregateStore(client, key_prefix="x:")
    with make_client(dead) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503
        r = c.get("/v1/aggregates/distinct", params={"field": "user_id"})
        assert r.status_code == 503 and r.json()["detail"] == "store unavailable"


def test_ops_routes(client) -> None:
    assert client.get("/readyz").json()["ready"] is True
    client.get("/v1/aggregates/distinct", params={"field": "user_id"})
    text = client.get("/metrics").text
    assert 'tributary_http_request_duration_seconds_count{method="GET",route="/v1/aggregates/distinct",status="200"}' \
        in text
    assert "tributary_aggregates_bad_records_total" in text
    page = client.get("/dashboard")
    assert page.status_code == 200 and "<svg" in page.text and "/v1/aggregates/top" in page.text
    assert "cdn" not in page.text.lower() and "src=" not in page.text and "https://" not in page.text
    assert client.get("/docs").status_code == 200 and client.get("/openapi.json").status_code == 200


# -- never a 500 on user input ---------------------------------------------------------------------------
ROUTES = ["/v1/aggregates/distinct", "/v1/aggregates/top", "/v1/aggregates/quantiles", "/v1/aggregates/frequency",
          "/v1/aggregates/timeseries", "/v1/samples", "/readyz", "/healthz", "/nope"]
NAMES = ["field", "k", "q", "value", "metric", "step", "n", "start", "end", "country", "device", "category",
         "confidence", "x"]
VALUES = ["", "0", "-1", "1", "10", "0.5", "1e308", "-1e308", "nan", "inf", "99999999999999999999999", "user_id",
          "item_id", "price", "features.a", "features.", "events", "late_events", "2024-01-01T00:00:00Z",
          "2024-13-01T00:00:00Z", "\u00e9\u00e8", "\x00", "%", "' OR 1=1", "a" * 3000, "DE", "[]", "{}", "true",
          "1700000000000", "253402300799999", "253402300800000", "features." + "x" * 300]


def test_fuzzed_query_params_never_500(store, client) -> None:
    t = floor_to(now_ms() - MIN, W)
    store.put_many([record("hll", "user_id", t, ["a"]), record("count", "*", t, events=3)])
    rnd = random.Random(11)
    for _ in range(600):
        params = [(rnd.choice(NAMES), rnd.choice(VALUES)) for _ in range(rnd.randrange(0, 6))]
        path = rnd.choice(ROUTES)
        r = client.get(path, params=params)
        assert r.status_code < 500 or (path == "/readyz" and r.status_code == 503), (path, params, r.text)
        assert r.headers["content-type"].startswith("application/json") or path == "/metrics"


# -- the thin ingester, with a fake consumer -------------------------------------------------------------
class FakeMsg:
    def __init__(self, value, offset: int) -> None:
        self._value, self._offset = value, offset

    def error(self):
        return None

    def value(self):
        return self._value

    def topic(self) -> str:
        return "aggregates.v1"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FakeConsumer:
    def __init__(self, batches, store: AggregateStore) -> None:
        self.batches, self.store, self.commits = list(batches), store, []

    def subscribe(self, topics) -> None:
        self.topics = topics

    def consume(self, num_messages: int, timeout: float):
        if self.batches:
            return self.batches.pop(0)
        time.sleep(0.01)
        return []

    def commit(self, asynchronous: bool = True) -> None:
        self.commits.append(self.store.freshness()["newest_window_end"])  # what Redis held at commit

    def close(self) -> None:
        pass


def test_ingester_counts_bad_records_and_commits_after_writing(store) -> None:
    t = floor_to(now_ms() - MIN, W)
    good = record("count", "*", t, events=4)
    batch = [FakeMsg(good.to_json(), 0), FakeMsg(b"not json", 1), FakeMsg(None, 2),
             FakeMsg(b'{"kind":"count"}', 3), FakeMsg(record("count", "*", t + 1, events=1).to_json(), 4),
             FakeMsg(good.to_json(), 5)]
    fake = FakeConsumer([batch], store)
    ing = AggregateIngester(Settings(), store, consumer_factory=lambda group: fake)
    ing.start()
    try:
        deadline = time.monotonic() + 5
        while not fake.commits and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ing.ready.is_set() and ing.alive
    finally:
        ing.stop()
    assert fake.commits and fake.commits[0] == t + W  # committed only after the write
    reg = ing.metrics.registry
    # "not json" and the invalid one; the None value is a tombstone (skipped, not bad)
    assert reg.get_sample_value("tributary_aggregates_bad_records_total", {"reason": "decode"}) == 2
    assert reg.get_sample_value("tributary_aggregates_bad_records_total", {"reason": "invalid"}) == 1
    assert reg.get_sample_value("tributary_aggregates_ingested_total", {"result": "written"}) == 1
    assert reg.get_sample_value("tributary_aggregates_ingested_total", {"result": "unchanged"}) == 1
    assert store.windows("count", "*", "all", "", t, t + W).windows[0].events == 4


def test_reads_survive_a_script_flush(store, client, redis_client) -> None:
    t = floor_to(now_ms() - 5 * MIN, MIN)
    store.put_many([record("hll", "user_id", t + i * W, [f"u{i}"]) for i in range(6)])
    redis_client.script_flush()  # as after a Redis restart
    body = client.get("/v1/aggregates/distinct", params={"field": "user_id", "start": t, "end": t + MIN}).json()
    assert round(body["estimate"]) == 6 and body["resolutions"] == {"60": 1}


def test_lifespan_opens_its_own_redis_client(redis_address) -> None:
    host, port = redis_address
    app = create_app(Settings(redis_host=host, redis_port=port), start_ingester=False)
    assert app.state.store is None  # nothing built before the lifespan runs
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 200
        assert c.get("/v1/aggregates/distinct", params={"field": "user_id"}).status_code == 200
