"""Comparison design (not deployed): the sketch job's core with the PyFlink DataStream API and
per-record Python, measured against the Table-API design by ``benchmarks/flink_designs.py``.

events.v1 (Kafka, raw strings) → Python ``map``: stdlib ``json`` parse + validation (invalid
records are dropped and counted, no DLQ) → Python timestamp assigner + bounded-out-of-orderness
watermarks → ``key_by`` a constant → 10 s tumbling event-time windows → Python
``ProcessWindowFunction`` building an :class:`~app.sketches.HllSketch` of ``user_id`` and the
exact count → aggregates (one ``hll|user_id|all`` and one ``count|*|all`` record per window,
AggregateRecord's JSON fields; no Kafka key) through a Kafka sink.

Only ``app.sketches`` and the standard library are used: the Flink venv has no orjson/pydantic.
The watermark is assigned after the Python map (PyFlink ignores a Python timestamp assigner
given to ``from_source``), so it is one watermark for all partitions, not one per partition as
in the Table-API job: partitions read far apart in event time would make records late.

Submit like the sketch job (``adapters.local.jobs.submit(s, "alt_datastream_job", name, args)``).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
import time
from datetime import date

MAX_EPOCH_MS = 253_402_300_799_999
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

EVENT_TYPES = frozenset(("impression", "click", "purchase"))
DEVICES = frozenset(("mobile", "desktop", "tablet"))
_STR_FIELDS = ("user_id", "session_id", "item_id")


def rfc3339_to_ms(s: str):
    m = _RFC3339.fullmatch(s)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if hour > 23 or minute > 59 or second > 59:
        return None
    try:
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    offset_s = 0
    if m.group(8) is None:
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        offset_s = (oh * 3600 + om * 60) * (-1 if m.group(9) == "-" else 1)
    millis = int(((m.group(7) or "") + "000")[:3])
    return (days * 86400 + hour * 3600 + minute * 60 + second - offset_s) * 1000 + millis


def _number(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def parse(raw: str):
    """``(event_time_ms, user_id)`` of a valid event, or None (the contract's rules, in brief)."""
    try:
        d = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(d, dict):
        return None
    eid, etype, t = d.get("event_id"), d.get("event_type"), d.get("event_time")
    if not isinstance(eid, str) or not 1 <= len(eid) <= 64 or etype not in EVENT_TYPES:
        return None
    if isinstance(t, bool):
        return None
    if isinstance(t, int):
        ts = t
    elif isinstance(t, str):
        ts = rfc3339_to_ms(t)
    else:
        return None
    if ts is None or not 0 <= ts <= MAX_EPOCH_MS:
        return None
    for f in _STR_FIELDS:
        v = d.get(f)
        if not isinstance(v, str) or not 1 <= len(v) <= 128:
            return None
    if not isinstance(d.get("category"), str) or d.get("device") not in DEVICES:
        return None
    c = d.get("country")
    if not isinstance(c, str) or len(c) != 2 or not ("A" <= c[0] <= "Z" and "A" <= c[1] <= "Z"):
        return None
    p = d.get("price")
    if not _number(p) or p < 0:
        return None
    if etype != "impression" and not isinstance(d.get("impression_id"), str):
        return None
    feats = d.get("features")
    if feats is not None:
        if not isinstance(feats, dict) or len(feats) > 64:
            return None
        for v in feats.values():
            if not _number(v):
                return None
    return ts, d["user_id"]


def record(kind: str, field: str, start: int, end: int, events: int, sketch: bytes, emitted_at: int) -> str:
    return json.dumps({
        "kind": kind, "field": field, "window_start": start, "window_end": end, "events": events,
        "sketch": base64.b64encode(sketch).decode("ascii"), "dim": "all", "dim_value": "", "late_events": 0,
        "revision": 0, "emitted_at": emitted_at, "params": {}, "v": 1,
    }, separators=(",", ":"))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from pyflink.common import Configuration, Duration, Time, Types, WatermarkStrategy
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.common.watermark_strategy import TimestampAssigner
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
    from pyflink.datastream.connectors.base import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import (
        KafkaOffsetsInitializer,
        KafkaRecordSerializationSchema,
        KafkaSink,
        KafkaSource,
    )
    from pyflink.datastream.functions import MapFunction, ProcessWindowFunction
    from pyflink.datastream.window import TumblingEventTimeWindows

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bootstrap", default="localhost:9092")
    p.add_argument("--events-topic", default="events.v1")
    p.add_argument("--aggregates-topic", default="aggregates.v1")
    p.add_argument("--group-id", default="tributary-alt-datastream")
    p.add_argument("--window-seconds", type=int, default=10)
    p.add_argument("--out-of-orderness-ms", type=int, default=5_000)
    p.add_argument("--idle-timeout-ms", type=int, default=5_000)
    p.add_argument("--checkpoint-interval-ms", type=int, default=2_000)
    p.add_argument("--exactly-once", type=lambda v: v.lower() in ("1", "true", "yes"), default=True)
    p.add_argument("--transactional-id-prefix", default="tributary-alt-datastream")
    p.add_argument("--python-mode", choices=("process", "thread"), default="process")
    p.add_argument("--jars", default="")
    p.add_argument("--job-name", default="tributary-alt-datastream")
    a, _ = p.parse_known_args(argv)  # tolerate the sketch job's other flags

    conf = Configuration()
    conf.set_string("pipeline.name", a.job_name)
    if a.jars:
        conf.set_string("pipeline.jars", a.jars)
    conf.set_string("python.execution-mode", a.python_mode)
    conf.set_string("python.fn-execution.bundle.size", "100000")
    conf.set_string("python.fn-execution.bundle.time", "1000")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.enable_checkpointing(a.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)

    source = (
        KafkaSource.builder()
        .set_bootstrap_servers(a.bootstrap)
        .set_topics(a.events_topic)
        .set_group_id(a.group_id)
        .set_starting_offsets(KafkaOffsetsInitializer.earliest())
        .set_value_only_deserializer(SimpleStringSchema())
        .set_property("isolation.level", "read_committed")
        .build()
    )
    guarantee = DeliveryGuarantee.EXACTLY_ONCE if a.exactly_once else DeliveryGuarantee.AT_LEAST_ONCE
    sink_builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(a.bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(a.aggregates_topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(guarantee)
    )
    if a.exactly_once:
        sink_builder = sink_builder.set_transactional_id_prefix(a.transactional_id_prefix).set_property(
            "transaction.timeout.ms", "600000"
        )
    sink = sink_builder.build()

    class Parse(MapFunction):
        def map(self, value):
            got = parse(value)
            return (-1, "") if got is None else got

    class EventTime(TimestampAssigner):
        def extract_timestamp(self, value, record_timestamp) -> int:
            return value[0]

    window_ms = a.window_seconds * 1000

    class BuildSketch(ProcessWindowFunction):
        def process(self, key, context, elements):
            from app.sketches import HllSketch

            sketch = HllSketch()
            n = 0
            upd = sketch.update
            for _, user in elements:
                upd(user)
                n += 1
            start = context.window().start
            now = int(time.time() * 1000)
            yield record("hll", "user_id", start, start + window_ms, n, sketch.to_bytes(), now)
            yield record("count", "*", start, start + window_ms, n, b"", now)

    # with_idleness() must come first: in PyFlink it returns a new strategy that silently drops a
    # Python timestamp assigner set before it (the Kafka record timestamps would be used instead).
    watermarks = (
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(a.out_of_orderness_ms))
        .with_idleness(Duration.of_millis(a.idle_timeout_ms))
        .with_timestamp_assigner(EventTime())
    )
    events = env.from_source(source, WatermarkStrategy.no_watermarks(), "events")
    (
        events.map(Parse(), output_type=Types.TUPLE([Types.LONG(), Types.STRING()]))
        .filter(lambda e: e[0] >= 0)
        .assign_timestamps_and_watermarks(watermarks)
        .key_by(lambda e: 0, key_type=Types.INT())
        .window(TumblingEventTimeWindows.of(Time.milliseconds(window_ms)))
        .process(BuildSketch(), output_type=Types.STRING())
        .sink_to(sink)
    )
    env.execute_async(a.job_name)


if __name__ == "__main__":
    main()
