"""Vectorized (pandas) aggregate functions: each window reaches Python once, as Arrow columns.

Thin shims over ``app.sketches``: all sketch logic and its tests live in the pure core.
"""

from __future__ import annotations

import time

import pandas as pd
from pyflink.table import DataTypes
from pyflink.table.udf import udaf

from app.sketches import new_sketch


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
