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

from flink_jobs import label_sql


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
    conf.set("pipeline.name", name)
    if jars:
        conf.set("pipeline.jars", jars)
    conf.set("table.local-time-zone", "UTC")
    conf.set("execution.checkpointing.interval", f"{cfg.checkpoint_interval_ms} ms")
    conf.set("execution.checkpointing.mode", "EXACTLY_ONCE")
    conf.set("table.exec.source.idle-timeout", f"{cfg.idle_timeout_ms} ms")
    # Bounds the de-duplication state (event ids seen); the late-label counts override it with
    # a STATE_TTL hint. Interval joins and windows clean their state by watermark, not by TTL.
    conf.set("table.exec.state.ttl", f"{cfg.dedup_ttl_ms} ms")
    # One de-duplication for every branch (impressions, answers, both joins): without this the
    # planner prunes columns per branch and keeps several copies of the same dedup state.
    conf.set("table.optimizer.reuse-optimize-block-with-digest-enabled", "true")
    # Stable operator uids ("<id>_<transformation>", ids from the planner's counter): the client
    # JVM plans only this pipeline, so the same SQL gets the same uids and a savepoint maps back.
    conf.set("table.exec.uid.generation", "ALWAYS")
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
