"""The record on ``examples.v1``: one labelled impression, written by the Flink label join and
read by the online learner and the archiver. One JSON object per message, key = ``user_id``.

Fields: the impression's ``events.v1`` fields (``event_time`` normalised to integer ms), plus
``label`` (1 if a click or purchase answered the impression within the attribution window, else 0),
``example_time`` (ms: when the label became known, i.e. the click's time or the end of the
attribution window; it drives the learner's watermark), and optional ``context`` (stream
features at impression time, e.g. ``{"user_recent": 3, "item_recent": 12}``).

>>> ex = Example(event_id="e1", event_time=1_795_700_000_000, user_id="u1", session_id="s1",
...              item_id="i1", category="books", country="US", device="mobile", price=12.5,
...              label=1, example_time=1_795_700_004_000, features={"dwell": 1.5},
...              context={"user_recent": 3})
>>> ex.to_json()[:60]
b'{"event_id":"e1","event_time":1795700000000,"user_id":"u1","'
>>> Example.from_json(ex.to_json()) == ex
True
>>> ex.key()
b'u1'
>>> Example.from_json(b'{"event_id": "e2", "label": 2}')
Traceback (most recent call last):
...
ValueError: invalid example: user_id: missing
>>> d = orjson.loads(ex.to_json()); d["label"] = 2
>>> Example.from_json(orjson.dumps(d))
Traceback (most recent call last):
...
ValueError: invalid example: label: must be 0 or 1
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

__all__ = ["Example", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
_STR_FIELDS = ("event_id", "user_id", "session_id", "item_id", "category", "country", "device")
_DEVICES = frozenset({"mobile", "desktop", "tablet"})


def _finite_map(d: Any, name: str) -> dict[str, float]:
    if d is None:
        return {}
    if not isinstance(d, dict) or len(d) > 64:
        raise ValueError(f"{name}: must be an object of at most 64 entries")
    for k, v in d.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{name}.{k}: must be a finite number")
    return d


@dataclass(frozen=True)
class Example:
    event_id: str
    event_time: int  # ms since the epoch (UTC), the impression's time
    user_id: str
    session_id: str
    item_id: str
    category: str
    country: str
    device: str  # mobile | desktop | tablet
    price: float
    label: int  # 0 | 1
    example_time: int  # ms since the epoch: when the label became known
    features: dict[str, float] = field(default_factory=dict)
    context: dict[str, float] = field(default_factory=dict)
    v: int = SCHEMA_VERSION

    def key(self) -> bytes:
        return self.user_id.encode()

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_dict(cls, d: Any) -> Example:
        """Validate a decoded JSON object; ``ValueError("invalid example: <field>: <why>")``."""
        try:
            if not isinstance(d, dict):
                raise ValueError("record: must be a JSON object")
            if d.get("v", SCHEMA_VERSION) != SCHEMA_VERSION:
                raise ValueError(f"v: unsupported schema version {d.get('v')!r}")
            for name in (*_STR_FIELDS, "event_time", "price", "label", "example_time"):
                if name not in d:
                    raise ValueError(f"{name}: missing")
            for name in _STR_FIELDS:
                if not isinstance(d[name], str) or not 1 <= len(d[name]) <= 128:
                    raise ValueError(f"{name}: must be a string of 1-128 characters")
            if d["device"] not in _DEVICES:
                raise ValueError("device: must be mobile, desktop or tablet")
            for name in ("event_time", "example_time"):
                if isinstance(d[name], bool) or not isinstance(d[name], int):
                    raise ValueError(f"{name}: must be integer ms since the epoch")
            price = d["price"]
            if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price) or price < 0:
                raise ValueError("price: must be a finite number >= 0")
            if d["label"] not in (0, 1) or isinstance(d["label"], float):
                raise ValueError("label: must be 0 or 1")
            feats = _finite_map(d.get("features"), "features")
            ctx = _finite_map(d.get("context"), "context")
        except ValueError as exc:
            raise ValueError(f"invalid example: {exc}") from None
        return cls(
            **{n: d[n] for n in _STR_FIELDS},
            event_time=d["event_time"],
            price=float(price),
            label=int(d["label"]),
            example_time=d["example_time"],
            features=dict(feats),
            context=dict(ctx),
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Example:
        try:
            d = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"invalid example: not JSON: {exc}") from None
        return cls.from_dict(d)
