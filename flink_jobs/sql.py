"""The SQL of the sketch job, as pure string builders (unit-tested without Flink).

Per-record work stays on the JVM: the Kafka source reads raw bytes, the Java UDF
``parse_event`` validates and parses each record once per use, and Python only sees whole
windows through vectorized (pandas) aggregate functions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobConfig:
    bootstrap: str = "localhost:9092"
    events_topic: str = "events.v1"
    dlq_topic: str = "dlq.v1"
    aggregates_topic: str = "aggregates.v1"
    group_id: str = "tributary-sketches"
    window_seconds: int = 10
    out_of_orderness_ms: int = 5_000
    idle_timeout_ms: int = 5_000
    checkpoint_interval_ms: int = 2_000
    exactly_once: bool = True
    transactional_id_prefix: str = "tributary-sketches"
    hll_lg_k: int = 12


def _kafka_common(cfg: JobConfig) -> str:
    return f"'connector' = 'kafka', 'properties.bootstrap.servers' = '{cfg.bootstrap}'"


def _sink_guarantee(cfg: JobConfig, name: str) -> str:
    if cfg.exactly_once:
        return (
            "'sink.delivery-guarantee' = 'exactly-once', "
            f"'sink.transactional-id-prefix' = '{cfg.transactional_id_prefix}-{name}', "
            "'properties.transaction.timeout.ms' = '600000'"
        )
    return "'sink.delivery-guarantee' = 'at-least-once'"


def source_ddl(cfg: JobConfig) -> str:
    # The watermark needs the event time before the record is validated, so the rowtime
    # column parses it too. An invalid record (parse_event leaves event_time NULL) gets the
    # epoch: it goes to the DLQ and never reaches a window, and a rowtime of 0 can never
    # advance the watermark (a malformed record stamped "now" would make every valid event late).
    return f"""
CREATE TABLE events_raw (
  `raw` BYTES,
  `topic` STRING METADATA VIRTUAL,
  `partition` INT METADATA VIRTUAL,
  `offset` BIGINT METADATA VIRTUAL,
  `kafka_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  `rowtime` AS COALESCE(TO_TIMESTAMP_LTZ(parse_event(`raw`).event_time, 3), TO_TIMESTAMP_LTZ(0, 3)),
  WATERMARK FOR `rowtime` AS `rowtime` - INTERVAL '{cfg.out_of_orderness_ms / 1000:.3f}' SECOND
) WITH (
  {_kafka_common(cfg)},
  'topic' = '{cfg.events_topic}',
  'properties.group.id' = '{cfg.group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'scan.watermark.idle-timeout' = '{cfg.idle_timeout_ms} ms',
  'scan.topic-partition-discovery.interval' = '30 s',
  'format' = 'raw'
)"""


PARSED_VIEW = """
CREATE TEMPORARY VIEW parsed AS
SELECT parse_event(`raw`) AS ev, `raw`, `topic`, `partition`, `offset`, `kafka_ts`, `rowtime`
FROM events_raw"""

VALID_VIEW = """
CREATE TEMPORARY VIEW valid_events AS
SELECT ev.event_id AS event_id, ev.event_type AS event_type, ev.event_time AS event_time,
       ev.user_id AS user_id, ev.session_id AS session_id, ev.item_id AS item_id,
       ev.category AS category, ev.country AS country, ev.device AS device, ev.price AS price,
       ev.impression_id AS impression_id, `rowtime`
FROM parsed WHERE ev.reason IS NULL"""


def dlq_sink_ddl(cfg: JobConfig) -> str:
    return f"""
CREATE TABLE dlq_sink (
  `raw` BYTES,
  `raw_text` STRING,
  `reason` STRING,
  `detail` STRING,
  `source_topic` STRING,
  `source_partition` INT,
  `source_offset` BIGINT,
  `kafka_timestamp` TIMESTAMP_LTZ(3)
) WITH (
  {_kafka_common(cfg)},
  'topic' = '{cfg.dlq_topic}',
  'format' = 'json',
  {_sink_guarantee(cfg, "dlq")}
)"""


DLQ_INSERT = """
INSERT INTO dlq_sink
SELECT `raw`, CAST(`raw` AS STRING), ev.reason, ev.detail, `topic`, `partition`, `offset`, `kafka_ts`
FROM parsed WHERE ev.reason IS NOT NULL"""


def aggregates_sink_ddl(cfg: JobConfig) -> str:
    # Field names and JSON encoding are app.contracts.aggregates.AggregateRecord's
    # (BYTES become base64 strings in Flink's JSON format, which from_json expects).
    return f"""
CREATE TABLE aggregates_sink (
  `k` STRING,
  `v` INT,
  `kind` STRING,
  `field` STRING,
  `dim` STRING,
  `dim_value` STRING,
  `window_start` BIGINT,
  `window_end` BIGINT,
  `events` BIGINT,
  `late_events` BIGINT,
  `revision` INT,
  `emitted_at` BIGINT,
  `sketch` BYTES
) WITH (
  {_kafka_common(cfg)},
  'topic' = '{cfg.aggregates_topic}',
  'key.format' = 'raw',
  'key.fields' = 'k',
  'value.format' = 'json',
  'value.fields-include' = 'EXCEPT_KEY',
  {_sink_guarantee(cfg, "aggregates")}
)"""
