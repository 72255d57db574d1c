"""The allowed-lateness SQL (flink_jobs/late_revisions.py), without Flink: every event lands in
exactly one of on time / admitted late / dropped, and every sketch gets a correction."""

from __future__ import annotations

import re

from flink_jobs import late_revisions, sql


def _views(cfg: sql.JobConfig) -> dict[str, str]:
    return {re.search(r"VIEW (\w+)", v).group(1): v for v in sql.split_views(cfg)}


def test_split_conditions_partition_events_by_lateness():
    cfg = sql.JobConfig(window_seconds=10, allowed_lateness_ms=20_000)
    views = _views(cfg)
    fired, dropped = sql.late_condition(cfg, 0), sql.late_condition(cfg)
    assert f"NOT {fired}" in views["on_time_events"]
    assert f"{fired} AND NOT {dropped}" in views["admitted_late_events"]
    assert f"WHERE {dropped}" in views["late_events"]
    # the two cut-offs differ by exactly the allowed lateness
    assert "+ 9999, 3)" in fired and "+ 29999, 3)" in dropped


def test_without_lateness_nothing_is_admitted_late():
    cfg = sql.JobConfig(allowed_lateness_ms=0)
    assert sql.late_condition(cfg, 0) == sql.late_condition(cfg)  # admitted view: X AND NOT X = empty
    assert "upsert-kafka" not in sql.aggregates_sink_ddl(cfg)
    assert "table.exec.sink.upsert-materialize" not in sql.streaming_settings("j", "", 1000, 1000, 0)


def test_every_sketch_gets_a_correction_joined_on_the_record_key():
    cfg = sql.JobConfig(allowed_lateness_ms=5_000)
    dims = ["all", "country"]
    *views, insert = late_revisions.insert_sql(cfg, ["SELECT 1"], dims)
    for dim in dims:
        corr = next(v for v in views if f"late_corrections_{dim} " in v)
        for kind, field, column in sql.SKETCHES:
            assert f"{late_revisions.function_name(kind)}({column}) AS {sql.sketch_column(kind, field)}" in corr
    assert "ON b.k = c.k" in insert and "merge_sketches(b.sketch, c.sketch)" in insert
    assert "b.events + c.events" in insert and "c.revision" in insert
    assert "PRIMARY KEY (`k`)" in sql.aggregates_sink_ddl(cfg)
    assert late_revisions.state_ttl(cfg) == f"{10_000 + 5_000 + 600_000} ms"
