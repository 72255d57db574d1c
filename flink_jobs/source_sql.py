"""The sketch job's input, as SQL and source arguments (pure: unit-tested without Flink).

Two ways in (``--source``): the Java Kafka source that parses each record in its deserializer
(``java_source_args``, ``java_watermark_args``: flat columns, ``valid_view(flat=True)``), or the
raw-format table source (``source_ddl``) and the ``parse_event`` UDF (``PARSED_VIEW``), which the
label job still uses.
"""

from __future__ import annotations

from flink_jobs.job_config import JobConfig
from flink_jobs.sql import _kafka_common, interval

def source_ddl(cfg: JobConfig, name: str = "events_raw") -> str:
    # The watermark needs the event time before the record is validated, so the rowtime
    # column parses it too. An invalid record (parse_event leaves event_time NULL) gets the
    # epoch: it goes to the DLQ and never reaches a window, and a rowtime of 0 can never
    # advance the watermark (a malformed record stamped "now" would make every valid event late).
    return f"""
CREATE TABLE {name} (
  `raw` BYTES,
  `partition` INT METADATA VIRTUAL,
  `offset` BIGINT METADATA VIRTUAL,
  `kafka_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  `rowtime` AS COALESCE(TO_TIMESTAMP_LTZ(parse_event(`raw`).event_time, 3), TO_TIMESTAMP_LTZ(0, 3)),
  WATERMARK FOR `rowtime` AS `rowtime` - {interval(cfg.out_of_orderness_ms)}
) WITH (
  {_kafka_common(cfg)},
  'topic' = '{cfg.events_topic}',
  'properties.group.id' = '{cfg.group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'scan.watermark.idle-timeout' = '{cfg.idle_timeout_ms} ms',{_alignment(cfg)}
  'scan.topic-partition-discovery.interval' = '30 s',
  'format' = 'raw'
)"""


#: How often aligned readers report their watermarks (both sources).
ALIGNMENT_UPDATE_MS = 250


def java_source_args(cfg: JobConfig) -> tuple[str, str, str, int]:
    """dev.tributary.flink.EventSource.kafka's arguments: the same topic, group and partition
    discovery (30 s) as ``source_ddl``.

    >>> java_source_args(JobConfig())
    ('localhost:9092', 'events.v1', 'tributary-sketches', 30000)
    """
    return cfg.bootstrap, cfg.events_topic, cfg.group_id, 30_000


def java_watermark_args(cfg: JobConfig) -> tuple[int, int, str, int, int]:
    """EventSource.watermarks' arguments: ``source_ddl``'s watermark, idleness and alignment.

    >>> java_watermark_args(JobConfig(watermark_max_drift_ms=0))
    (5000, 30000, 'events', 0, 250)
    """
    return cfg.out_of_orderness_ms, cfg.idle_timeout_ms, "events", max(0, cfg.watermark_max_drift_ms), ALIGNMENT_UPDATE_MS


def _alignment(cfg: JobConfig) -> str:
    drift_ms = cfg.watermark_max_drift_ms
    if drift_ms <= 0:
        return ""
    return f"""
  'scan.watermark.alignment.group' = 'events',
  'scan.watermark.alignment.max-drift' = '{drift_ms} ms',
  'scan.watermark.alignment.update-interval' = '{ALIGNMENT_UPDATE_MS} ms',"""


PARSED_VIEW = """
CREATE TEMPORARY VIEW parsed AS
SELECT parse_event(`raw`) AS ev, `raw`, `partition`, `offset`, `kafka_ts`, `rowtime`
FROM events_raw"""

#: The event's fields in ParseEvent.RESULT_TYPE (after ``reason`` and ``detail``).
EVENT_FIELDS = (
    "event_id", "event_type", "event_time", "user_id", "session_id", "item_id", "category", "country", "device",
    "price", "impression_id", "features",
)


def valid_view(flat: bool = False) -> str:
    """Valid events: from ``parsed`` (the UDF's nested row ``ev``), or ``flat`` from ``events_raw``
    when the source parsed them itself (sketch_job's Java source: the fields are columns).

    >>> valid_view(flat=True).split("FROM ")[-1]
    'events_raw WHERE reason IS NULL'
    """
    if flat:
        return f"""
CREATE TEMPORARY VIEW valid_events AS
SELECT {", ".join(EVENT_FIELDS)}, `raw`, `rowtime`
FROM events_raw WHERE reason IS NULL"""
    return f"""
CREATE TEMPORARY VIEW valid_events AS
SELECT {", ".join(f"ev.{f} AS {f}" for f in EVENT_FIELDS)}, `raw`, `rowtime`
FROM parsed WHERE ev.reason IS NULL"""


VALID_VIEW = valid_view()


#: (``--source java``) What the DLQ and the late split read: the statement set's plan shares one
#: calc between them, and that calc copies every string column it carries, for every record.
SIDE_INPUT_VIEW = """
CREATE TEMPORARY VIEW side_input AS
SELECT reason, detail, `raw`, `partition`, `offset`, `kafka_ts`, event_time, `rowtime` FROM events_raw"""
