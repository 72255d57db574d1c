"""The sketch job: events.v1 -> validate (malformed -> dlq.v1) -> event-time windows -> aggregates.v1.

Submitted by ``tributary up`` (``flink run -py flink_jobs/sketch_job.py``); every option has a
flag so tests can point it at their own topics.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from pyflink.table import EnvironmentSettings, TableEnvironment
from pyflink.table.expressions import col, lit
from pyflink.table.window import Tumble

from flink_jobs import sql, udafs


def parse_args(argv: list[str] | None = None) -> tuple[sql.JobConfig, str, str]:
    p = argparse.ArgumentParser(description=__doc__)
    defaults = sql.JobConfig()
    for f in fields(sql.JobConfig):
        default = getattr(defaults, f.name)
        kind = (lambda v: v.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default)
    p.add_argument("--jars", default="", help="';'-separated file:// URLs: Kafka connector, our UDFs, flink-python (empty: already in lib/)")
    p.add_argument("--job-name", default="tributary-sketches")
    ns = vars(p.parse_args(argv))
    jars, name = ns.pop("jars"), ns.pop("job_name")
    return sql.JobConfig(**ns), jars, name


def build(t_env: TableEnvironment, cfg: sql.JobConfig) -> None:
    t_env.execute_sql("CREATE TEMPORARY FUNCTION parse_event AS 'dev.tributary.flink.ParseEvent' LANGUAGE JAVA")
    t_env.execute_sql(sql.source_ddl(cfg))
    t_env.execute_sql(sql.PARSED_VIEW)
    t_env.execute_sql(sql.VALID_VIEW)
    t_env.execute_sql(sql.dlq_sink_ddl(cfg))
    t_env.execute_sql(sql.aggregates_sink_ddl(cfg))

    window_ms = cfg.window_seconds * 1000
    ws, count, emitted, hll = (
        udafs.window_start_udaf(window_ms),
        udafs.count_udaf(),
        udafs.emitted_at_udaf(),
        udafs.hll_udaf(cfg.hll_lg_k),
    )
    windows = (
        t_env.from_path("valid_events")
        .window(Tumble.over(lit(cfg.window_seconds).seconds).on(col("rowtime")).alias("w"))
        .group_by(col("w"))
        .select(
            ws(col("event_time")).alias("ws"),
            count(col("event_time")).alias("events"),
            emitted(col("event_time")).alias("emitted_at"),
            hll(col("user_id")).alias("sketch"),
        )
    )
    t_env.create_temporary_view("hll_user_windows", windows)

    statements = t_env.create_statement_set()
    statements.add_insert_sql(sql.DLQ_INSERT)
    statements.add_insert_sql(
        f"""
INSERT INTO aggregates_sink
SELECT CONCAT('hll|user_id|all||', CAST(ws AS STRING)), 1, 'hll', 'user_id', 'all', '',
       ws, ws + {window_ms}, events, CAST(0 AS BIGINT), 0, emitted_at, sketch
FROM hll_user_windows"""
    )
    statements.execute()


def main(argv: list[str] | None = None) -> None:
    cfg, jars, name = parse_args(argv)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("pipeline.name", name)
    if jars:
        conf.set("pipeline.jars", jars)
    conf.set("table.local-time-zone", "UTC")
    conf.set("execution.checkpointing.interval", f"{cfg.checkpoint_interval_ms} ms")
    conf.set("execution.checkpointing.mode", "EXACTLY_ONCE")
    conf.set("table.exec.source.idle-timeout", f"{cfg.idle_timeout_ms} ms")
    # Arrow batches: large bundles amortize the Python boundary; a time bound keeps latency low.
    conf.set("python.fn-execution.bundle.size", "100000")
    conf.set("python.fn-execution.bundle.time", "1000")
    conf.set("python.fn-execution.arrow.batch.size", "100000")
    build(t_env, cfg)


if __name__ == "__main__":
    main()
