"""A job upgrade through a savepoint keeps window state: stop with a savepoint mid-stream,
resubmit from it (with uids set, FLIP-190), and every window still counts exactly once."""

from __future__ import annotations

import collections

import pytest

from adapters.local import jobs
from app.cli.stack_cmds import sketch_job_args
from app.contracts.aggregates import AggregateRecord
from tests.integration.test_exactly_once import BASE_MS, _event, _events, _produce
from tests.support.stack import consume_all, wait_for

pytestmark = pytest.mark.integration


def test_resubmitted_from_savepoint_counts_every_window_once(topics):
    s, name, window_ms = topics, f"upgrade-{topics.topic_prefix.rstrip('.')}", topics.window_seconds * 1000
    first, second = _events(0, 20_000, 3, 2_000), _events(20_000, 20_000, 3, 2_000)  # 120 s of event time
    counts = collections.Counter(t - t % window_ms for t, _, _ in first + second)

    jobs.submit(s, "sketch_job", name, sketch_job_args(s))
    try:
        _produce(s, [v for _, _, v in first])
        consume_all(s.kafka_bootstrap, s.topics.aggregates, expect=1, timeout=180)  # windows are firing
        savepoint = jobs.stop_with_savepoint(s, name)
        # the open window (and the rest of the first half) lives only in the savepoint now
        jobs.submit(s, "sketch_job", name, sketch_job_args(s), savepoint=savepoint)
        wait_for(lambda: jobs.job_state(s, name) == "RUNNING", timeout=120, what="resubmitted job running")
        _produce(s, [v for _, _, v in second] + [_event(10**6, BASE_MS + 3_600_000, "closer")])

        def all_count_records():
            recs = [AggregateRecord.from_json(m) for m in consume_all(s.kafka_bootstrap, s.topics.aggregates, timeout=20)]
            got = [r for r in recs if r.kind == "count" and r.dim == "all"]
            return got if len(got) >= len(counts) else None

        got = wait_for(all_count_records, timeout=300, interval=5, what=f"{len(counts)} windows")
        per_window = collections.Counter(r.window_start for r in got)
        assert max(per_window.values()) == 1, "a window was emitted twice"
        assert {r.window_start: r.events for r in got} == dict(counts)
    finally:
        jobs.cancel(s, name)
