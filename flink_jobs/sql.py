"""The SQL of the sketch job, as pure string builders (unit-tested without Flink).

Per-record work stays on the JVM (the input: flink_jobs/source_sql.py), and Python only sees
whole windows, packed by a Java aggregate, through table functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from flink_jobs.job_config import JobConfig


def interval(ms: int) -> str:
    """An exact SQL interval of ``ms`` milliseconds. (``INTERVAL 'n' SECOND`` stops at 99 s.)

    >>> interval(5_000)
    "INTERVAL '0 00:00:05.000' DAY TO SECOND(3)"
    """
    if not 0 <= ms < 100 * 86_400_000:
        raise ValueError("interval must be >= 0 ms and under 100 days")
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}' DAY TO SECOND(3)"


def streaming_settings(
    name: str, jars: str, checkpoint_interval_ms: int, idle_timeout_ms: int, allowed_lateness_ms: int = 0
) -> dict[str, str]:
    """The table configuration every Tributary job runs with.

    >>> streaming_settings("j", "", 2000, 30000)["table.exec.uid.generation"]
    'ALWAYS'
    """
    settings = {
        "pipeline.name": name,
        "table.local-time-zone": "UTC",
        "execution.checkpointing.interval": f"{checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "table.exec.source.idle-timeout": f"{idle_timeout_ms} ms",
        # Every SQL operator gets a uid ("<exec node id>_<transformation>", FLIP-190): the same
        # job (or one that only changes parameters) restores its state from a savepoint.
        "table.exec.uid.generation": "ALWAYS",
        # Reuse common sub-plans across a job's branches: without it the sketch job's optimized
        # plan evaluated parse_event 37 times per record, with it 3 (StatementSet.explain()), and
        # the label job kept several copies of its de-duplication state.
        "table.optimizer.reuse-optimize-block-with-digest-enabled": "true",
        # Chained operators hand rows over by reference instead of deep-copying each one (18 % of
        # the source task's samples in a JFR profile). The SQL runtime is written for reuse;
        # every operator that keeps rows (windows, joins, aggregates) sits behind an exchange,
        # which deserializes fresh ones.
        "pipeline.object-reuse": "true",
    }
    if allowed_lateness_ms > 0:
        # Re-fired windows reach the upsert sink as updates keyed by the record key; the sink's
        # materializer would keep every version of every window forever, and readers keep the
        # highest revision anyway (retractions become tombstones, which they skip).
        settings["table.exec.sink.upsert-materialize"] = "NONE"
    if jars:
        settings["pipeline.jars"] = jars
    return settings


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


def late_condition(cfg: JobConfig, lateness_ms: int | None = None) -> str:
    """True for an event whose window has already fired (plus allowed lateness) when it arrives.

    Exactly the window operator's rule: a tumbling window [s, s+W) fires once the watermark
    reaches s+W-1 and is dropped once it passes s+W-1+lateness, so an event is late iff that
    instant is at or before the watermark seen with it. Evaluated on the JVM, so late events are
    split off and counted instead of being dropped silently inside the window operator.
    ``lateness_ms=0`` asks "has the window already fired?" (the event re-fires it if admitted).
    """
    w = cfg.window_seconds * 1000
    lateness = cfg.allowed_lateness_ms if lateness_ms is None else lateness_ms
    return (
        "(CURRENT_WATERMARK(`rowtime`) IS NOT NULL AND "
        f"TO_TIMESTAMP_LTZ(event_time - MOD(event_time, {w}) + {w - 1 + lateness}, 3) "
        "<= CURRENT_WATERMARK(`rowtime`))"
    )


def split_views(cfg: JobConfig, late_source: str = "valid_events") -> list[str]:
    """The on-time, admitted-late and late events. ``late_source``: where late events are found
    (``side_input`` with the Java source: only the columns the late paths read)."""
    w = cfg.window_seconds * 1000
    cond = late_condition(cfg)
    late_from = "valid_events WHERE" if late_source == "valid_events" else f"{late_source} WHERE reason IS NULL AND"
    # Only the late paths see the event as text: decoding every on-time event's bytes to a
    # string (and encoding it again for the network) cost the source task ~1 µs per event.
    late = f"*, CAST(`raw` AS STRING) AS raw_text, event_time - MOD(event_time, {w}) AS ws"
    return [
        # On time: before its window fired. (Flink's window operators cannot fire late here, see
        # flink_jobs/late_revisions.py: events admitted by the allowed lateness take another path.)
        f"CREATE TEMPORARY VIEW on_time_events AS SELECT * FROM valid_events WHERE NOT {late_condition(cfg, 0)}",
        f"CREATE TEMPORARY VIEW admitted_late_events AS SELECT {late} "
        f"FROM valid_events WHERE {late_condition(cfg, 0)} AND NOT {cond}",
        # Only what the late sink and the late counts read: every column listed here is copied for
        # every record, late or not, by the calcs the planner shares between the DLQ and late paths.
        f"CREATE TEMPORARY VIEW late_events AS SELECT `raw`, CAST(`raw` AS STRING) AS raw_text, event_time, "
        f"event_time - MOD(event_time, {w}) AS ws FROM {late_from} {cond}",
    ]


def late_sink_ddl(cfg: JobConfig, topic: str) -> str:
    return f"""
CREATE TABLE late_sink (
  `raw` BYTES,
  `raw_text` STRING,
  `event_time` BIGINT,
  `window_start` BIGINT
) WITH (
  {_kafka_common(cfg)},
  'topic' = '{topic}',
  'format' = 'json',
  {_sink_guarantee(cfg, "late")}
)"""


LATE_INSERT = "INSERT INTO late_sink SELECT `raw`, raw_text, event_time, ws FROM late_events"


#: The columns of app.contracts.aggregates.AggregateRecord (its key first), minus the sketch.
RECORD_COLUMNS = """  `k` STRING, `v` INT, `kind` STRING, `field` STRING, `dim` STRING, `dim_value` STRING,
  `window_start` BIGINT, `window_end` BIGINT, `events` BIGINT, `late_events` BIGINT,
  `revision` INT, `emitted_at` BIGINT,"""


def late_counts_sink_ddl(cfg: JobConfig) -> str:
    """Per-window late counts, upserted into aggregates.v1 (key ``late|*|all||<ws>``)."""
    return f"""
CREATE TABLE late_counts_sink (
{RECORD_COLUMNS}
  PRIMARY KEY (`k`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'properties.bootstrap.servers' = '{cfg.bootstrap}',
  'topic' = '{cfg.aggregates_topic}',
  'key.format' = 'raw',
  'value.format' = 'json',
  'value.fields-include' = 'EXCEPT_KEY',
  {_sink_guarantee(cfg, "late-counts")}
)"""


def late_counts_insert(cfg: JobConfig) -> str:
    w = cfg.window_seconds * 1000
    return f"""
INSERT INTO late_counts_sink
SELECT CONCAT('late|*|all||', CAST(ws AS STRING)), 1, 'late', '*', 'all', '', ws, ws + {w},
       CAST(0 AS BIGINT), COUNT(*), CAST(COUNT(*) AS INT), CAST(UNIX_TIMESTAMP() * 1000 AS BIGINT)
FROM late_events GROUP BY ws"""


#: (kind, field) -> input column of the per-dimension window aggregation.
SKETCHES: tuple[tuple[str, str, str], ...] = (
    ("hll", "user_id", "user_id"),
    ("hll", "session_id", "session_id"),
    ("hll", "item_id", "item_id"),
    ("frequent", "item_id", "item_id"),
    ("frequent", "category", "category"),
    ("frequent", "user_id", "user_id"),
    ("kll", "price", "price"),
    ("cms", "item_id", "item_id"),
    ("cms", "user_id", "user_id"),
    ("reservoir", "*", "raw_text"),
)
#: Exact per-window counts (timeseries) travel as a sketch-less record of their own.
COUNT_ROW = "ROW('count', '*', CAST(X'' AS BYTES))"


def sketch_column(kind: str, field: str) -> str:
    return f"s_{kind}_{field}".replace(".", "_").replace("*", "all")


#: Output names of a record row (RECORD_COLUMNS, then the sketch).
RECORD_NAMES = "k, v, kind, field, dim, dim_value, window_start, window_end, events, late_events, revision, emitted_at, sketch"


def unpivot_select(cfg: JobConfig, view: str, dim: str, revision: str = "0") -> str:
    """One row per (window, dim value) with many sketch columns -> one record per sketch."""
    w = cfg.window_seconds * 1000
    rows = ", ".join([*(f"ROW('{k}', '{f}', {sketch_column(k, f)})" for k, f, _ in SKETCHES), COUNT_ROW])
    dim_value = "''" if dim == "all" else "dim_value"
    return f"""
SELECT CONCAT(t.kind, '|', t.field, '|', '{dim}', '|', {dim_value}, '|', CAST(ws AS STRING)) AS k, 1 AS v, t.kind AS kind,
       t.field AS field, '{dim}' AS dim, {dim_value} AS dim_value, ws AS window_start, ws + {w} AS window_end,
       events, CAST(0 AS BIGINT) AS late_events, {revision} AS revision, emitted_at, t.sketch AS sketch
FROM {view} CROSS JOIN UNNEST(ARRAY[{rows}]) AS t(kind, field, sketch)"""


#: The columns of on_time_events that the Java aggregate pack_window takes, in its order
#: (dev.tributary.flink.PackWindow; WindowColumns documents the packed form).
PACK_WINDOW_COLUMNS = (
    "event_time", "user_id", "session_id", "item_id", "category", "country", "device", "price", "features", "raw",
)

#: With two parts: the identity sketches (strings: distinct counts, heavy hitters, point counts)
#: in one Python table function, the value sketches (price and feature quantiles, the raw-event
#: sample) in another. They share no sketch and no record key, and each runs in its own Python
#: worker, so the two build a window side by side.
WINDOW_PARTS: tuple[frozenset[str], ...] = (frozenset({"hll", "frequent", "cms"}), frozenset({"kll", "reservoir"}))


@dataclass(frozen=True)
class WindowPart:
    """One Python sketch builder of the sketch job: which sketches it builds from which columns."""

    sketches: tuple[tuple[str, str, str], ...]
    features: bool  # also a KLL per numeric feature
    counts: bool  # also the exact count per dimension value (exactly one part does it)
    sections: tuple[str, ...]  # the fields of pack_window's result it reads


def window_parts(n: int) -> list[WindowPart]:
    """The sketch builders for ``n`` parts (1 or 2).

    >>> [(len(p.sketches), p.features, p.counts, p.sections) for p in window_parts(2)]
    [(8, False, True, ('identity',)), (2, True, False, ('values',))]
    >>> window_parts(1)[0].sections
    ('identity', 'values')
    """
    if n not in (1, 2):
        raise ValueError(f"window_parts must be 1 or 2, got {n}")
    groups = [frozenset(k for k, _, _ in SKETCHES)] if n == 1 else list(WINDOW_PARTS)
    parts = []
    for i, kinds in enumerate(groups):
        sections = tuple(name for name, needs in _SECTIONS if kinds & needs)
        parts.append(WindowPart(tuple(s for s in SKETCHES if s[0] in kinds), "kll" in kinds, i == 0, sections))
    return parts


#: pack_window's result fields (PackWindow.RESULT_TYPE) and the sketch kinds that read each.
_SECTIONS = (("identity", frozenset({"hll", "frequent", "cms"})), ("values", frozenset({"kll", "reservoir"})))


def window_records_select(cfg: JobConfig, view: str, function: str, sections: tuple[str, ...]) -> str:
    """The packed window (one row per window) -> one aggregates.v1 record per sketch and dim value,
    built by the Python table function ``function`` from the ``sections`` of the packed row."""
    w = cfg.window_seconds * 1000
    args = ", ".join(f"`packed`.`{s}`" for s in sections)
    return f"""
SELECT t.k AS k, 1 AS v, t.kind AS kind, t.field AS field, t.dim AS dim, t.dim_value AS dim_value,
       t.ws AS window_start, t.ws + {w} AS window_end, t.events AS events, CAST(0 AS BIGINT) AS late_events,
       0 AS revision, t.emitted_at AS emitted_at, t.sketch AS sketch
FROM {view}, LATERAL TABLE({function}({args})) AS t(k, kind, field, dim, dim_value, ws, events, emitted_at, sketch)"""


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


def dlq_insert(cfg: JobConfig, flat: bool = False) -> str:
    """Invalid records -> dlq.v1. The topic is the job's one input topic: a constant, not a
    per-record metadata string (which the chain copied and UTF-8-encoded for every valid record).
    ``flat``: the source parsed the events (``reason`` and ``detail`` are columns of ``events_raw``)."""
    reason, detail, source = ("reason", "detail", "side_input") if flat else ("ev.reason", "ev.detail", "parsed")
    return f"""
INSERT INTO dlq_sink
SELECT `raw`, CAST(`raw` AS STRING), {reason}, {detail}, '{cfg.events_topic}', `partition`, `offset`, `kafka_ts`
FROM {source} WHERE {reason} IS NOT NULL"""


def aggregates_sink_ddl(cfg: JobConfig) -> str:
    """Field names and JSON encoding are app.contracts.aggregates.AggregateRecord's (BYTES become
    base64 strings in Flink's JSON format, which from_json expects).

    With allowed lateness a window fires again, so the sink takes updates: upsert-kafka on the
    record key, where the retraction of the earlier firing becomes a tombstone (readers skip
    it) and the new firing, with a higher ``revision``, replaces the window downstream.
    """
    if cfg.allowed_lateness_ms > 0:
        connector = f"""'connector' = 'upsert-kafka', 'properties.bootstrap.servers' = '{cfg.bootstrap}',
  'topic' = '{cfg.aggregates_topic}',
  'key.format' = 'raw',"""
        key = ",\n  PRIMARY KEY (`k`) NOT ENFORCED"
    else:
        connector = f"""{_kafka_common(cfg)},
  'topic' = '{cfg.aggregates_topic}',
  'key.format' = 'raw',
  'key.fields' = 'k',"""
        key = ""
    return f"""
CREATE TABLE aggregates_sink (
{RECORD_COLUMNS}
  `sketch` BYTES{key}
) WITH (
  {connector}
  'value.format' = 'json',
  'value.fields-include' = 'EXCEPT_KEY',
  'properties.linger.ms' = '{cfg.sink_linger_ms}',
  'properties.batch.size' = '{cfg.sink_batch_bytes}',
  {_sink_guarantee(cfg, "aggregates")}
)"""
