"""The SQL of the label job, as pure string builders (unit-tested without Flink).

events.v1 -> ``parse_event`` (Java UDF; invalid records are skipped here, the sketch job
dead-letters them) -> split off events behind the watermark (counted) -> de-duplicate by
``event_id`` on event time -> impressions LEFT interval-JOIN clicks/purchases on
``impression_id`` within the attribution window -> one row per impression -> examples.v1.
Clicks and purchases that answer no impression within the window are counted per window
into metrics.v1 (``late_labels``).

Late answers are counted, not lost: a mirror interval join (answers LEFT JOIN impressions in
[answer time - window, answer time]) lists every click/purchase that labelled nothing: after
the window, before its impression, or for an impression never seen (``no_impression_in_window``).
Events of any type that reached the job already behind its watermark (``behind_watermark``;
late duplicates land here too) are counted alongside. Both go, per ``count_window_seconds``
window of the counted event's own time, to metrics.v1 through upsert-kafka (exactly-once),
key ``late_labels|<reason>|<event_type>|<window_start>``, value
``{"metric": "late_labels", "reason", "event_type", "window_start", "window_end", "value",
"attribution_window_ms", "emitted_at"}``; every new late answer re-sends its key with the
new total, so the newest (= largest) ``value`` per key is the count.

Why the result is exactly one example per impression, and stays append-only:

* ``ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY rowtime) = 1`` on event time is planned
  as Flink's insert-only keep-first deduplication (``Deduplicate(keep=[FirstRow],
  order=[ROWTIME], outputInsertOnly=[true])``): it holds each event until the watermark passes
  it, emits it once and forgets duplicates (state bounded by ``table.exec.state.ttl``).
  It drops records already behind its watermark, which is why those are split off before it
  and counted (``behind_watermark``) instead of vanishing.
* The interval LEFT JOIN emits one row per (impression, answer in [t, t + window]) pair, and
  the impression alone, null-padded, once the watermark passes t + window without any answer.
* A tumbling event-time window (1 s) on the impression's rowtime grouped by the impression
  collapses those rows into one: label = answers > 0, example_time = the first answer's time
  (or t + window). The interval join holds its output watermark back by the window, so every
  joined row of an impression reaches this window before it fires; a window fires once, so the
  whole chain is append-only and a plain transactional (exactly-once) Kafka sink suffices.
"""

from __future__ import annotations

from dataclasses import dataclass

from flink_jobs.source_sql import PARSED_VIEW, VALID_VIEW, source_ddl
from flink_jobs.sql import _kafka_common, _sink_guarantee, interval

__all__ = [
    "LabelJobConfig", "COLLAPSE_WINDOW", "LATE_LABELS_METRIC", "all_ddl", "interval", "behind_condition",
    "split_views", "dedup_view", "side_views", "labelled_view", "unmatched_view", "examples_sink_ddl",
    "examples_insert", "late_labels_sink_ddl", "late_labels_insert",
]  # fmt: skip

#: Size of the tumbling window that collapses an impression's joined rows into one example.
COLLAPSE_WINDOW = "INTERVAL '1' SECOND"
LATE_LABELS_METRIC = "late_labels"
_EVENT_COLUMNS = (
    "event_id", "event_type", "event_time", "user_id", "session_id", "item_id", "category", "country",
    "device", "price", "impression_id", "features",
)  # fmt: skip
_IMPRESSION_KEYS = ("event_id", "event_time", "user_id", "session_id", "item_id", "category", "country", "device", "price")


@dataclass(frozen=True)
class LabelJobConfig:
    bootstrap: str = "localhost:9092"
    events_topic: str = "events.v1"
    examples_topic: str = "examples.v1"
    metrics_topic: str = "metrics.v1"
    group_id: str = "tributary-labels"
    attribution_window_ms: int = 30_000
    out_of_orderness_ms: int = 5_000
    idle_timeout_ms: int = 5_000
    checkpoint_interval_ms: int = 2_000
    exactly_once: bool = True
    transactional_id_prefix: str = "tributary-labels"
    #: Watermark alignment of the shared source (source_sql.source_ddl; 0 = off): the label job keeps
    #: no event-time windows whose state a reader running ahead would inflate.
    watermark_max_drift_ms: int = 0
    #: How long an event id is remembered for de-duplication (processing time, idle state).
    #: Duplicates behind the watermark are dropped anyway, so this only has to cover the
    #: out-of-orderness plus processing delays.
    dedup_ttl_ms: int = 600_000
    #: Windows of the late-label counts in metrics.v1 (by the event time of what is counted).
    count_window_seconds: int = 10
    #: State of those counts: kept long, since a late event may still add to an old window.
    count_ttl_ms: int = 7 * 86_400_000


def behind_condition() -> str:
    """True for an event already behind the watermark where it enters: the event-time
    de-duplication would drop it (it drops ``rowtime < watermark``), so it is counted instead.
    A record not behind here is never behind downstream (watermarks only trail records)."""
    return "(CURRENT_WATERMARK(`rowtime`) IS NOT NULL AND `rowtime` < CURRENT_WATERMARK(`rowtime`))"


def split_views() -> list[str]:
    cols = ", ".join(_EVENT_COLUMNS)
    cond = behind_condition()
    return [
        f"CREATE TEMPORARY VIEW label_input AS SELECT {cols}, `rowtime` FROM valid_events WHERE NOT {cond}",
        f"CREATE TEMPORARY VIEW behind_events AS SELECT event_type, event_time FROM valid_events WHERE {cond}",
    ]


def dedup_view() -> str:
    cols = ", ".join(_EVENT_COLUMNS)
    return f"""
CREATE TEMPORARY VIEW unique_events AS
SELECT {cols}, `rowtime` FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY `rowtime` ASC) AS rn FROM label_input
) WHERE rn = 1"""


def side_views() -> list[str]:
    imp_cols = ", ".join(c for c in _EVENT_COLUMNS if c not in ("event_type", "impression_id"))
    return [
        f"CREATE TEMPORARY VIEW impressions AS SELECT {imp_cols}, `rowtime` FROM unique_events "
        "WHERE event_type = 'impression'",
        "CREATE TEMPORARY VIEW answers AS SELECT event_id, event_type, event_time, impression_id, `rowtime` "
        "FROM unique_events WHERE event_type IN ('click', 'purchase')",
    ]


def labelled_view(cfg: LabelJobConfig) -> str:
    """Impressions LEFT interval-JOIN their answers: an answer counts iff t <= its time <= t + window."""
    imp = ", ".join(f"i.{c}" for c in (*_IMPRESSION_KEYS, "features"))
    return f"""
CREATE TEMPORARY VIEW labelled AS
SELECT {imp}, i.`rowtime`, a.event_id AS answer_id, a.event_time AS answer_time
FROM impressions i LEFT JOIN answers a
  ON a.impression_id = i.event_id
 AND a.`rowtime` BETWEEN i.`rowtime` AND i.`rowtime` + {interval(cfg.attribution_window_ms)}"""


def unmatched_view(cfg: LabelJobConfig) -> str:
    """Answers with no impression in [their time - window, their time]: too late, before the
    impression, or for an impression this job never saw. The mirror image of ``labelled``, so an
    answer is either joined there or listed here, never both."""
    return f"""
CREATE TEMPORARY VIEW unmatched_answers AS
SELECT a.event_type AS event_type, a.event_time AS event_time
FROM answers a LEFT JOIN impressions i
  ON i.event_id = a.impression_id
 AND i.`rowtime` BETWEEN a.`rowtime` - {interval(cfg.attribution_window_ms)} AND a.`rowtime`
WHERE i.event_id IS NULL"""


def all_ddl(cfg: LabelJobConfig) -> list[str]:
    """Every view, in order, after ``parse_event`` is registered."""
    return [
        source_ddl(cfg),  # type: ignore[arg-type]  # duck-typed: the same source options as sql.JobConfig
        PARSED_VIEW,
        VALID_VIEW,
        *split_views(),
        dedup_view(),
        *side_views(),
        labelled_view(cfg),
        unmatched_view(cfg),
        examples_sink_ddl(cfg),
        late_labels_sink_ddl(cfg),
    ]


def examples_sink_ddl(cfg: LabelJobConfig) -> str:
    # Field names and JSON encoding are app.contracts.examples.Example's; key = user_id.
    return f"""
CREATE TABLE examples_sink (
  `event_id` STRING,
  `event_time` BIGINT,
  `user_id` STRING,
  `session_id` STRING,
  `item_id` STRING,
  `category` STRING,
  `country` STRING,
  `device` STRING,
  `price` DOUBLE,
  `label` INT,
  `example_time` BIGINT,
  `features` MAP<STRING, DOUBLE>,
  `v` INT
) WITH (
  {_kafka_common(cfg)},
  'topic' = '{cfg.examples_topic}',
  'key.format' = 'raw',
  'key.fields' = 'user_id',
  'value.format' = 'json',
  'value.fields-include' = 'ALL',
  {_sink_guarantee(cfg, "examples")}
)"""


def examples_insert(cfg: LabelJobConfig) -> str:
    keys = ", ".join(_IMPRESSION_KEYS)
    return f"""
INSERT INTO examples_sink
SELECT {keys},
       CASE WHEN COUNT(answer_id) > 0 THEN 1 ELSE 0 END,
       COALESCE(MIN(answer_time), event_time + {cfg.attribution_window_ms}),
       LAST_VALUE(features), 1
FROM TABLE(TUMBLE(TABLE labelled, DESCRIPTOR(`rowtime`), {COLLAPSE_WINDOW}))
GROUP BY window_start, window_end, {keys}"""


def late_labels_sink_ddl(cfg: LabelJobConfig) -> str:
    """Per-window counts of answers that labelled nothing, upserted into metrics.v1.

    Key ``late_labels|<reason>|<event_type>|<window_start>``; the newest value per key is the count.
    """
    return f"""
CREATE TABLE late_labels_sink (
  `k` STRING,
  `metric` STRING,
  `reason` STRING,
  `event_type` STRING,
  `window_start` BIGINT,
  `window_end` BIGINT,
  `value` BIGINT,
  `attribution_window_ms` BIGINT,
  `emitted_at` BIGINT,
  PRIMARY KEY (`k`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'properties.bootstrap.servers' = '{cfg.bootstrap}',
  'topic' = '{cfg.metrics_topic}',
  'key.format' = 'raw',
  'value.format' = 'json',
  'value.fields-include' = 'EXCEPT_KEY',
  {_sink_guarantee(cfg, "late-labels")}
)"""


def late_labels_insert(cfg: LabelJobConfig) -> str:
    """Answers that matched no impression in time (``no_impression_in_window``) and events of any
    type that arrived behind the watermark (``behind_watermark``: an impression that gets no
    example, an answer that labels nothing; the sketch job keeps raw copies of late events)."""
    w = cfg.count_window_seconds * 1000
    ws = f"event_time - MOD(event_time, {w})"
    return f"""
INSERT INTO late_labels_sink
SELECT /*+ STATE_TTL('late' = '{cfg.count_ttl_ms} ms') */
       CONCAT('{LATE_LABELS_METRIC}|', reason, '|', event_type, '|', CAST(ws AS STRING)), '{LATE_LABELS_METRIC}',
       reason, event_type, ws, ws + {w}, COUNT(*), CAST({cfg.attribution_window_ms} AS BIGINT),
       CAST(UNIX_TIMESTAMP() * 1000 AS BIGINT)
FROM (
  SELECT 'no_impression_in_window' AS reason, event_type, {ws} AS ws FROM unmatched_answers
  UNION ALL
  SELECT 'behind_watermark' AS reason, event_type, {ws} AS ws FROM behind_events
) AS late
GROUP BY reason, event_type, ws"""
