"""The sketch job's Kafka source and aggregates sink options (flink_jobs/sql.py), as pure strings."""

from __future__ import annotations

import re

from flink_jobs import source_sql, sql


def _options(ddl: str) -> dict[str, str]:
    return dict(re.findall(r"'([a-z.\-]+)' = '([^']*)'", ddl))


def test_source_aligns_watermarks_by_default_so_a_backlog_cannot_fill_the_heap():
    options = _options(source_sql.source_ddl(sql.JobConfig(), "events_kafka"))
    assert options["scan.watermark.alignment.group"] == "events"
    drift_ms = int(options["scan.watermark.alignment.max-drift"].removesuffix(" ms"))
    assert drift_ms == sql.JobConfig().watermark_max_drift_ms > 0
    # at most a few windows of event time may run ahead of the slowest reader
    assert drift_ms <= 30 * sql.JobConfig().window_seconds * 1000


def test_alignment_can_be_turned_off():
    ddl = source_sql.source_ddl(sql.JobConfig(watermark_max_drift_ms=0), "events_kafka")
    assert "alignment" not in ddl
    assert _options(ddl)["scan.watermark.idle-timeout"] == "30000 ms"


def test_aggregates_sink_batches_its_records_and_stays_transactional():
    cfg = sql.JobConfig(sink_linger_ms=40, sink_batch_bytes=65536)
    options = _options(sql.aggregates_sink_ddl(cfg))
    assert options["properties.linger.ms"] == "40"
    assert options["properties.batch.size"] == "65536"
    assert options["sink.delivery-guarantee"] == "exactly-once"


def test_the_label_job_shares_the_source_without_alignment():
    from flink_jobs.label_sql import LabelJobConfig

    assert "alignment" not in source_sql.source_ddl(LabelJobConfig(), "events_kafka")  # type: ignore[arg-type]


def test_the_java_source_reads_like_the_sql_source():
    """--source java builds its KafkaSource and watermarks from these: the same topic, group,
    partition discovery, out-of-orderness, idleness and alignment as the table source's DDL."""
    cfg = sql.JobConfig(events_topic="t.events", group_id="g", out_of_orderness_ms=7_000, idle_timeout_ms=9_000)
    options = _options(source_sql.source_ddl(cfg, "events_kafka"))
    bootstrap, topic, group, discovery_ms = source_sql.java_source_args(cfg)
    assert (bootstrap, topic, group) == (options["properties.bootstrap.servers"], options["topic"], options["properties.group.id"])
    assert f"{discovery_ms // 1000} s" == options["scan.topic-partition-discovery.interval"]
    ooo, idle, group_name, drift, update = source_sql.java_watermark_args(cfg)
    assert "INTERVAL '0 00:00:07.000'" in source_sql.source_ddl(cfg) and ooo == 7_000
    assert f"{idle} ms" == options["scan.watermark.idle-timeout"]
    assert group_name == options["scan.watermark.alignment.group"]
    assert f"{drift} ms" == options["scan.watermark.alignment.max-drift"]
    assert f"{update} ms" == options["scan.watermark.alignment.update-interval"]
    assert source_sql.java_watermark_args(sql.JobConfig(watermark_max_drift_ms=0))[3] == 0


def test_with_the_java_source_the_dlq_and_late_paths_carry_no_event_strings():
    """Every string column a calc carries is copied for every record (Flink's generated code), and
    the DLQ and late paths see every record: they read a view without the event's strings."""
    side = source_sql.SIDE_INPUT_VIEW.split("SELECT", 1)[1].split("FROM")[0]
    for field in ("user_id", "session_id", "item_id", "category", "country", "device", "features", "event_id"):
        assert field not in side
    late = next(v for v in sql.split_views(sql.JobConfig(), "side_input") if "VIEW late_events" in v)
    selected = late.split("SELECT", 1)[1].split(" FROM ")[0]
    assert not [f for f in ("user_id", "session_id", "item_id", "category", "features", "*") if f in selected]
    assert selected.endswith("AS ws") and "raw_text" in selected
    assert "FROM side_input WHERE reason IS NULL AND" in late
    assert "FROM side_input WHERE reason IS NOT NULL" in sql.dlq_insert(sql.JobConfig(), flat=True)
    # without the Java source nothing changes for the UDF path (the label job's too)
    assert "FROM valid_events WHERE (CURRENT_WATERMARK" in next(v for v in sql.split_views(sql.JobConfig()) if "VIEW late_events" in v)
