"""The record Flink writes to ``aggregates.v1``: one sketch of one field over one window.

One JSON object per message; the Kafka key is :meth:`AggregateRecord.key`, so a window
re-emitted (allowed lateness, replay after a failure) overwrites the same key downstream
instead of adding to it: serving's Redis writes are idempotent by construction.

>>> r = AggregateRecord(kind="hll", field="user_id", window_start=0, window_end=10_000,
...                     events=3, sketch=b"TRB...")
>>> r.key()
'hll|user_id|all||0'
>>> AggregateRecord.from_json(r.to_json()) == r
True
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

SCHEMA_VERSION = 1
#: The dimensions sketches are broken down by; ``all`` is every event.
DIMENSIONS = ("all", "country", "device", "category")


@dataclass(frozen=True)
class AggregateRecord:
    kind: str  # hll | frequent | kll | cms | reservoir | count
    field: str  # the event field summarized (user_id, price, features.dwell, ...); "*" for count
    window_start: int  # ms since epoch, inclusive
    window_end: int  # ms since epoch, exclusive
    events: int  # exact number of events behind this sketch
    sketch: bytes  # app.sketches envelope (empty for kind == "count")
    dim: str = "all"
    dim_value: str = ""
    late_events: int = 0  # events that arrived after the window's allowed lateness (kept in late.v1)
    revision: int = 0  # 0 = on-time firing; >0 = re-emitted with late data
    emitted_at: int = 0  # ms, processing time of emission (for freshness measurement)
    params: dict[str, Any] = field(default_factory=dict)
    v: int = SCHEMA_VERSION

    def key(self) -> str:
        return f"{self.kind}|{self.field}|{self.dim}|{self.dim_value}|{self.window_start}"

    def to_json(self) -> bytes:
        d = asdict(self)
        d["sketch"] = base64.b64encode(self.sketch).decode("ascii")
        return orjson.dumps(d)

    @classmethod
    def from_json(cls, data: bytes | str) -> AggregateRecord:
        d = orjson.loads(data)
        if not isinstance(d, dict):
            raise ValueError("aggregate record must be a JSON object")
        version = d.get("v", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported aggregate record version {version}")
        sketch = d.get("sketch") or ""
        d["sketch"] = base64.b64decode(sketch) if isinstance(sketch, str) else bytes(sketch)
        known = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in known})
