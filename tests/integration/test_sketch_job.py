"""The Flink sketch job on the real cluster: validation parity, DLQ, windows, HLL bounds."""

from __future__ import annotations

import json

import orjson
import pytest

from adapters.kafka_io import DeliveryTracker, producer
from app.contracts.aggregates import AggregateRecord
from app.sketches import HllSketch
from flink_jobs.sql import SKETCHES
from tests.support.stack import consume_all, repo_path

pytestmark = pytest.mark.integration

BASE_MS = 1_700_000_000_000  # fixed event time, far from "now": windows close only by watermark


def _vectors():
    for line in repo_path("tests", "vectors", "events.jsonl").read_text().splitlines():
        v = json.loads(line)
        raw = bytes.fromhex(v["raw_hex"]) if "raw_hex" in v else v["raw"].encode()
        yield v, raw


def _event(i: int, user: str, t: int) -> bytes:
    return orjson.dumps(
        {"event_id": f"e{i}", "event_type": "impression", "event_time": t, "user_id": user, "session_id": "s",
         "item_id": f"i{i % 7}", "category": "c", "country": "US", "device": "mobile", "price": 1.0}
    )  # fmt: skip


def _produce(s, messages: list[bytes]) -> None:
    p, tracker = producer(s.kafka_bootstrap), DeliveryTracker()
    for m in messages:
        p.produce(s.topics.events, m, on_delivery=tracker)
        p.poll(0)
    p.flush(30)
    assert tracker.failed == 0 and tracker.delivered == len(messages)


def test_dlq_reasons_match_the_shared_vectors(topics, sketch_job):
    """Every invalid vector reaches dlq.v1 with exactly the reason the contract names."""
    vectors = list(_vectors())
    invalid = [(v, raw) for v, raw in vectors if v["reason"] is not None]
    _produce(topics, [raw for _, raw in vectors])
    dlq = [orjson.loads(m) for m in consume_all(topics.kafka_bootstrap, topics.topics.dlq, expect=len(invalid), timeout=120)]
    assert len(dlq) == len(invalid)
    got = sorted((d["reason"], d["raw"]) for d in dlq)
    import base64

    want = sorted((v["reason"], base64.b64encode(raw).decode()) for v, raw in invalid)
    assert got == want  # reason and the raw bytes, unchanged
    assert all(d["source_topic"] == topics.topics.events and d["source_offset"] >= 0 for d in dlq)


def test_windows_count_exactly_and_hll_bounds_hold(topics, sketch_job):
    window_ms = topics.window_seconds * 1000
    n, users = 30_000, 4_000
    msgs, truth_users, truth_counts = [], {}, {}
    for i in range(n):
        t = BASE_MS + i * 2  # 60 s of event time: 6 windows
        user = f"u{(i * 7919) % users}"
        msgs.append(_event(i, user, t))
        w = t - t % window_ms
        truth_users.setdefault(w, set()).add(user)
        truth_counts[w] = truth_counts.get(w, 0) + 1
    msgs.insert(5_000, b"{not json")
    msgs.append(_event(n, "closer", BASE_MS + 10 * 60_000))  # 10 min later: closes every window
    _produce(topics, msgs)

    # every window: each sketch for dim all and for the one country, device and category used
    expected = len(truth_counts) * (len(SKETCHES) + 1) * 4  # + the exact count record
    records = [AggregateRecord.from_json(m) for m in consume_all(topics.kafka_bootstrap, topics.topics.aggregates, expect=expected, timeout=240)]
    assert len(records) == expected
    assert {(r.dim, r.dim_value) for r in records} == {("all", ""), ("country", "US"), ("device", "mobile"), ("category", "c")}
    by_window = {r.window_start: r for r in records if r.kind == "hll" and r.field == "user_id" and r.dim == "all"}
    assert set(by_window) == set(truth_counts)
    merged = HllSketch()
    for w, r in by_window.items():
        assert r.events == truth_counts[w], f"window {w}: {r.events} != {truth_counts[w]}"
        assert r.window_end - r.window_start == window_ms
        sketch = HllSketch.from_bytes(r.sketch)
        assert sketch.estimate().contains(len(truth_users[w]))
        merged.merge(sketch)
    assert merged.estimate().contains(users)
    assert len(consume_all(topics.kafka_bootstrap, topics.topics.dlq, expect=1, timeout=60)) == 1


def test_the_running_job_has_the_settings_it_was_built_for(topics, sketch_job):
    """The job runs through ``env.execute()``, not the table environment's own execute: read back
    what the JobManager actually runs with (object reuse: the chained operators hand rows over by
    reference; exactly-once checkpoints at the configured interval)."""
    from adapters.local import jobs
    from adapters.local.flink import rest_get
    from flink_jobs.sql import JobConfig

    jid = jobs.running_jobs(topics)[sketch_job]
    assert rest_get(topics, f"/jobs/{jid}/config")["execution-config"]["object-reuse-mode"] is True
    checkpoints = rest_get(topics, f"/jobs/{jid}/checkpoints/config")
    assert checkpoints["mode"] == "exactly_once"
    assert checkpoints["interval"] == JobConfig().checkpoint_interval_ms
