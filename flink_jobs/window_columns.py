"""One window's events as columns: what the sketch builders (flink_jobs/window_records.py) read.

Two sources give the same columns:

- :class:`PackedColumns`, the bytes the Java aggregate ``PackWindow`` emits when a window fires
  (its ``WindowColumns`` class documents the format): strings dictionary-encoded per window,
  prices, feature values by name, and the reservoir's candidates (the raw events with the
  smallest priorities of each group, ``SampleCandidates``), read with numpy and pyarrow without
  a per-event Python loop. A window comes in two sections (the identity strings; the values and
  sample candidates), so each sketch builder receives only what it reads.
- :class:`FrameColumns`, a pandas frame of the same fields (tests, and the DataStream design).

:func:`pack` writes the packed form from Python; a Java test checks that ``PackWindow`` writes
the same bytes for the same events (tests/vectors/window_columns.json).

>>> frame = pd.DataFrame({"event_time": [10_001, 10_002], "user_id": ["a", "b"], "session_id": ["s", None],
...     "item_id": ["i", "i"], "category": ["c", "c"], "country": ["US", "DE"], "device": ["m", "m"],
...     "price": [1.5, None], "features": [{"dwell": 2.0}, None], "raw": [b'{"a":1}', b'{"b":2}']})
>>> cols = PackedColumns(pack(frame, sample_k=1))
>>> cols.rows, cols.first_event_time
(2, 10001)
>>> PackedColumns(pack(frame, IDENTITY)).factorized("user_id")[1].tolist()
['a', 'b']
>>> codes, uniques = cols.factorized("session_id"); codes.tolist(), uniques.tolist()
([0, 1], ['s', None])
>>> cols.floats("price").tolist(), cols.features()
([1.5, nan], {'dwell': [2.0]})
>>> texts, priorities = cols.sample_candidates("raw_text", np.array([0, 1]))
>>> list(texts), priorities.tolist() == [priority(b'{"a":1}'), priority(b'{"b":2}')]
(['{"a":1}', '{"b":2}'], True)

With ``sample_k=1`` both stay candidates: each is alone in its country.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from app.sketches.defaults import RESERVOIR_K
from app.sketches.dictionary import StringDictionary

VERSION = 2
#: Sections of the packed form (WindowColumns.IDENTITY / VALUES).
IDENTITY, VALUES = 1, 2
ALL = IDENTITY | VALUES
#: The string fields, in packed order (WindowColumns.STRING_COLUMNS), and the section of each
#: (0: always packed: the dimensions).
STRING_COLUMNS = ("user_id", "session_id", "item_id", "category", "country", "device")
STRING_SECTION = (IDENTITY, IDENTITY, IDENTITY, 0, 0, 0)
#: The column name the sketch list uses for the raw event (sql.SKETCHES' reservoir).
RAW = "raw_text"
_HEAD = struct.Struct("<BBiq")
#: The dimension columns whose values are groups of the sample candidates (SampleCandidates.GROUP_COLUMNS).
SAMPLE_GROUP_COLUMNS = ("category", "country", "device")
_M64 = (1 << 64) - 1


def priority(event: bytes) -> int:
    """An event's sampling priority: SampleCandidates.priority (Java), the same 63-bit hash.

    >>> priority(b"") == priority(b""), priority(b"a") != priority(b"b"), 0 <= priority(b"x" * 9) < 1 << 63
    (True, True, True)
    """

    def mix(h: int, word: int) -> int:
        h ^= (word * 0xC2B2AE3D27D4EB4F) & _M64
        h = ((h << 29) | (h >> 35)) & _M64
        return (h * 0x9E3779B97F4A7C15) & _M64

    h = 0x9E3779B97F4A7C15 ^ len(event)
    full = len(event) - len(event) % 8
    for i in range(0, full, 8):
        h = mix(h, int.from_bytes(event[i : i + 8], "little"))
    h = mix(h, int.from_bytes(event[full:], "little"))
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & _M64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & _M64
    h ^= h >> 31
    return h >> 1


class TextView(Sequence):
    """Some rows of a window's raw events, each decoded only when it is read (the reservoir keeps
    a few hundred of a window's thousands)."""

    def __init__(self, data: memoryview, offsets: np.ndarray, rows: np.ndarray) -> None:
        self._data, self._starts, self._ends = data, offsets[rows].tolist(), offsets[rows + 1].tolist()

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return str(self._data[self._starts[i] : self._ends[i]], "utf-8", "replace")


class PackedColumns:
    """Read-only view of a packed window: one blob, or several blobs (sections) of the same window."""

    def __init__(self, *blobs: bytes) -> None:
        self._strings: dict[str, tuple] = {}
        self._features: dict[str, np.ndarray] | None = None
        for blob in blobs:
            self._read(memoryview(blob))

    def _read(self, buf: memoryview) -> None:
        version, sections, self.rows, self.first_event_time = _HEAD.unpack_from(buf, 0)
        if version != VERSION:
            raise ValueError(f"unknown packed window version {version}")
        pos, n = _HEAD.size, self.rows
        for name, section in zip(STRING_COLUMNS, STRING_SECTION, strict=True):
            if section and not sections & section:
                continue
            distinct, null_code = struct.unpack_from("<ii", buf, pos)
            offsets = np.frombuffer(buf, "<i4", distinct + 1, pos + 8)
            pos += 8 + 4 * (distinct + 1)
            data = buf[pos : pos + int(offsets[-1])]
            pos += int(offsets[-1])
            codes = np.frombuffer(buf, "<i4", n, pos)
            pos += 4 * n
            self._strings[name] = (distinct, null_code, offsets, data, codes)
        if not sections & VALUES:
            return
        self._prices = np.frombuffer(buf, "<f8", n, pos)
        pos += 8 * n
        (n_features,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        self._features = {}
        for _ in range(n_features):
            (length,) = struct.unpack_from("<i", buf, pos)
            name = str(buf[pos + 4 : pos + 4 + length], "utf-8")
            (count,) = struct.unpack_from("<i", buf, pos + 4 + length)
            pos += 8 + length
            self._features[name] = np.frombuffer(buf, "<f8", count, pos)
            pos += 8 * count
        self.sample_k, count = struct.unpack_from("<ii", buf, pos)
        pos += 8
        self._candidate_rows = np.frombuffer(buf, "<i4", count, pos)
        self._priorities = np.frombuffer(buf, "<i8", count, pos + 4 * count)
        pos += 12 * count
        self._raw_offsets = np.frombuffer(buf, "<i4", count + 1, pos)
        pos += 4 * (count + 1)
        self._raw = buf[pos : pos + int(self._raw_offsets[-1])]

    def factorized(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """Each row's code and the distinct values (in order of first appearance; None for null)."""
        distinct, null_code, offsets, data, codes = self._strings[column]
        values = pa.StringArray.from_buffers(distinct, pa.py_buffer(offsets), pa.py_buffer(data))
        uniques = values.to_numpy(zero_copy_only=False).astype(object, copy=False)
        if null_code >= 0:
            uniques[null_code] = None
        return codes.astype(np.int64), uniques

    def codes(self, column: str) -> np.ndarray:
        """Each row's code into :meth:`dictionary`."""
        return self._strings[column][4].astype(np.int64)

    def dictionary(self, column: str) -> StringDictionary:
        """The column's distinct strings, straight from the packed UTF-8 (hashed once per window)."""
        distinct, null_code, offsets, data, _ = self._strings[column]
        return StringDictionary(data, offsets, null_code, self.factorized(column)[1])

    def floats(self, column: str) -> np.ndarray:
        if column != "price" or self._features is None:
            raise KeyError(column)
        return self._prices

    def sample_candidates(self, column: str, rows: np.ndarray) -> tuple[Sequence[str], np.ndarray | None]:
        """The sample candidates among ``rows`` (ascending row positions of one group): their raw
        events and priorities, in row order. They include the group's ``sample_k`` smallest
        priorities (all its events when it has no more), which is all a bottom-k sample reads."""
        if column != RAW or self._features is None:
            raise KeyError(column)
        candidates = self._candidate_rows
        at = np.minimum(np.searchsorted(rows, candidates), max(len(rows) - 1, 0))
        mine = np.flatnonzero(rows[at] == candidates) if len(rows) else np.zeros(0, dtype=np.int64)
        return TextView(self._raw, self._raw_offsets, mine), self._priorities[mine]

    def features(self) -> dict[str, list[float]]:
        if self._features is None:
            raise KeyError("features")
        return {name: values.tolist() for name, values in self._features.items()}


class FrameColumns:
    """The same view over a pandas frame of event fields (``raw_text``: the raw event JSON)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.rows = frame, len(frame)
        self.first_event_time = int(frame["event_time"].iloc[0])

    def factorized(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(self.frame[column], use_na_sentinel=False)
        return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)

    def codes(self, column: str) -> np.ndarray:
        return self.factorized(column)[0]

    def dictionary(self, column: str) -> StringDictionary:
        return StringDictionary.from_values(self.factorized(column)[1])

    def floats(self, column: str) -> np.ndarray:
        return self.frame[column].to_numpy(dtype="float64", na_value=np.nan)

    def sample_candidates(self, column: str, rows: np.ndarray) -> tuple[Sequence[str], None]:
        """Every event of ``rows``, unprioritized: the reservoir samples them itself (Algorithm R)."""
        return self.frame[column].to_numpy()[rows].tolist(), None

    def features(self) -> dict[str, list[float]]:
        """Every numeric ``features`` entry of the (already validated) raw events, by name."""
        values: dict[str, list[float]] = {}
        for text in self.frame[RAW]:
            for name, value in (orjson.loads(text).get("features") or {}).items():
                values.setdefault(name, []).append(value)
        return values


def pack(frame: pd.DataFrame, sections: int = ALL, sample_k: int = RESERVOIR_K) -> bytes:
    """The packed form of a frame with ``event_time``, STRING_COLUMNS, ``price``, ``features``
    (dict or None) and ``raw`` (bytes) columns: what PackWindow emits for the same events, its
    reservoir's k being ``sample_k``."""
    n = len(frame)
    out = [_HEAD.pack(VERSION, sections, n, int(frame["event_time"].iloc[0]) if n else 0)]
    for name, section in zip(STRING_COLUMNS, STRING_SECTION, strict=True):
        if section and not sections & section:
            continue
        codes, uniques = pd.factorize(frame[name], use_na_sentinel=False)
        values = [None if _missing(v) else str(v).encode() for v in uniques]
        null_code = next((i for i, v in enumerate(values) if v is None), -1)
        ends = np.cumsum([0, *(len(v or b"") for v in values)]).astype("<i4")
        out += [struct.pack("<ii", len(values), null_code), ends.tobytes(), b"".join(v or b"" for v in values)]
        out.append(codes.astype("<i4").tobytes())
    if not sections & VALUES:
        return b"".join(out)
    out.append(frame["price"].to_numpy(dtype="<f8", na_value=np.nan).tobytes())
    features: dict[str, list[float]] = {}
    for entry in frame["features"]:
        for name, value in (entry if isinstance(entry, dict) else {}).items():
            if value is not None:
                features.setdefault(name, []).append(float(value))
    out.append(struct.pack("<i", len(features)))
    for name, values in features.items():
        encoded = name.encode()
        out += [struct.pack("<i", len(encoded)), encoded, struct.pack("<i", len(values))]
        out.append(np.asarray(values, dtype="<f8").tobytes())
    if n == 0:
        return b"".join([*out, struct.pack("<iii", 0, 0, 0)])
    raws = [bytes(r or b"") for r in frame["raw"]]
    priorities = np.array([priority(r) for r in raws], dtype="<i8")
    rows = sample_candidate_rows(frame, priorities, sample_k)
    out += [struct.pack("<ii", sample_k, len(rows)), rows.astype("<i4").tobytes(), priorities[rows].tobytes()]
    out += [np.cumsum([0, *(len(raws[r]) for r in rows)]).astype("<i4").tobytes(), *(raws[r] for r in rows)]
    return b"".join(out)


def sample_candidate_rows(frame: pd.DataFrame, priorities: Sequence[int], k: int) -> np.ndarray:
    """The rows SampleCandidates keeps: the union of the ``k`` smallest priorities of the whole
    window and of each value of each SAMPLE_GROUP_COLUMNS column (ties: the earlier row), ascending."""
    prio = np.asarray(priorities, dtype=np.int64)
    keep = np.zeros(len(frame), dtype=bool)
    groupings = [np.zeros(len(frame), dtype=np.int64)]
    groupings += [pd.factorize(frame[c], use_na_sentinel=False)[0] for c in SAMPLE_GROUP_COLUMNS]
    for codes in groupings:
        order = np.lexsort((prio, codes))  # by group, then priority, then row (lexsort is stable)
        sorted_codes = codes[order]
        rank = np.arange(len(order)) - np.searchsorted(sorted_codes, sorted_codes)
        keep[order[rank < k]] = True
    return np.flatnonzero(keep)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)
