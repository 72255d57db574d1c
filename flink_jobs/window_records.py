"""Every record of one window, for every dimension, from one pass over its columns.

The sketch job used to run one Flink window operator per dimension: each copied every row
(including the raw event kept for the reservoir sample) through the network, into its own
window state, into Arrow and to its own Python worker, so the JVM spent ~120 µs per event on
copies. Now one Java window aggregate keeps each window's events as columns and hands them over
packed when the window fires (flink_jobs/window_columns.py); the sketches are split over two
builders (``sql.WINDOW_PARTS``) that run side by side in their own workers. Values are counted
per group once (numpy) and every sketch of every group is built from the same columns. The
result is one packed blob per window, unpacked into records by the table function that built it.

Pure numpy/pandas + :mod:`app.sketches` (no Flink), so it is unit-tested in the main environment.

>>> import pandas as pd
>>> frame = pd.DataFrame({"event_time": [10_001, 10_002], "user_id": ["a", "b"], "session_id": ["s", "s"],
...     "item_id": ["i", "j"], "category": ["c", "c"], "country": ["US", "DE"], "device": ["mobile"] * 2,
...     "price": [1.0, 2.0], "raw_text": ["{}", "{}"]})
>>> recs = list(unpack(build(frame, ["all", "country"], [("hll", "user_id", "user_id")], 10_000, emitted_at=7)))
>>> sorted((r.dim, r.dim_value, r.kind, r.events) for r in recs)
[('all', '', 'count', 2), ('all', '', 'hll', 2), ('country', 'DE', 'count', 1), ('country', 'DE', 'hll', 1), ('country', 'US', 'count', 1), ('country', 'US', 'hll', 1)]
>>> recs[0].window_start, recs[0].emitted_at
(10000, 7)
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from app.sketches import new_sketch
from app.sketches.reservoir import ReservoirSample
from flink_jobs.window_columns import FrameColumns, PackedColumns

Columns = PackedColumns | FrameColumns

_HEAD = struct.Struct("<BqqI")  # format version, window start, emitted at, record count
_REC = struct.Struct("<qHHHHI")  # events, then the byte lengths of kind, field, dim, dim value, sketch
VERSION = 1


class WindowRecord(NamedTuple):
    kind: str
    field: str
    dim: str
    dim_value: str
    window_start: int
    events: int
    emitted_at: int
    sketch: bytes

    def key(self) -> str:
        """The aggregates.v1 record key (app.contracts.aggregates.AggregateRecord.key)."""
        return f"{self.kind}|{self.field}|{self.dim}|{self.dim_value}|{self.window_start}"


#: Kinds that take pre-counted values from a window's dictionary (``update_dictionary``):
#: HLL ignores repeats, frequent items and count-min take weights.
COUNTED_KINDS = frozenset({"hll", "frequent", "cms"})


class _Groups:
    """One dimension's groups of a window, by integer codes (numpy, no per-group pandas objects).

    Values keep their order of first appearance (as ``groupby(sort=False)`` did); rows keep their
    order within a group, so order-sensitive sketches (the reservoir) see the same sequence.
    """

    def __init__(self, columns: Columns, dim: str) -> None:
        if dim == "all":
            self.codes, self.values = np.zeros(columns.rows, dtype=np.int64), [""]
        else:
            self.codes, uniques = columns.factorized(dim)
            self.values = ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in uniques]
        self.sizes = np.bincount(self.codes, minlength=len(self.values))
        self._rows: list[np.ndarray] | None = None

    def rows(self) -> list[np.ndarray]:
        """Row positions of each group, in frame order."""
        if self._rows is None:
            order = np.argsort(self.codes, kind="stable")
            self._rows = np.split(order, np.cumsum(self.sizes)[:-1])
        return self._rows

    def value_counts(self, codes: np.ndarray, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per group: the distinct codes of a dictionary-encoded column and how often each occurs."""
        width = max(width, 1)
        keys = self.codes * width + codes
        if len(self.values) * width <= max(1 << 20, 8 * len(keys)):
            # small integers: a histogram over (group, code) is cheaper than sorting them
            histogram = np.bincount(keys, minlength=len(self.values) * width)
            pairs = np.flatnonzero(histogram)
            counts = histogram[pairs]
        else:  # many groups times many values: the histogram would dwarf the window
            pairs, counts = np.unique(keys, return_counts=True)
        bounds = np.searchsorted(pairs // width, np.arange(len(self.values) + 1))
        return [(pairs[lo:hi] % width, counts[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]


def build(
    source: Columns | pd.DataFrame,
    dims: Sequence[str],
    sketches: Sequence[tuple[str, str, str]],
    window_ms: int,
    params: dict | None = None,
    emitted_at: int | None = None,
    features: bool = False,
    counts: bool = True,
    library_updates: bool = False,
) -> bytes:
    """One window's events -> packed records: per dimension value, every sketch and (with
    ``counts``) the exact count; with ``features`` also a KLL per numeric feature (dimension
    ``all``). ``source``: a packed window (PackedColumns) or a frame of event fields.
    ``library_updates``: one library call per distinct value per group (the baseline
    ``benchmarks/window_build.py`` measures) instead of arrays over the window's hashes."""
    columns = FrameColumns(source) if isinstance(source, pd.DataFrame) else source
    params = params or {}
    first = columns.first_event_time
    window_start = first - first % window_ms
    dictionaries = {c: columns.dictionary(c) for kind, _, c in sketches if kind in COUNTED_KINDS}
    floats = {c: columns.floats(c) for kind, _, c in sketches if kind == "kll"}
    parts: list[bytes] = []
    for dim in dims:
        groups = _Groups(columns, dim)
        counted = {c: groups.value_counts(columns.codes(c), len(d)) for c, d in dictionaries.items()}
        for g, value in enumerate(groups.values):
            events = int(groups.sizes[g])
            for kind, field, column in sketches:
                sketch = new_sketch(kind, **params.get(kind, {}))
                if kind in COUNTED_KINDS:
                    dictionary, (codes, n) = dictionaries[column], counted[column][g]
                    if library_updates:
                        present = dictionary.present[codes]
                        sketch.update_counts(dictionary.values[codes[present]].tolist(), n[present].tolist())
                    else:  # each distinct string hashed once per window, not once per group and sketch
                        sketch.update_dictionary(dictionary, codes, n)
                elif kind == "kll":
                    sketch.update_many(floats[column][groups.rows()[g]])
                else:  # the reservoir: from the JVM's prioritized candidates, or every event
                    items, priorities = columns.sample_candidates(column, groups.rows()[g])
                    if priorities is None:
                        sketch.update_many(items)
                    else:
                        # a window packed for a smaller k holds a smaller sample, never a wrong one
                        k = min(sketch.k, columns.sample_k)
                        sketch = ReservoirSample.from_priorities(items, priorities, events, k=k)
                parts.append(_pack_record(kind, field, dim, value, events, sketch.to_bytes()))
            if counts:
                parts.append(_pack_record("count", "*", dim, value, events, b""))
    if features:
        for name, values in columns.features().items():
            kll = new_sketch("kll", **params.get("kll", {}))
            kll.update_many(np.asarray(values, dtype="float64"))
            parts.append(_pack_record("kll", f"features.{name}", "all", "", len(values), kll.to_bytes()))
    emitted = int(time.time() * 1000) if emitted_at is None else emitted_at
    return _HEAD.pack(VERSION, window_start, emitted, len(parts)) + b"".join(parts)


def _pack_record(kind: str, field: str, dim: str, value: str, events: int, sketch: bytes) -> bytes:
    texts = [t.encode() for t in (kind, field, dim, value)]
    return _REC.pack(events, *(len(t) for t in texts), len(sketch)) + b"".join(texts) + sketch


def unpack(blob: bytes) -> Iterator[WindowRecord]:
    version, window_start, emitted_at, count = _HEAD.unpack_from(blob, 0)
    if version != VERSION:
        raise ValueError(f"unknown window blob version {version}")
    pos = _HEAD.size
    for _ in range(count):
        events, *lengths = _REC.unpack_from(blob, pos)
        pos += _REC.size
        texts = []
        for n in lengths[:4]:
            texts.append(blob[pos : pos + n].decode())
            pos += n
        sketch = bytes(blob[pos : pos + lengths[4]])
        pos += lengths[4]
        yield WindowRecord(*texts, window_start, events, emitted_at, sketch)
