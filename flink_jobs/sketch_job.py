"""The sketch job: events.v1 -> validate (malformed -> dlq.v1) -> split late (-> late.v1, counted)
-> event-time windows per dimension -> every sketch -> aggregates.v1.

Submitted by ``tributary up`` (``flink run -py flink_jobs/sketch_job.py``); every option has a
flag so tests can point it at their own topics.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from pyflink.common import Configuration
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.java_gateway import get_gateway
from pyflink.table import DataTypes, EnvironmentSettings, Schema, StreamTableEnvironment, TableEnvironment
from pyflink.table.expressions import call, col, lit
from pyflink.table.window import Tumble

from app.sketches.defaults import RESERVOIR_K
from flink_jobs import late_revisions, source_sql, sql, udafs


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


def _windowed(t_env: TableEnvironment, view: str, cfg: sql.JobConfig, columns: tuple[str, ...]):
    # Project first: the planner ships to the window operator whatever the view has (every event
    # field twice, as bytes and as text, before this), not only what the aggregate reads.
    window = Tumble.over(lit(cfg.window_seconds).seconds).on(col("rowtime")).alias("w")
    projected = t_env.from_path(view).select(*(col(c) for c in (*columns, "rowtime")))
    return projected.window(window).group_by(col("w"))


def _java_source(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, cfg: sql.JobConfig) -> None:
    """``events_raw``: Kafka records parsed by the source itself (dev.tributary.flink.EventSource),
    as flat rows of Flink's internal data structures: the Table API takes them without converting
    a field, and every plan below reads this one DataStream (one Kafka source). The watermarks are
    the source's: per partition, with idleness and alignment."""
    java = get_gateway().jvm.dev.tributary.flink.EventSource
    source = java.kafka(*source_sql.java_source_args(cfg))
    strategy = java.watermarks(*source_sql.java_watermark_args(cfg))
    j_stream = env._j_stream_execution_environment.fromSource(source, strategy, "events_kafka").uid("events-kafka-source")
    if cfg.parallelism > 0:  # a DataStream source takes the cluster's default, not the planner's
        j_stream = j_stream.setParallelism(cfg.parallelism)
    # Columns from the stream's type (EventDeserializer.ROW_TYPE); rowtime = the record's timestamp.
    schema = (
        Schema.new_builder()
        .column_by_metadata("rowtime", DataTypes.TIMESTAMP_LTZ(3))
        .watermark("rowtime", "SOURCE_WATERMARK()")
        .build()
    )
    t_env.create_temporary_view("events_raw", t_env.from_data_stream(DataStream(j_stream), schema))


def _bridge_source(t_env: StreamTableEnvironment) -> None:
    """``events_raw`` with ``--source sql``: the Kafka table as a DataStream and back, so that both
    plans below (the statement set, and the window path that reaches it through a DataStream, see
    build) read the topic once. Only the bytes, the Kafka metadata and the event time cross (no
    strings to convert); the watermarks are the source's (per partition, with idleness)."""
    # rowtime rides along as each record's timestamp (to_data_stream sets it from the one rowtime column)
    source = t_env.from_path("events_kafka").select(col("raw"), col("partition"), col("offset"), col("kafka_ts"),
                                                    col("rowtime").alias("source_ts"))  # fmt: skip
    stream = t_env.to_data_stream(source)
    schema = (
        Schema.new_builder()
        .column("raw", DataTypes.BYTES())
        .column("partition", DataTypes.INT())
        .column("offset", DataTypes.BIGINT())
        .column("kafka_ts", DataTypes.TIMESTAMP_LTZ(3))
        .column("source_ts", DataTypes.TIMESTAMP_LTZ(3))
        .column_by_metadata("rowtime", DataTypes.TIMESTAMP_LTZ(3))
        .watermark("rowtime", "SOURCE_WATERMARK()")
        .build()
    )
    t_env.create_temporary_view("events_raw", t_env.from_data_stream(stream, schema))


def _decoupled(stream: DataStream, cfg: sql.JobConfig) -> DataStream:
    """The packed windows behind a rebalance, on ``cfg.builders`` subtasks (a Java pass-through
    operator sets the parallelism the Python builders downstream inherit)."""
    j_stream = stream._j_data_stream
    gateway = get_gateway()
    mapped = j_stream.rebalance().map(gateway.jvm.dev.tributary.flink.PassThrough()).returns(j_stream.getType())
    return DataStream(mapped.name("window builders").setParallelism(max(1, cfg.builders)))


def build(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, cfg: sql.JobConfig, late_topic: str) -> None:
    flat = cfg.source == "java"
    if flat:
        _java_source(env, t_env, cfg)
        views = [source_sql.valid_view(flat=True), source_sql.SIDE_INPUT_VIEW]
    elif cfg.source == "sql":
        t_env.execute_sql("CREATE TEMPORARY FUNCTION parse_event AS 'dev.tributary.flink.ParseEvent' LANGUAGE JAVA")
        t_env.execute_sql(source_sql.source_ddl(cfg, "events_kafka"))
        _bridge_source(t_env)
        views = [source_sql.PARSED_VIEW, source_sql.VALID_VIEW]
    else:
        raise ValueError(f"--source must be java or sql, got {cfg.source!r}")
    for ddl in (*views, *sql.split_views(cfg, "side_input" if flat else "valid_events")):
        t_env.execute_sql(ddl)
    for ddl in (sql.dlq_sink_ddl(cfg), sql.aggregates_sink_ddl(cfg), sql.late_sink_ddl(cfg, late_topic), sql.late_counts_sink_ddl(cfg)):
        t_env.execute_sql(ddl)

    # One window operator: the Java aggregate pack_window keeps each window's events as columns
    # and emits them packed when it fires; Python table functions build every sketch of every
    # dimension from that, split over two parts that run in their own workers, side by side
    # (sql.WINDOW_PARTS; docs/flink-design.md has the measurements).
    dims = [d.strip() for d in cfg.dims.split(",") if d.strip()]
    t_env.execute_sql("CREATE TEMPORARY FUNCTION pack_window AS 'dev.tributary.flink.PackWindow' LANGUAGE JAVA")
    # Its last argument is the reservoir's k: the window keeps the raw events of the k smallest
    # priorities per group, the candidates the Python reservoir samples (SampleCandidates).
    sample_k = lit(RESERVOIR_K).cast(DataTypes.INT())
    packed = _windowed(t_env, "on_time_events", cfg, sql.PACK_WINDOW_COLUMNS).select(
        call("pack_window", *(col(c) for c in sql.PACK_WINDOW_COLUMNS), sample_k).alias("packed")
    )
    # Through a DataStream and a rebalance: the Python builders then run in a task of their own.
    # Chained to the window operator (the planner's plan), that task thread waited for Python at
    # every watermark after a window fired (~0.2 s per 20,000 events) and read no input meanwhile.
    t_env.create_temporary_view("windows_packed", t_env.from_data_stream(_decoupled(t_env.to_data_stream(packed), cfg)))
    selects = []
    for i, part in enumerate(sql.window_parts(cfg.window_parts)):
        t_env.create_temporary_function(f"window_sketches_{i}", udafs.window_sketches_udtf(dims, part, cfg.window_seconds * 1000))
        selects.append(sql.window_records_select(cfg, "windows_packed", f"window_sketches_{i}", part.sections))

    statements = t_env.create_statement_set()
    statements.add_insert_sql(sql.dlq_insert(cfg, flat))
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
    statements.attach_as_datastream()


def _register_late_functions(t_env: TableEnvironment) -> None:
    t_env.create_temporary_function("late_count", udafs.count_accumulator_udaf())
    t_env.create_temporary_function("merge_sketches", udafs.merge_sketches_udf())
    for kind in {k for k, _, _ in sql.SKETCHES}:
        t_env.create_temporary_function(late_revisions.function_name(kind), udafs.sketch_accumulator_udaf(kind))


def main(argv: list[str] | None = None) -> None:
    cfg, jars, name, late_topic = parse_args(argv)
    settings = sql.streaming_settings(name, jars, cfg.checkpoint_interval_ms, cfg.idle_timeout_ms, cfg.allowed_lateness_ms)
    # Arrow batches: large bundles amortize the Python boundary; a time bound keeps latency low.
    settings["python.fn-execution.bundle.size"] = "100000"
    settings["python.fn-execution.bundle.time"] = "1000"
    settings["python.fn-execution.arrow.batch.size"] = "100000"
    # One Python worker process per Python operator instead of one per slot: the window parts
    # (sql.WINDOW_PARTS) then build a window in parallel instead of taking turns for one GIL.
    settings["python.fn-execution.memory.managed"] = "false"
    if cfg.parallelism > 0:
        settings["table.exec.resource.default-parallelism"] = str(cfg.parallelism)
    # The job runs through env.execute() (the statement set is attached as a DataStream), so the
    # environment gets the settings itself instead of relying on the planner copying the table
    # config into it during translation (tests/integration/test_sketch_job.py reads them back).
    env_conf = Configuration()
    for key, value in settings.items():
        env_conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(env_conf)
    t_env = StreamTableEnvironment.create(env, EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    for key, value in settings.items():
        conf.set(key, value)
    build(env, t_env, cfg, late_topic)
    env.execute(name)


if __name__ == "__main__":
    main()
