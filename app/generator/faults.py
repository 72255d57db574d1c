"""Injected faults: malformed messages (each with the exact reason the contract must give) and late events.

Every corruption is built so that :func:`app.contracts.events.parse_event` rejects it with a
known reason, which the message carries; the dead-letter count of a run can then be checked
exactly, reason by reason.

>>> import random
>>> from app.contracts.events import parse_event
>>> ev = {"event_id": "e1", "event_type": "impression", "event_time": 5_000, "user_id": "u",
...       "session_id": "s", "item_id": "i", "category": "c", "country": "US",
...       "device": "mobile", "price": 1.5, "features": {"position": 1.0}}
>>> rng = random.Random(0)
>>> all(parse_event(v).reason == r for v, r in (corrupt(ev, k, rng) for k in MALFORMED_KINDS))
True
>>> late_event_time(100_000, late_by_ms=10_000, rng=rng) < 100_000 - 10_000
True
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from app.contracts.events import REQUIRED_FIELDS

MALFORMED_KINDS = (
    "truncated",  # a producer died mid-write
    "invalid_utf8",  # a legacy client's Latin-1 bytes
    "nan_literal",  # a JavaScript serializer's NaN
    "not_object",  # a batch sent as one array
    "missing_field",
    "null_field",
    "wrong_type",
    "out_of_range",
    "bad_features",
)

_STRING_FIELDS = ("event_id", "user_id", "session_id", "item_id", "category")
# field -> values of the wrong JSON type for it
_WRONG_TYPES: dict[str, tuple[Any, ...]] = {
    **{f: (12345, True, ["x"]) for f in _STRING_FIELDS},
    "event_type": (1, ["impression"]),
    "event_time": (True, 1.5, {"ms": 1}),
    "country": (1, False),
    "device": (0, {"name": "mobile"}),
    "price": ("12.50", False, [1]),
}
# field -> values of the right type but outside the allowed range
_OUT_OF_RANGE: dict[str, tuple[Any, ...]] = {
    "event_id": ("", "x" * 65),
    "event_type": ("view", "Click"),
    "event_time": (-1, "yesterday", "2026-13-01T00:00:00Z", "2026-11-26T13:51:04"),
    "user_id": ("", "u" * 129),
    "session_id": ("",),
    "item_id": ("",),
    "category": ("",),
    "country": ("us", "USA", "U1"),
    "device": ("tv", "Mobile"),
    "price": (-1.0, -0.01),
}


def corrupt(event: dict[str, Any], kind: str, rng: random.Random) -> tuple[bytes, str]:
    """The raw bytes of a malformed version of ``event`` (a valid event's dict) and its reason."""
    if kind == "truncated":
        raw = orjson.dumps(event)
        # Any proper prefix of an object lacks at least its closing brace: never valid JSON.
        return raw[: rng.randint(1, len(raw) - 1)], "invalid_json"
    if kind == "invalid_utf8":
        raw = orjson.dumps(event)
        cut = rng.randint(1, len(raw) - 1)
        return raw[:cut] + b"\xff" + raw[cut:], "invalid_json"
    if kind == "nan_literal":
        raw = orjson.dumps({**event, "price": "\x00nan\x00"})
        return raw.replace(b'"\\u0000nan\\u0000"', b"NaN"), "invalid_json"
    if kind == "not_object":
        return orjson.dumps([event]), "not_object"
    d = dict(event)
    if kind in ("missing_field", "null_field"):
        f = rng.choice(REQUIRED_FIELDS)
        if kind == "missing_field":
            del d[f]
        else:
            d[f] = None
        return orjson.dumps(d), f"missing_field:{f}"
    if kind == "wrong_type":
        f = rng.choice(REQUIRED_FIELDS)
        d[f] = rng.choice(_WRONG_TYPES[f])
        return orjson.dumps(d), f"wrong_type:{f}"
    if kind == "out_of_range":
        f = rng.choice(tuple(_OUT_OF_RANGE))
        d[f] = rng.choice(_OUT_OF_RANGE[f])
        return orjson.dumps(d), f"out_of_range:{f}"
    if kind == "bad_features":
        if rng.random() < 0.5:
            d["features"] = {"dwell": "long"}
            return orjson.dumps(d), "wrong_type:features"
        d["features"] = {f"f{k}": float(k) for k in range(65)}
        return orjson.dumps(d), "out_of_range:features"
    raise ValueError(f"unknown malformed kind {kind!r}; known: {', '.join(MALFORMED_KINDS)}")


def late_event_time(now_ms: int, late_by_ms: int, rng: random.Random) -> int:
    """An event time strictly more than ``late_by_ms`` before ``now_ms`` (by up to twice as much)."""
    return now_ms - late_by_ms - rng.randint(1, max(1, late_by_ms))
