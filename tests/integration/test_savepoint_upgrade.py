"""A job upgrade through a savepoint keeps window state: stop with a savepoint mid-stream,
resubmit from it (with uids set, FLIP-190), and every window still counts exactly once."""

from __future__ import annotations

import collections

import pytest

from adapters.local import jobs
from adapters.local.flink import rest_get
from app.cli.stack_cmds import sketch_job_args
from app.contracts.aggregates import AggregateRecord
from tests.integration.test_exactly_once import BASE_MS, _event, _events, _produce
from tests.support.stack import consume_all, wait_for

pytestmark = pytest.mark.integration


def _taskmanagers(s) -> str:
    """The cluster's TaskManagers and their metaspace, for failure messages: every PyFlink job
    leaves its user-code class loader (~45 MB) in a TaskManager's metaspace, and a TaskManager
    that runs out of it exits (docs/flink-design.md, "Job upgrades through a savepoint")."""
    tms = (rest_get(s, "/taskmanagers") or {}).get("taskmanagers", [])
    out = []
    for tm in tms:
        metrics = rest_get(s, f"/taskmanagers/{tm['id']}/metrics?get=Status.JVM.Memory.Metaspace.Used,Status.JVM.Memory.Metaspace.Max") or []
        m = {x["id"].rsplit(".", 1)[-1]: int(float(x["value"])) >> 20 for x in metrics}
        out.append(f"{tm['id']}: metaspace {m.get('Used', '?')}/{m.get('Max', '?')} MB")
    return f"{len(tms)} TaskManager(s) {out}"


def test_resubmitted_from_savepoint_counts_every_window_once(topics):
    s, name, window_ms = topics, f"upgrade-{topics.topic_prefix.rstrip('.')}", topics.window_seconds * 1000
    first, second = _events(0, 20_000, 3, 2_000), _events(20_000, 20_000, 3, 2_000)  # 120 s of event time
    counts = collections.Counter(t - t % window_ms for t, _, _ in first + second)

    jobs.submit(s, "sketch_job", name, sketch_job_args(s))
    try:
        _produce(s, [v for _, _, v in first])
        fired = consume_all(s.kafka_bootstrap, s.topics.aggregates, expect=1, timeout=180)
        assert fired, f"no window fired before the upgrade; {_taskmanagers(s)}"
        savepoint = jobs.stop_with_savepoint(s, name)
        # The open windows (and the first half's unread rest) live only in the savepoint now.
        # submit() returns once the new job has restored exactly this savepoint (or raises).
        jid = jobs.submit(s, "sketch_job", name, sketch_job_args(s), savepoint=savepoint)
        restored = ((rest_get(s, f"/jobs/{jid}/checkpoints") or {}).get("latest") or {}).get("restored") or {}
        assert restored.get("is_savepoint"), restored
        assert restored["external_path"].rstrip("/").endswith(savepoint.rstrip("/").rsplit("/", 1)[-1]), (restored, savepoint)
        # The job reports RUNNING while its tasks still wait for slots (or for a TaskManager that
        # is gone): wait until every task runs, so a lost TaskManager fails here, not as missing windows.
        try:
            wait_for(lambda: jobs.tasks_running(s, name), timeout=180, what="every task of the resubmitted job running")
        except AssertionError as e:
            raise AssertionError(f"{e}; {_taskmanagers(s)}") from None
        _produce(s, [v for _, _, v in second] + [_event(10**6, BASE_MS + 3_600_000, "closer")])

        def all_count_records():
            recs = [AggregateRecord.from_json(m) for m in consume_all(s.kafka_bootstrap, s.topics.aggregates, timeout=20)]
            got = [r for r in recs if r.kind == "count" and r.dim == "all"]
            return got if len(got) >= len(counts) else None

        try:
            got = wait_for(all_count_records, timeout=300, interval=5, what=f"{len(counts)} windows")
        except AssertionError as e:
            late = len(consume_all(s.kafka_bootstrap, s.topics.late, timeout=20))
            raise AssertionError(f"{e}; job {jobs.job_state(s, name)}, {late} late events, {_taskmanagers(s)}") from None
        per_window = collections.Counter(r.window_start for r in got)
        assert max(per_window.values()) == 1, "a window was emitted twice"
        assert {r.window_start: r.events for r in got} == dict(counts)
    finally:
        jobs.cancel(s, name)
