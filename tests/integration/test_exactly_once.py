"""Exactly-once: SIGKILL the TaskManager mid-run; after recovery every window is emitted once,
with the exact count and the same sketch a fault-free run computes."""

from __future__ import annotations

import collections
import time

import orjson
import pytest

from adapters.kafka_io import DeliveryTracker, producer
from adapters.local import jobs, stack
from adapters.local.flink import FlinkTaskManager
from app.contracts.aggregates import AggregateRecord
from app.sketches import HllSketch, new_sketch
from app.sketches.reservoir import ReservoirSample
from flink_jobs.sql import SKETCHES
from flink_jobs.window_columns import priority
from tests.support.stack import consume_all, wait_for

pytestmark = pytest.mark.integration

BASE_MS = 1_720_000_000_000


def _event(i: int, t: int, user: str) -> bytes:
    return orjson.dumps({
        "event_id": f"e{i}", "event_type": "impression", "event_time": t, "user_id": user, "session_id": f"s{i % 500}",
        "item_id": f"i{i % 97}", "category": "c", "country": "US", "device": "mobile", "price": float(i % 50),
    })  # fmt: skip


def _events(start: int, n: int, step_ms: int, users: int) -> list[tuple[int, str, bytes]]:
    out = []
    for i in range(start, start + n):
        t, user = BASE_MS + i * step_ms, f"u{(i * 7919) % users}"
        out.append((t, user, _event(i, t, user)))
    return out


def _union(a: HllSketch, b: HllSketch):
    u = new_sketch("hll")
    u.merge(a)
    u.merge(b)
    return u.estimate()


def _produce(s, values: list[bytes]) -> None:
    """Keyed by user (the contract), so every partition advances together in event time."""
    p, tracker = producer(s.kafka_bootstrap), DeliveryTracker()
    for v in values:
        p.produce(s.topics.events, v, key=orjson.loads(v)["user_id"], on_delivery=tracker)
        p.poll(0)
    p.flush(60)
    assert tracker.failed == 0


def test_taskmanager_sigkill_loses_and_duplicates_nothing(topics, sketch_job):
    s, window_ms = topics, topics.window_seconds * 1000
    first, second = _events(0, 40_000, 3, 5_000), _events(40_000, 40_000, 3, 5_000)  # 240 s of event time
    truth_users, truth_counts = collections.defaultdict(set), collections.Counter()
    truth_raw = collections.defaultdict(list)
    for t, user, value in first + second:
        truth_users[t - t % window_ms].add(user)
        truth_counts[t - t % window_ms] += 1
        truth_raw[t - t % window_ms].append(value)

    _produce(s, [v for _, _, v in first])
    # some windows are committed (a checkpoint passed) before the crash
    consume_all(s.kafka_bootstrap, s.topics.aggregates, expect=3 * (len(SKETCHES) + 1) * 4, timeout=180)
    tm = FlinkTaskManager(s)
    tm.process.kill9()
    wait_for(lambda: not tm.process.is_running(), timeout=10, what="TaskManager gone")
    _produce(s, [v for _, _, v in second])  # written while the job is down
    stack.start_part(FlinkTaskManager(s))
    wait_for(lambda: jobs.tasks_running(s, sketch_job), timeout=180, what="job restarted, every task running")
    time.sleep(5)
    _produce(s, [_event(10**6, BASE_MS + 3_600_000, "closer")])  # closes every window

    expected = len(truth_counts) * (len(SKETCHES) + 1) * 4
    raw = consume_all(s.kafka_bootstrap, s.topics.aggregates, expect=expected, timeout=300)
    time.sleep(5)  # anything more (a duplicate) would arrive now
    raw += consume_all(s.kafka_bootstrap, s.topics.aggregates, timeout=20)[len(raw):]
    records = [AggregateRecord.from_json(m) for m in raw]
    keys = collections.Counter(r.key() for r in records)
    twice = [k for k, n in keys.items() if n > 1]
    detail = [(r.key(), r.events, r.revision, r.emitted_at) for r in records if r.key() in twice[:3]]
    assert not twice, f"{len(twice)} windows emitted twice, e.g. {detail}"
    assert len(records) == expected

    for r in records:
        if r.dim == "all" and r.kind == "reservoir":
            # the sample is the k events of smallest priority (a hash of the event's bytes),
            # whatever the order or the replays: exactly the one a fault-free run draws
            sample = ReservoirSample.from_bytes(r.sketch)
            fault_free = sorted(truth_raw[r.window_start], key=priority)[: sample.k]
            assert sample.n_seen == truth_counts[r.window_start]
            assert sorted(sample.sample()) == sorted(v.decode() for v in fault_free), r.window_start
        if r.dim != "all" or r.kind not in ("hll", "count"):
            continue
        assert r.events == truth_counts[r.window_start], (r.window_start, r.events)
        if r.kind == "hll" and r.field == "user_id":
            fault_free = new_sketch("hll")
            fault_free.update_many(sorted(truth_users[r.window_start]))
            # HLL's own estimate depends on update order (HIP), which no two runs share; the
            # registers do not. Merged with the fault-free sketch, equal registers give exactly
            # the fault-free sketch merged with itself.
            assert _union(HllSketch.from_bytes(r.sketch), fault_free) == _union(fault_free, fault_free), r.window_start
