"""Allowed lateness: a window fires on time, then is re-emitted, with a higher ``revision``, for
every event that arrives after it fired but within the allowed lateness.

Flink cannot do this inside the Python window operators: the planner refuses late firing for
Python group-window aggregates ("not supported for early fired or lately fired") and, without
late firing, forces the allowed lateness to 0. So the job does it itself, deterministically:

- ``admitted_late_events`` (sql.split_views): after the window fired (the watermark passed its
  end) but before its end + allowed lateness. Later ones go to late.v1 and are counted.
- a *correction* per (window, dimension value): the same sketches over the admitted late events
  only, kept by a per-record (general) Python aggregate keyed by window start. Late events are
  rare, so per-record Python is affordable here; every new one updates the correction.
- the on-time record joined with its correction on the record key: the sketches merged (they are
  mergeable; the reservoir's weighted merge stays uniform), events added, revision = the number
  of late events in it. The upsert sink turns the join's retractions into tombstones (readers
  skip them); stores keep the highest revision, so a replay never goes backwards.

Both join sides and the corrections live in keyed state with a TTL (window + lateness + 10 min of
processing time), so state stays bounded. Feature quantiles (``features.*``) are not revised.
"""

from __future__ import annotations

from flink_jobs.sql import RECORD_NAMES, SKETCHES, JobConfig, sketch_column, unpivot_select


def state_ttl(cfg: JobConfig) -> str:
    """How long a window's on-time record and its correction stay in state (processing time).

    >>> state_ttl(JobConfig(window_seconds=10, allowed_lateness_ms=20_000))
    '630000 ms'
    """
    return f"{cfg.window_seconds * 1000 + cfg.allowed_lateness_ms + 600_000} ms"


def function_name(kind: str) -> str:
    return f"late_sketch_{kind}"


def corrections_select(cfg: JobConfig, dim: str) -> str:
    """Per window start and dimension value: the count and every sketch of its admitted late events."""
    keys = "ws" if dim == "all" else f"ws, {dim}"
    dim_value = "" if dim == "all" else f"{dim} AS dim_value, "
    sketches = ", ".join(f"{function_name(k)}({c}) AS {sketch_column(k, f)}" for k, f, c in SKETCHES)
    return f"""
SELECT /*+ STATE_TTL('admitted_late_events' = '{state_ttl(cfg)}') */ ws, {dim_value}late_count(event_time) AS events,
       CAST(UNIX_TIMESTAMP() * 1000 AS BIGINT) AS emitted_at, {sketches}
FROM admitted_late_events GROUP BY {keys}"""


def corrected_records_select(cfg: JobConfig, dims: list[str]) -> str:
    """Each on-time record joined with its window's correction: merged sketch, revision = late events."""
    corrections = "\nUNION ALL\n".join(
        unpivot_select(cfg, f"late_corrections_{dim}", dim, revision="CAST(events AS INT)") for dim in dims
    )
    ttl = state_ttl(cfg)
    return f"""
SELECT /*+ STATE_TTL('b' = '{ttl}', 'c' = '{ttl}') */ b.k, b.v, b.kind, b.field, b.dim, b.dim_value, b.window_start,
       b.window_end, b.events + c.events, b.late_events, c.revision, c.emitted_at, merge_sketches(b.sketch, c.sketch)
FROM base_records AS b JOIN ({corrections}) AS c ON b.k = c.k"""


def insert_sql(cfg: JobConfig, base_selects: list[str], dims: list[str]) -> list[str]:
    """The statements that replace the plain ``INSERT INTO aggregates_sink`` when lateness > 0."""
    base = "\nUNION ALL\n".join(base_selects)
    return [
        f"CREATE TEMPORARY VIEW base_records ({RECORD_NAMES}) AS {base}",
        *(f"CREATE TEMPORARY VIEW late_corrections_{dim} AS {corrections_select(cfg, dim)}" for dim in dims),
        f"INSERT INTO aggregates_sink SELECT * FROM base_records UNION ALL {corrected_records_select(cfg, dims)}",
    ]
