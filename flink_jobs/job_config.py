"""The sketch job's settings: one flag each (flink_jobs/sketch_job.py), so tests and benchmarks can
point the job at their own topics and compare settings."""

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
    idle_timeout_ms: int = 30_000
    checkpoint_interval_ms: int = 2_000
    exactly_once: bool = True
    transactional_id_prefix: str = "tributary-sketches"
    allowed_lateness_ms: int = 0
    dims: str = "all,country,device,category"
    #: Python sketch builders the sketches are split over (see window_parts); 1 = one for everything.
    window_parts: int = 2
    #: Parallelism of every operator but the (global) window: 0 = the cluster's default.
    parallelism: int = 2
    #: Subtasks of the Python sketch builders: consecutive windows are built side by side.
    builders: int = 2
    #: The aggregates sink's producer batching. A window leaves as ~400 records at once (four
    #: dimensions), and readers only see them when the checkpoint commits the transaction, so
    #: waiting a little to send fewer, larger requests costs no freshness.
    sink_linger_ms: int = 50
    sink_batch_bytes: int = 512 * 1024
    #: Watermark alignment (FLIP-182): a source reader whose watermark runs more than this ahead
    #: of the slowest one pauses until that one catches up (0 = off). Without it, catching up on
    #: a backlog let one reader run ahead: the window operator has to keep every window between
    #: the two readers' event times, and a 9 M-event backlog filled the heap (OutOfMemoryError in
    #: the window's checkpoint, then a restart loop). 60 s = 6 windows; 10 s (with 1 s alignment
    #: updates) paused readers so often that throughput halved (docs/flink-design.md, sixth round).
    watermark_max_drift_ms: int = 60_000
    #: Where events are parsed: "java" (the Kafka source's deserializer, dev.tributary.flink.
    #: EventSource: flat internal rows, no conversion into the Table API) or "sql" (a raw-format
    #: table source and the parse_event UDF; the design before the ninth round, kept for A/B runs).
    source: str = "java"
