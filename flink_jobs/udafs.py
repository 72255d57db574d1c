"""Vectorized (pandas) aggregate functions: each window reaches Python once per window part, as Arrow columns.

Thin shims over ``app.sketches``: all sketch logic and its tests live in the pure core.
"""

from __future__ import annotations

import pandas as pd
from pyflink.common import Row
from pyflink.table import DataTypes
from pyflink.table.udf import AggregateFunction, udaf, udf, udtf

from app.sketches import decode_sketch, new_sketch
from flink_jobs import window_records


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


def window_records_udaf(dims: list[str], part, window_ms: int):
    """One pandas UDAF per window: every dimension's records of one window part
    (``sql.WindowPart``), packed (flink_jobs/window_records.py)."""
    columns = part.columns
    features = "raw_text" if part.features else None

    def window_records_blob(*series: pd.Series) -> bytes:
        frame = pd.DataFrame(dict(zip(columns, series, strict=True)), copy=False)
        return window_records.build(frame, dims, part.sketches, window_ms, features_column=features, counts=part.counts)

    return udaf(window_records_blob, result_type=DataTypes.BYTES(), func_type="pandas")


def explode_window_udtf():
    """A packed window -> one row per record (runs once per window, so per-row Python is fine)."""

    def explode_window(blob: bytes):
        for r in window_records.unpack(blob):
            yield r.key(), r.kind, r.field, r.dim, r.dim_value, r.window_start, r.events, r.emitted_at, r.sketch

    types = [DataTypes.STRING()] * 5 + [DataTypes.BIGINT()] * 3 + [DataTypes.BYTES()]
    return udtf(explode_window, result_types=types)
