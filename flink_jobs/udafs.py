"""Python functions of the sketch job: the per-window sketch builders, and the per-record late path.

Thin shims over ``app.sketches``: all sketch logic and its tests live in the pure core.
"""

from __future__ import annotations

from pyflink.common import Row
from pyflink.table import DataTypes
from pyflink.table.udf import AggregateFunction, udaf, udf, udtf

from app.sketches import decode_sketch, new_sketch
from flink_jobs import window_columns, window_records


class _SketchAccumulator(AggregateFunction):
    """A per-record (general) aggregate building one ``kind`` sketch, for the rare late path:
    admitted late events update their window's correction sketch one at a time."""

    def __init__(self, kind: str, params: dict | None = None) -> None:
        self.kind, self.params = kind, params or {}

    def create_accumulator(self):
        return Row(None)

    def accumulate(self, acc, value) -> None:
        sketch = new_sketch(self.kind, **self.params) if acc[0] is None else decode_sketch(acc[0])
        sketch.update(value)
        acc[0] = sketch.to_bytes()

    def get_value(self, acc):
        return acc[0]

    def get_accumulator_type(self):
        return DataTypes.ROW([DataTypes.FIELD("sketch", DataTypes.BYTES())])

    def get_result_type(self):
        return DataTypes.BYTES()


class _Count(AggregateFunction):
    """COUNT for the late path (Java and Python aggregates cannot share one group aggregation)."""

    def create_accumulator(self):
        return Row(0)

    def accumulate(self, acc, value) -> None:
        acc[0] += 1

    def get_value(self, acc):
        return acc[0]

    def get_accumulator_type(self):
        return DataTypes.ROW([DataTypes.FIELD("n", DataTypes.BIGINT())])

    def get_result_type(self):
        return DataTypes.BIGINT()


def count_accumulator_udaf():
    return udaf(_Count(), func_type="general")


def sketch_accumulator_udaf(kind: str, params: dict | None = None):
    return udaf(_SketchAccumulator(kind, params), func_type="general")


def merge_sketches_udf():
    """The on-time window's sketch merged with its late correction (same kind; the reservoir's
    weighted merge keeps the combined sample uniform). Empty bytes (exact counts) stay empty."""

    def merge(base: bytes, correction: bytes) -> bytes:
        if not base or not correction:
            return base
        merged = decode_sketch(base)
        merged.merge(decode_sketch(correction))
        return merged.to_bytes()

    return udf(merge, result_type=DataTypes.BYTES())


def window_sketches_udtf(dims: list[str], part, window_ms: int):
    """A packed window (the Java aggregate ``pack_window``; the sections ``part.sections`` names)
    -> one row per record of one window part (``sql.WindowPart``): every sketch of every dimension value, built with numpy from the
    window's columns (flink_jobs/window_records.py). Runs once per window, not per event."""

    def window_sketches(*packed: bytes):
        blob = window_records.build(window_columns.PackedColumns(*packed), dims, part.sketches, window_ms,
                                    features=part.features, counts=part.counts)  # fmt: skip
        for r in window_records.unpack(blob):
            yield r.key(), r.kind, r.field, r.dim, r.dim_value, r.window_start, r.events, r.emitted_at, r.sketch

    types = [DataTypes.STRING()] * 5 + [DataTypes.BIGINT()] * 3 + [DataTypes.BYTES()]
    return udtf(window_sketches, result_types=types)
