"""Exact answers over a set of events, kept as compact columns (the ground truth behind every sketch).

String fields are stored as int32 codes into a per-field dictionary, so a million events take
about 33 MB. Any range and any filter can be asked afterwards, exactly, which is what checking
sketches (distinct counts, heavy hitters, quantiles, point counts) against truth needs.

>>> t = EventTable.from_rows([
...     {"event_time": 1_000, "user_id": "a", "item_id": "x", "price": 1.0},
...     {"event_time": 2_000, "user_id": "b", "item_id": "x", "price": 3.0},
...     {"event_time": 12_000, "user_id": "a", "item_id": "y", "price": 2.0},
... ])
>>> t.count(), t.distinct("user_id"), t.top("item_id", 1)
(3, 2, [('x', 2)])
>>> t.select(0, 10_000).distinct("user_id"), t.select(10_000, 20_000).count()
(2, 1)
>>> t.quantile(0.5), t.rank(2.0)
(2.0, 0.6666666666666666)
>>> [(w["start"], w["events"], w["users"]) for w in t.windows(10_000)]
[(0, 2, 2), (10000, 1, 1)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The string fields kept per event, as codes.
CODED_FIELDS = ("event_type", "user_id", "session_id", "item_id", "category", "country", "device")


@dataclass
class EventTable:
    """Parallel columns of events: ``event_time`` (ms), ``price``, ``late`` and coded strings."""

    event_time: np.ndarray  # int64
    price: np.ndarray  # float64
    late: np.ndarray  # bool: sent later than the allowed lateness (kept apart by the pipeline)
    codes: dict[str, np.ndarray]  # field -> int32 codes
    values: dict[str, list[str]]  # field -> code -> string
    # value -> code per field, built on first use and shared by every selection of this table
    lookups: dict[str, dict[str, int]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], late: Iterable[bool] | None = None) -> EventTable:
        """Build from dicts (missing string fields become ``""``); for tests and small inputs."""
        rows = list(rows)
        late_flags = list(late) if late is not None else [False] * len(rows)
        codes: dict[str, list[int]] = {f: [] for f in CODED_FIELDS}
        index: dict[str, dict[str, int]] = {f: {} for f in CODED_FIELDS}
        for r in rows:
            for f in CODED_FIELDS:
                v = r.get(f, "")
                codes[f].append(index[f].setdefault(v, len(index[f])))
        return cls(
            event_time=np.array([r["event_time"] for r in rows], dtype=np.int64),
            price=np.array([float(r.get("price", 0.0)) for r in rows], dtype=np.float64),
            late=np.array(late_flags, dtype=bool),
            codes={f: np.array(c, dtype=np.int32) for f, c in codes.items()},
            values={f: list(ix) for f, ix in index.items()},
        )

    def __len__(self) -> int:
        return len(self.event_time)

    # ------------------------------------------------------------------ selecting

    def _take(self, mask: np.ndarray) -> EventTable:
        return EventTable(
            event_time=self.event_time[mask],
            price=self.price[mask],
            late=self.late[mask],
            codes={f: c[mask] for f, c in self.codes.items()},
            values=self.values,
            lookups=self.lookups,
        )

    def select(
        self, start_ms: int | None = None, end_ms: int | None = None, *, late: bool | None = False, **filters: str
    ) -> EventTable:
        """Events with ``start_ms <= event_time < end_ms`` and ``field == value`` for each filter.

        ``late=False`` (default) keeps the on-time events, the ones windows count; ``True`` only
        the late ones; ``None`` both.
        """
        mask = np.ones(len(self), dtype=bool)
        if start_ms is not None:
            mask &= self.event_time >= start_ms
        if end_ms is not None:
            mask &= self.event_time < end_ms
        if late is not None:
            mask &= self.late == late
        for name, value in filters.items():
            code = self._code(name, value)
            if code is None:
                mask[:] = False
            else:
                mask &= self.codes[name] == code
        return self._take(mask)

    def _code(self, name: str, value: str) -> int | None:
        if name not in self.codes:
            raise KeyError(f"unknown field {name!r}; known: {', '.join(CODED_FIELDS)}")
        if name not in self.lookups:
            self.lookups[name] = {v: i for i, v in enumerate(self.values[name])}
        return self.lookups[name].get(value)

    # ------------------------------------------------------------------ exact answers

    def count(self) -> int:
        return len(self)

    def distinct(self, name: str) -> int:
        return int(np.unique(self.codes[name]).size)

    def frequency(self, name: str, value: str) -> int:
        code = self._code(name, value)
        return 0 if code is None else int(np.count_nonzero(self.codes[name] == code))

    def counts_by(self, name: str) -> dict[str, int]:
        counts = np.bincount(self.codes[name], minlength=len(self.values[name]))
        names = self.values[name]
        return {names[i]: int(counts[i]) for i in np.flatnonzero(counts)}

    def top(self, name: str, k: int) -> list[tuple[str, int]]:
        """The ``k`` most frequent values with exact counts; ties by value, for a stable answer."""
        counts = self.counts_by(name)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def _sorted(self, name: str) -> np.ndarray:
        if name != "price":
            raise KeyError("quantiles are kept for price only")
        return np.sort(self.price)

    def quantile(self, q: float, name: str = "price") -> float:
        """Inclusive quantile: the smallest value whose rank ``#(x <= v)`` is at least ``q * n``."""
        values = self._sorted(name)
        if not values.size:
            return math.nan
        i = min(max(math.ceil(q * values.size) - 1, 0), values.size - 1)
        return float(values[i])

    def rank(self, value: float, name: str = "price") -> float:
        """Normalized inclusive rank: the share of values ``<= value``."""
        values = self._sorted(name)
        return float(np.searchsorted(values, value, side="right") / values.size) if values.size else math.nan

    def windows(self, window_ms: int) -> list[dict[str, int]]:
        """Per tumbling window (aligned to the epoch, as Flink's): events and distinct users."""
        if not len(self):
            return []
        win = self.event_time // window_ms
        starts, counts = np.unique(win, return_counts=True)
        # One int64 per (window, user) pair; the distinct pairs, counted per window, are distinct users.
        n_users = max(len(self.values["user_id"]), 1)
        pairs = np.unique((win - win.min()) * n_users + self.codes["user_id"])
        users = np.bincount(pairs // n_users, minlength=int(win.max() - win.min()) + 1)
        return [
            {"start": int(s) * window_ms, "events": int(c), "users": int(users[s - win.min()])}
            for s, c in zip(starts.tolist(), counts.tolist())
        ]

    # ------------------------------------------------------------------ interchange

    def to_arrow(self):
        """A pyarrow Table with string columns (Parquet stores them dictionary-encoded)."""
        import pyarrow as pa

        cols = {"event_time": pa.array(self.event_time), "price": pa.array(self.price), "late": pa.array(self.late)}
        for f in CODED_FIELDS:
            dictionary = pa.array(self.values[f], type=pa.string())
            cols[f] = pa.DictionaryArray.from_arrays(pa.array(self.codes[f]), dictionary).cast(pa.string())
        return pa.table(cols)

    @classmethod
    def from_arrow(cls, table) -> EventTable:
        import pyarrow as pa

        codes, values = {}, {}
        for f in CODED_FIELDS:
            encoded = table.column(f).combine_chunks().dictionary_encode()
            codes[f] = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int32)
            values[f] = encoded.dictionary.to_pylist()
        return cls(
            event_time=np.asarray(table.column("event_time").to_numpy(), dtype=np.int64),
            price=np.asarray(table.column("price").to_numpy(), dtype=np.float64),
            late=np.asarray(table.column("late").cast(pa.bool_()).to_numpy(zero_copy_only=False), dtype=bool),
            codes=codes,
            values=values,
        )
