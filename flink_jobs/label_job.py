"""The label job: events.v1 -> de-duplicate -> impression LEFT interval-JOIN click/purchase within
the attribution window -> exactly one labelled example per impression -> examples.v1; answers
that label nothing (after the window, unknown impression, behind the watermark) are counted per
window into metrics.v1 (``late_labels``). The design is explained in :mod:`flink_jobs.label_sql`.

Submitted by ``tributary up`` (``flink run -py flink_jobs/label_job.py``, see
``adapters.local.jobs.submit_label_job``); every option has a flag so tests can point it at
their own topics. All per-record work is SQL on the JVM (no Python UDF).
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from pyflink.table import EnvironmentSettings, TableEnvironment

from flink_jobs import label_sql, sql


def parse_args(argv: list[str] | None = None) -> tuple[label_sql.LabelJobConfig, str, str]:
    p = argparse.ArgumentParser(description=__doc__)
    defaults = label_sql.LabelJobConfig()
    for f in fields(label_sql.LabelJobConfig):
        default = getattr(defaults, f.name)
        kind = (lambda v: v.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default)
    p.add_argument("--jars", default="", help="';'-separated file:// URLs (empty: already in Flink's lib/)")
    p.add_argument("--job-name", default="tributary-labels")
    ns = vars(p.parse_args(argv))
    jars, name = ns.pop("jars"), ns.pop("job_name")
    return label_sql.LabelJobConfig(**ns), jars, name


def configure(t_env: TableEnvironment, cfg: label_sql.LabelJobConfig, name: str, jars: str) -> None:
    conf = t_env.get_config()
    for key, value in sql.streaming_settings(name, jars, cfg.checkpoint_interval_ms, cfg.idle_timeout_ms).items():
        conf.set(key, value)
    # Bounds the de-duplication state (event ids seen); the late-label counts override it with
    # a STATE_TTL hint. Interval joins and windows clean their state by watermark, not by TTL.
    conf.set("table.exec.state.ttl", f"{cfg.dedup_ttl_ms} ms")
    # The count's sink key is a function of its group key: no upsert materializer (extra state).
    conf.set("table.exec.sink.upsert-materialize", "NONE")


def build(t_env: TableEnvironment, cfg: label_sql.LabelJobConfig) -> None:
    t_env.execute_sql("CREATE TEMPORARY FUNCTION parse_event AS 'dev.tributary.flink.ParseEvent' LANGUAGE JAVA")
    for ddl in label_sql.all_ddl(cfg):
        t_env.execute_sql(ddl)
    statements = t_env.create_statement_set()
    statements.add_insert_sql(label_sql.examples_insert(cfg))
    statements.add_insert_sql(label_sql.late_labels_insert(cfg))
    statements.execute()


def main(argv: list[str] | None = None) -> None:
    cfg, jars, name = parse_args(argv)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    configure(t_env, cfg, name, jars)
    build(t_env, cfg)


if __name__ == "__main__":
    main()
