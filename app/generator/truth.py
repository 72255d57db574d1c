"""The exact ground truth of a run, fed the same messages that went to Kafka.

Files written by :meth:`Truth.save` (``truth.json`` given as the path):

* ``truth.json`` — the summary: message counts (valid = on time, late, malformed by reason),
  event types, exact distinct ``user_id``/``session_id``/``item_id``, counts by country, device and
  category, the top 100 items, price quantiles at 0.01..0.99 (inclusive definition) and, per
  tumbling window, on-time events, distinct users and late events. Everything except the late
  counts is over on-time events: late ones go to ``late.v1``, not into the windows.
* ``truth.events.parquet`` — every valid event (event_time, price, late flag and the string
  fields), so any other question (any ``[start, end)`` range, any filter) is answered exactly
  with :meth:`Truth.table` ``.select(...)`` after :meth:`Truth.load`.

>>> from app.generator.generator import EventGenerator
>>> g = EventGenerator(seed=3, rate=500, start_ms=1_700_000_000_000, n_users=300, n_items=100,
...                    malformed_rate=0.05, late_rate=0.05, late_by_ms=1_000)
>>> truth = Truth(window_seconds=10)
>>> for m in g.events(2_000):
...     truth.add(m)
>>> s = truth.summary()
>>> s["messages"] == 2_000 == s["valid"] + s["late"] + s["malformed"]
True
>>> s["malformed"] == g.counts["malformed"] and s["late"] == g.counts["late"]
True
>>> sum(w["events"] for w in s["windows"]) == s["valid"]
True
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from app.contracts.events import Event, Rejection, parse_event
from app.generator.event_table import CODED_FIELDS, EventTable

TRUTH_VERSION = 1
QUANTILES = tuple(round(k / 100, 2) for k in range(1, 100))
TOP_ITEMS = 100


def events_file_for(path: Path) -> Path:
    """``truth.json`` -> ``truth.events.parquet`` (next to it)."""
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f"{stem}.events.parquet")


class Truth:
    """Accumulates messages; cheap per message (appends to typed arrays), exact on demand."""

    def __init__(self, window_seconds: int = 10) -> None:
        self.window_seconds = window_seconds
        self.messages = 0
        self.malformed_reasons: Counter[str] = Counter()
        self._time = array("q")
        self._price = array("d")
        self._late = array("b")
        self._codes = {f: array("i") for f in CODED_FIELDS}
        self._index: dict[str, dict[str, int]] = {f: {} for f in CODED_FIELDS}
        self._coders = [(f, self._codes[f].append, self._index[f]) for f in CODED_FIELDS]
        self._table: EventTable | None = None  # cached until the next add

    # ------------------------------------------------------------------ feeding

    def add(self, msg: Any) -> None:
        """One generated message (anything with ``kind``, ``reason`` and ``fields``/``value``)."""
        self.messages += 1
        if msg.kind == "malformed":
            self.malformed_reasons[msg.reason or "unknown"] += 1
            return
        fields = msg.fields
        if fields is None:  # not from our generator: read it as the pipeline will
            self._count_parsed(parse_event(msg.value), late=msg.kind == "late")
        else:
            self._append(fields, msg.kind == "late")

    def add_raw(self, value: bytes | str, *, late: bool = False) -> None:
        """One raw message (e.g. replayed from a file); malformed ones are counted by reason."""
        self.messages += 1
        self._count_parsed(parse_event(value), late=late)

    def add_event(self, event: Event | Mapping[str, Any], *, late: bool = False) -> None:
        self.messages += 1
        self._append(event.to_dict() if isinstance(event, Event) else event, late)

    def _count_parsed(self, result: Event | Rejection, *, late: bool) -> None:
        if isinstance(result, Rejection):
            self.malformed_reasons[result.reason] += 1
        else:
            self._append(result.to_dict(), late)

    def _append(self, f: Mapping[str, Any], late: bool) -> None:
        self._table = None
        self._time.append(f["event_time"])
        self._price.append(f["price"])
        self._late.append(late)
        for name, append, index in self._coders:
            v = f[name]
            code = index.get(v)
            if code is None:
                code = index[v] = len(index)
            append(code)

    # ------------------------------------------------------------------ answers

    @property
    def malformed(self) -> int:
        return sum(self.malformed_reasons.values())

    @property
    def late(self) -> int:
        return int(np.count_nonzero(self.table().late))

    def table(self) -> EventTable:
        """Every valid event (on time and late) as columns; ``.select()`` it for exact answers."""
        if self._table is None:
            self._table = EventTable(
                event_time=np.frombuffer(self._time, dtype=np.int64).copy(),
                price=np.frombuffer(self._price, dtype=np.float64).copy(),
                late=np.frombuffer(self._late, dtype=np.int8).astype(bool),
                codes={f: np.frombuffer(c, dtype=np.int32).copy() for f, c in self._codes.items()},
                values={f: list(ix) for f, ix in self._index.items()},
            )
        return self._table

    def distinct_users(self, start_ms: int, end_ms: int, **filters: str) -> int:
        """Exact distinct users among on-time events in ``[start_ms, end_ms)``."""
        return self.table().select(start_ms, end_ms, **filters).distinct("user_id")

    def summary(self) -> dict[str, Any]:
        table = self.table()
        on_time = table.select(late=False)
        late = table.select(late=True)
        window_ms = self.window_seconds * 1000
        late_by_window = Counter((late.event_time // window_ms * window_ms).tolist())
        windows = on_time.windows(window_ms)
        for w in windows:
            w["late"] = late_by_window.pop(w["start"], 0)
        # Late events can land in a window that has no on-time events at all.
        windows += [{"start": s, "events": 0, "users": 0, "late": n} for s, n in late_by_window.items()]
        windows.sort(key=lambda w: w["start"])
        return {
            "version": TRUTH_VERSION,
            "window_seconds": self.window_seconds,
            "messages": self.messages,
            "valid": len(on_time),
            "late": len(late),
            "malformed": self.malformed,
            "malformed_reasons": dict(sorted(self.malformed_reasons.items())),
            "event_types": on_time.counts_by("event_type"),
            "time_range": {
                "min_event_time": int(on_time.event_time.min()) if len(on_time) else None,
                "max_event_time": int(on_time.event_time.max()) if len(on_time) else None,
            },
            "distinct": {f: on_time.distinct(f) for f in ("user_id", "session_id", "item_id")},
            "by": {f: dict(sorted(on_time.counts_by(f).items())) for f in ("country", "device", "category")},
            "top_items": [[item, n] for item, n in on_time.top("item_id", TOP_ITEMS)],
            "price_quantile_definition": "inclusive: the smallest price p with #(price <= p) >= q * n",
            "price_quantiles": {f"{q:.2f}": on_time.quantile(q) for q in QUANTILES} if len(on_time) else {},
            "windows": windows,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.summary(), option=orjson.OPT_INDENT_2)

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (summary JSON) and its ``.events.parquet`` side file; returns ``path``."""
        import pyarrow.parquet as pq

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        events_file = events_file_for(path)
        summary = self.summary() | {"events_file": events_file.name}
        pq.write_table(self.table().to_arrow(), events_file, compression="zstd")
        path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Truth:
        """Read what :meth:`save` wrote; the events side file restores exact range queries."""
        import pyarrow.parquet as pq

        path = Path(path)
        summary = orjson.loads(path.read_bytes())
        if summary.get("version") != TRUTH_VERSION:
            raise ValueError(f"unsupported truth version {summary.get('version')}")
        truth = cls(window_seconds=summary["window_seconds"])
        truth.messages = summary["messages"]
        truth.malformed_reasons = Counter(summary["malformed_reasons"])
        table = EventTable.from_arrow(pq.read_table(path.with_name(summary["events_file"])))
        truth._time.frombytes(table.event_time.tobytes())
        truth._price.frombytes(table.price.tobytes())
        truth._late.frombytes(table.late.astype(np.int8).tobytes())
        for f in CODED_FIELDS:
            truth._codes[f].frombytes(table.codes[f].astype(np.int32).tobytes())
            truth._index[f].update((v, i) for i, v in enumerate(table.values[f]))
        return truth
