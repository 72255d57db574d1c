"""The sketch job: events.v1 -> validate (malformed -> dlq.v1) -> split late (-> late.v1, counted)
-> event-time windows per dimension -> every sketch -> aggregates.v1.

Submitted by ``tributary up`` (``flink run -py flink_jobs/sketch_job.py``); every option has a
flag so tests can point it at their own topics.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from pyflink.table import EnvironmentSettings, TableEnvironment
from pyflink.table.expressions import col, lit
from pyflink.table.window import Tumble

from flink_jobs import late_revisions, sql, udafs


def parse_args(argv: list[str] | None = None) -> tuple[sql.JobConfig, str, str, str]:
    p = argparse.ArgumentParser(description=__doc__)
    defaults = sql.JobConfig()
    for f in fields(sql.JobConfig):
        default = getattr(defaults, f.name)
        kind = (lambda v: v.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default)
    p.add_argument("--late-topic", default="late.v1")
    p.add_argument("--jars", default="", help="';'-separated file:// URLs (empty: already in Flink's lib/)")
    p.add_argument("--job-name", default="tributary-sketches")
    ns = vars(p.parse_args(argv))
    jars, name, late = ns.pop("jars"), ns.pop("job_name"), ns.pop("late_topic")
    return sql.JobConfig(**ns), jars, name, late


def _windowed(t_env: TableEnvironment, view: str, cfg: sql.JobConfig, *keys: str):
    window = Tumble.over(lit(cfg.window_seconds).seconds).on(col("rowtime")).alias("w")
    return t_env.from_path(view).window(window).group_by(col("w"), *(col(k) for k in keys))


def build(t_env: TableEnvironment, cfg: sql.JobConfig, late_topic: str) -> None:
    t_env.execute_sql("CREATE TEMPORARY FUNCTION parse_event AS 'dev.tributary.flink.ParseEvent' LANGUAGE JAVA")
    for ddl in (sql.source_ddl(cfg), sql.PARSED_VIEW, sql.VALID_VIEW, *sql.split_views(cfg)):
        t_env.execute_sql(ddl)
    for ddl in (sql.dlq_sink_ddl(cfg), sql.aggregates_sink_ddl(cfg), sql.late_sink_ddl(cfg, late_topic), sql.late_counts_sink_ddl(cfg)):
        t_env.execute_sql(ddl)

    # Every dimension from one pass per window operator (flink_jobs/window_records.py says why
    # this replaced an operator per dimension); the sketches are split over two operators so two
    # Python workers build each window side by side (sql.WINDOW_PARTS).
    dims = [d.strip() for d in cfg.dims.split(",") if d.strip()]
    t_env.create_temporary_function("explode_window", udafs.explode_window_udtf())
    selects = []
    for i, part in enumerate(sql.window_parts(cfg.window_parts)):
        records = udafs.window_records_udaf(dims, part, cfg.window_seconds * 1000)
        packed = _windowed(t_env, "on_time_events", cfg).select(records(*(col(c) for c in part.columns)).alias("blob"))
        t_env.create_temporary_view(f"windows_packed_{i}", packed)
        selects.append(sql.window_records_select(cfg, f"windows_packed_{i}"))

    statements = t_env.create_statement_set()
    statements.add_insert_sql(sql.dlq_insert(cfg))
    statements.add_insert_sql(sql.LATE_INSERT)
    statements.add_insert_sql(sql.late_counts_insert(cfg))
    if cfg.allowed_lateness_ms > 0:
        _register_late_functions(t_env)
        *views, insert = late_revisions.insert_sql(cfg, selects, dims)
        for view in views:
            t_env.execute_sql(view)
        statements.add_insert_sql(insert)
    else:
        statements.add_insert_sql("INSERT INTO aggregates_sink " + "\nUNION ALL\n".join(selects))
    statements.execute()


def _register_late_functions(t_env: TableEnvironment) -> None:
    t_env.create_temporary_function("late_count", udafs.count_accumulator_udaf())
    t_env.create_temporary_function("merge_sketches", udafs.merge_sketches_udf())
    for kind in {k for k, _, _ in sql.SKETCHES}:
        t_env.create_temporary_function(late_revisions.function_name(kind), udafs.sketch_accumulator_udaf(kind))


def main(argv: list[str] | None = None) -> None:
    cfg, jars, name, late_topic = parse_args(argv)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    for key, value in sql.streaming_settings(
        name, jars, cfg.checkpoint_interval_ms, cfg.idle_timeout_ms, cfg.allowed_lateness_ms
    ).items():
        conf.set(key, value)
    # Arrow batches: large bundles amortize the Python boundary; a time bound keeps latency low.
    conf.set("python.fn-execution.bundle.size", "100000")
    conf.set("python.fn-execution.bundle.time", "1000")
    conf.set("python.fn-execution.arrow.batch.size", "100000")
    # One Python worker process per Python operator instead of one per slot: the window parts
    # (sql.WINDOW_PARTS) then build a window in parallel instead of taking turns for one GIL.
    conf.set("python.fn-execution.memory.managed", "false")
    build(t_env, cfg, late_topic)


if __name__ == "__main__":
    main()
