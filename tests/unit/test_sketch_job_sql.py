"""The sketch job's Kafka source and aggregates sink options (flink_jobs/sql.py), as pure strings."""

from __future__ import annotations

import re

from flink_jobs import sql


def _options(ddl: str) -> dict[str, str]:
    return dict(re.findall(r"'([a-z.\-]+)' = '([^']*)'", ddl))


def test_source_aligns_watermarks_by_default_so_a_backlog_cannot_fill_the_heap():
    options = _options(sql.source_ddl(sql.JobConfig(), "events_kafka"))
    assert options["scan.watermark.alignment.group"] == "events"
    drift_ms = int(options["scan.watermark.alignment.max-drift"].removesuffix(" ms"))
    assert drift_ms == sql.JobConfig().watermark_max_drift_ms > 0
    # at most a few windows of event time may run ahead of the slowest reader
    assert drift_ms <= 30 * sql.JobConfig().window_seconds * 1000


def test_alignment_can_be_turned_off():
    ddl = sql.source_ddl(sql.JobConfig(watermark_max_drift_ms=0), "events_kafka")
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

    assert "alignment" not in sql.source_ddl(LabelJobConfig(), "events_kafka")  # type: ignore[arg-type]
