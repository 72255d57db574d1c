"""Allowed lateness on the real cluster: a late event within the lateness re-fires its window with a
higher revision (the new firing replaces the old one downstream); later than that it goes to
late.v1 and is counted, and the window stays as it was."""

from __future__ import annotations

import orjson
import pytest

from adapters.kafka_io import DeliveryTracker, producer
from app.contracts.aggregates import AggregateRecord
from app.sketches import HllSketch
from tests.support.stack import consume_all, wait_for

pytestmark = pytest.mark.integration

BASE_MS = 1_700_000_000_000
PARTITIONS = 4  # the topics fixture's partition count: watermarks advance per partition


def _event(eid: str, user: str, t: int) -> bytes:
    return orjson.dumps(
        {"event_id": eid, "event_type": "impression", "event_time": t, "user_id": user, "session_id": "s",
         "item_id": "i", "category": "c", "country": "US", "device": "mobile", "price": 1.0}
    )  # fmt: skip


def _produce(s, messages: list[bytes], *, every_partition: bool = False) -> None:
    p, tracker = producer(s.kafka_bootstrap), DeliveryTracker()
    for m in messages:
        for part in range(PARTITIONS) if every_partition else (None,):
            kwargs = {} if part is None else {"partition": part}
            p.produce(s.topics.events, m, on_delivery=tracker, **kwargs)
        p.poll(0)
    p.flush(30)
    assert tracker.failed == 0


def _advance(s, to_ms: int, tag: str) -> None:
    """Move every partition's watermark past ``to_ms`` (an event at to_ms + out-of-orderness + 1 s)."""
    _produce(s, [_event(f"adv-{tag}", f"adv-{tag}", to_ms + s.out_of_orderness_ms + 1_000)], every_partition=True)


def _windows(s, ws: int) -> list[AggregateRecord]:
    """Every firing of window ``ws`` (dimension all, exact count record), in topic order per key."""
    recs = [AggregateRecord.from_json(m) for m in consume_all(s.kafka_bootstrap, s.topics.aggregates, timeout=20)]
    return [r for r in recs if r.kind == "count" and r.dim == "all" and r.window_start == ws]


def _hll_users(s, ws: int) -> list[AggregateRecord]:
    recs = [AggregateRecord.from_json(m) for m in consume_all(s.kafka_bootstrap, s.topics.aggregates, timeout=20)]
    return [r for r in recs if r.kind == "hll" and r.field == "user_id" and r.dim == "all" and r.window_start == ws]


def test_late_event_within_lateness_refires_window_with_higher_revision(topics):
    from adapters.local import jobs
    from app.cli.stack_cmds import sketch_job_args

    lateness = 20_000
    s = topics.model_copy(update={"allowed_lateness_ms": lateness})
    window_ms = s.window_seconds * 1000
    ws = BASE_MS - BASE_MS % window_ms
    name = f"sketches-{s.topic_prefix.rstrip('.')}"
    jobs.submit(s, "sketch_job", name, sketch_job_args(s))
    try:
        wait_for(lambda: jobs.tasks_running(s, name), timeout=180, what=f"every task of {name} running")
        on_time, admitted, dropped = 200, 30, 10
        # 1. the window's on-time events, then the watermark past its end: it fires, revision 0
        _produce(s, [_event(f"a{i}", f"u{i}", ws + i * 10) for i in range(on_time)])
        _advance(s, ws + window_ms, "1")
        first = wait_for(lambda: [r for r in _windows(s, ws) if r.revision == 0], timeout=180, what="the on-time firing")
        assert first[0].events == on_time

        # 2. late events within the allowed lateness: the window fires again with them
        _produce(s, [_event(f"b{i}", f"late-u{i}", ws + 500 + i) for i in range(admitted)])
        try:
            refired = wait_for(
                lambda: [r for r in _windows(s, ws) if r.revision == admitted], timeout=90, what="the re-fired window"
            )
        except AssertionError as e:
            seen = [(r.revision, r.events, r.kind, r.field) for r in (AggregateRecord.from_json(m) for m in consume_all(s.kafka_bootstrap, s.topics.aggregates, timeout=20)) if r.window_start == ws and r.dim == "all"]
            late = len(consume_all(s.kafka_bootstrap, s.topics.late, timeout=10))
            raise AssertionError(f"{e}; firings of the window: {seen}; late.v1: {late}; {sketch_job_args(s)}") from None
        assert refired[-1].events == on_time + admitted
        hll = wait_for(lambda: [r for r in _hll_users(s, ws) if r.revision == admitted], timeout=60, what="re-fired HLL")
        assert HllSketch.from_bytes(hll[-1].sketch).estimate().contains(on_time + admitted)
        # every firing in between only ever grows (a consumer keeping the higher revision ends right)
        revisions = [r.revision for r in _windows(s, ws)]
        assert max(revisions) == admitted and revisions[0] == 0

        # 3. past the allowed lateness: dropped from the window, kept in late.v1 and counted
        _advance(s, ws + window_ms + lateness, "2")
        _produce(s, [_event(f"c{i}", f"too-late-u{i}", ws + 700 + i) for i in range(dropped)])
        late = consume_all(s.kafka_bootstrap, s.topics.late, expect=dropped, timeout=120)
        assert len(late) == dropped
        counts = wait_for(
            lambda: [r for r in (AggregateRecord.from_json(m) for m in consume_all(s.kafka_bootstrap, s.topics.aggregates, timeout=20))
                     if r.kind == "late" and r.window_start == ws and r.late_events == dropped],
            timeout=60, what="late count record",
        )  # fmt: skip
        assert counts
        final = _windows(s, ws)
        assert max(r.revision for r in final) == admitted
        assert max(r.events for r in final) == on_time + admitted  # the dropped ones never reached it
    finally:
        jobs.cancel(s, name)
