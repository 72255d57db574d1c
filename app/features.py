"""The one feature function of Tributary: the online learner, the batch trainer and serving
all call :func:`features`, so what a model is trained on is exactly what it is served with.

An *example* is an impression-like mapping (the fields of ``events.v1``: ``user_id``,
``item_id``, ``category``, ``country``, ``device``, ``price``, ``event_time``, ``features``)
plus optional *stream context*: the user's and the item's recent activity counts, given as
``context={"user_recent": n, "item_recent": m}`` (or inside the example under ``"context"``).

The result is a sparse ``dict[str, float]``. Two kinds of keys, told apart by ``=``:

* **indicators** (``"device=mobile"``, ``"country=US"``, ``"item=1234"``): value 1.0, present or
  absent. High-cardinality fields (user, item, category) are hashed into a fixed number of
  buckets with a stable hash (CRC-32 of ``"field:value"``; Python's ``hash`` is salted per
  process, so never that); small vocabularies (device, country) are one-hot.
* **crosses**, indicators too: ``"user_category=<bucket>"`` (a user's taste for a category: the
  hidden segment shows through it) and ``"device_category=<bucket>"``, hashed like the ids;
* **numerics** (``"log_price"``, ``"hour_sin"``, ``"hour_cos"``, ``"user_recent"``,
  ``"item_recent"``, ``"f:<name>"`` for each entry of the event's ``features`` object). Two
  entries of ``features`` that every impression of a results list has are taken as logs
  instead, since their effect is logarithmic: ``"log_position"`` (rank in the list, 1 = top)
  with its per-device slope ``"log_position@<device>"`` (a small screen punishes low ranks
  more), and ``"log_dwell"``; out of the log's range they stay ``"f:position"``/``"f:dwell"``. Numeric keys never contain ``=``, so a scaler can leave indicators alone
  (:class:`app.learners.scaling.NumericStandardScaler`).

Every key depends only on what is known **at impression time** (never on ``label`` or
``example_time``). The hour keys are bounded and already on their final scale
(:data:`PRESCALED`): a scaler must pass them through. Standardized with running statistics they
would leak the label in example order: over a short span they barely move, so scaling blows up
their few-second differences, and a click's example arrives seconds after its impression while a
non-click's arrives a whole attribution window later (``docs/online-learning.md``).

>>> x = features({"user_id": "u1", "item_id": "i1", "category": "books", "country": "US",
...               "device": "mobile", "price": 12.5, "event_time": 1795700000000,
...               "features": {"dwell": 1.5}}, context={"user_recent": 3, "item_recent": 0})
>>> sorted(k for k in x if "=" in k)
['category=50', 'country=US', 'device=mobile', 'device_category=221', 'item=16110', 'user=8824', 'user_category=1525']
>>> {k: round(v, 4) for k, v in sorted(x.items()) if "=" not in k}  # 13:33 UTC
{'hour_cos': -0.9182, 'hour_sin': -0.3961, 'item_recent': 0.0, 'log_dwell': 0.4055, 'log_price': 2.6027, 'user_recent': 1.3863}

Deterministic across processes and machines (no salted hash, no randomness):

>>> features({"item_id": "i1"})
{'item=16110': 1.0}
>>> hash_bucket("item", "i1")
16110

Missing or malformed fields degrade to neutral values instead of raising (serving must answer):

>>> features({"device": "fridge", "country": "usa", "price": -3, "event_time": "soon"})
{'device=other': 1.0, 'country=??': 1.0, 'log_price': 0.0}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from math import cos, isfinite, log, log1p, sin
from typing import Any
from zlib import crc32

#: Bump when the meaning of any key changes; artifacts record the version they were trained with.
#: 2: crosses user x category and device x category, log position (and per device), log dwell.
FEATURE_SPEC_VERSION = 2

#: Number of hash buckets per hashed categorical field (and cross).
HASH_BUCKETS: dict[str, int] = {
    "user": 1 << 14, "item": 1 << 14, "category": 1 << 8, "user_category": 1 << 16, "device_category": 1 << 10,
}  # fmt: skip
#: Numeric keys already on their final, bounded scale: scalers pass them through (see above).
PRESCALED = frozenset({"hour_sin", "hour_cos"})
DEVICES = ("mobile", "desktop", "tablet")
MAX_EVENT_FEATURES = 64

_USER_B, _ITEM_B, _CAT_B = HASH_BUCKETS["user"], HASH_BUCKETS["item"], HASH_BUCKETS["category"]
_UC_B, _DC_B = HASH_BUCKETS["user_category"], HASH_BUCKETS["device_category"]
_LOG_POSITION_KEYS = {d: f"log_position@{d}" for d in DEVICES}
_TWO_PI_PER_MS = 2.0 * math.pi / 86_400_000.0
_DEVICE_KEYS = {d: f"device={d}" for d in DEVICES}
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_COUNTRY_KEYS: dict[str, str] = {}  # caches of key strings (hot path)
_FEATURE_KEYS: dict[str, str] = {}


def hash_bucket(field: str, value: str) -> int:
    """Stable bucket of ``value`` for a hashed field (CRC-32 of ``"field:value"``).

    >>> hash_bucket("category", "books")
    50
    >>> 0 <= hash_bucket("user", "anyone") < HASH_BUCKETS["user"]
    True
    """
    return crc32(f"{field}:{value}".encode()) % HASH_BUCKETS[field]


def event_time_ms(value: Any) -> int | None:
    """Event time as integer ms since the epoch, from int ms or an RFC 3339 string.

    >>> event_time_ms(1795700000000)
    1795700000000
    >>> event_time_ms("2026-11-26T13:51:04.123Z")
    1795701064123
    >>> event_time_ms("not a time") is None
    True
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value).timestamp() * 1000 + 0.5)
        except ValueError:
            return None
    return None


def _country_key(country: Any) -> str:
    if isinstance(country, str) and len(country) == 2 and country[0] in _UPPER and country[1] in _UPPER:
        _COUNTRY_KEYS[country] = key = f"country={country}"  # at most 26 * 26 entries
        return key
    return "country=??"


def _feature_key(name: str) -> str:
    key = "f:" + name.replace("=", "_")
    if len(_FEATURE_KEYS) < 10_000:  # bounded: names come from the stream
        _FEATURE_KEYS[name] = key
    return key


def _number(v: Any) -> float | None:
    if v.__class__ is float:
        return v if math.isfinite(v) else None
    if v.__class__ is int:
        return float(v)
    return None


def features(example: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Feature dict of one example; see the module docstring for the keys."""
    get = example.get
    x: dict[str, float] = {}
    user = get("user_id")
    if user is not None:
        x[f"user={crc32(f'user:{user}'.encode()) % _USER_B}"] = 1.0
    v = get("item_id")
    if v is not None:
        x[f"item={crc32(f'item:{v}'.encode()) % _ITEM_B}"] = 1.0
    category = get("category")
    if category is not None:
        x[f"category={crc32(f'category:{category}'.encode()) % _CAT_B}"] = 1.0
        if user is not None:
            x[f"user_category={crc32(f'user_category:{user}|{category}'.encode()) % _UC_B}"] = 1.0
    device = get("device")
    if device is not None:
        x[_DEVICE_KEYS.get(device, "device=other")] = 1.0
        if category is not None:
            x[f"device_category={crc32(f'device_category:{device}|{category}'.encode()) % _DC_B}"] = 1.0
    v = get("country")
    if v is not None:
        key = _COUNTRY_KEYS.get(v) if v.__class__ is str else None
        x[key if key is not None else _country_key(v)] = 1.0
    v = get("price")
    if v is not None:
        p = _number(v)
        x["log_price"] = log1p(p) if p is not None and p > 0.0 else 0.0
    v = get("event_time")
    if v is not None:
        t = v if v.__class__ is int else event_time_ms(v)
        if t is not None:
            angle = (t % 86_400_000) * _TWO_PI_PER_MS
            x["hour_sin"] = sin(angle)
            x["hour_cos"] = cos(angle)
    extra = get("features")
    if extra:
        if len(extra) > MAX_EVENT_FEATURES:
            extra = dict(list(extra.items())[:MAX_EVENT_FEATURES])
        for name, value in extra.items():
            cls = value.__class__
            if cls is float:
                if not isfinite(value):
                    continue
            elif cls is int:
                value = float(value)
            else:
                continue
            key = _FEATURE_KEYS.get(name)
            if key is None:
                key = _feature_key(name)
            x[key] = value
        v = x.get("f:position")
        if v is not None and v >= 1.0:
            del x["f:position"]
            x["log_position"] = lp = log(v)
            x[_LOG_POSITION_KEYS.get(device, "log_position@other")] = lp
        v = x.get("f:dwell")
        if v is not None and v > 0.0:
            del x["f:dwell"]
            x["log_dwell"] = log(v)
    ctx = context if context is not None else get("context")
    if ctx:
        for key in ("user_recent", "item_recent"):
            c = ctx.get(key)
            if c is not None:
                f = _number(c)
                x[key] = log1p(f) if f is not None and f > 0.0 else 0.0
    return x
