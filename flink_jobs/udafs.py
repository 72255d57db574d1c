"""Vectorized (pandas) aggregate functions: each window reaches Python once, as Arrow columns.

Thin shims over ``app.sketches``: all sketch logic and its tests live in the pure core.
"""

from __future__ import annotations

import time

import pandas as pd
from pyflink.common import Row
from pyflink.table import DataTypes
from pyflink.table.udf import AggregateFunction, udaf, udf

from app.sketches import decode_sketch, new_sketch


def window_start_udaf(window_ms: int):
    """Start of the tumbling window holding these event times (epoch-aligned, exact)."""

    def window_start(event_time: pd.Series) -> int:
        first = int(event_time.iloc[0])
        return first - first % window_ms

    return udaf(window_start, result_type=DataTypes.BIGINT(), func_type="pandas")


def count_udaf():
    # A built-in COUNT next to pandas UDAFs in one streaming group window fails in Flink 2.x
    # (NullPointerException, see FIELD-NOTES), so the exact count is vectorized too.
    def count(values: pd.Series) -> int:
        return int(len(values))

    return udaf(count, result_type=DataTypes.BIGINT(), func_type="pandas")


def emitted_at_udaf():
    def emitted_at(values: pd.Series) -> int:
        return int(time.time() * 1000)

    return udaf(emitted_at, result_type=DataTypes.BIGINT(), func_type="pandas")


def sketch_udaf(kind: str, params: dict | None = None):
    """A pandas UDAF building one ``kind`` sketch of a column, returned as envelope bytes."""
    params = params or {}

    def build(values: pd.Series) -> bytes:
        sketch = new_sketch(kind, **params)
        if kind == "kll":
            sketch.update_many(values.to_numpy(dtype="float64"))
        else:
            sketch.update_many(values.tolist())
        return sketch.to_bytes()

    build.__name__ = f"sketch_{kind}"
    return udaf(build, result_type=DataTypes.BYTES(), func_type="pandas")


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
