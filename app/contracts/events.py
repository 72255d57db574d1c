"""The ``events.v1`` contract: validate one raw Kafka message and normalize it to an :class:`Event`.

The rules are those of ``docs/event-validation.md``; the Java twin (``flink_jobs/java``,
``EventValidator``) follows the same document, and both pass ``tests/vectors/events.jsonl``.
The first failed check is the reason, ``<code>`` or ``<code>:<field>``.

>>> e = parse_event(b'{"event_id":"e1","event_type":"impression","event_time":1000,"user_id":"u",'
...                 b'"session_id":"s","item_id":"i","category":"c","country":"US","device":"mobile",'
...                 b'"price":2}')
>>> e.event_time, e.price, e.features
(1000, 2.0, {})
>>> parse_event(e.to_json()) == e
True
>>> parse_event(b'{"event_id":"e1"}').reason
'missing_field:event_type'
>>> parse_event(b'[1]').reason
'not_object'
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

EVENT_TYPES = ("impression", "click", "purchase")
DEVICES = ("mobile", "desktop", "tablet")
#: Checked in this order; the first failing field is the reason.
REQUIRED_FIELDS = (
    "event_id", "event_type", "event_time", "user_id", "session_id",
    "item_id", "category", "country", "device", "price",
)  # fmt: skip
MAX_EVENT_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_FEATURES = 64
MAX_EVENT_ID_CHARS = 64
MAX_ID_CHARS = 128

# Reason codes
INVALID_JSON, NOT_OBJECT = "invalid_json", "not_object"
MISSING_FIELD, WRONG_TYPE, OUT_OF_RANGE = "missing_field", "wrong_type", "out_of_range"

_EVENT_TYPE_SET = frozenset(EVENT_TYPES)
_DEVICE_SET = frozenset(DEVICES)
# orjson turns integer literals outside [-2**63, 2**64) into floats, so such a float may have
# been written as an integer; only the exact (stdlib) parser can tell 1e20 from 100000000000000000000.
_ORJSON_INT_LIMIT = 2.0**63
# [0-9], not \d: \d also matches non-ASCII digits. 'T'/'Z' are case-insensitive (RFC 3339 §5.6 note).
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused: ``reason`` is machine-readable, ``detail`` is for people.

    >>> r = Rejection("wrong_type:price", "price must be a number, got string")
    >>> r.code, r.field
    ('wrong_type', 'price')
    """

    reason: str
    detail: str

    @property
    def code(self) -> str:
        return self.reason.partition(":")[0]

    @property
    def field(self) -> str | None:
        return self.reason.partition(":")[2] or None


@dataclass(frozen=True, slots=True)
class Event:
    """A valid, normalized event: ``event_time`` in ms since the epoch (UTC), ``features`` a map."""

    event_id: str
    event_type: str
    event_time: int
    user_id: str
    session_id: str
    item_id: str
    category: str
    country: str
    device: str
    price: float
    impression_id: str | None = None
    # Excluded from the hash (a dict is not hashable) but still compared.
    features: dict[str, float] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """The wire object: ``impression_id`` and ``features`` only when there are some."""
        d = {name: getattr(self, name) for name in REQUIRED_FIELDS}
        if self.impression_id is not None:
            d["impression_id"] = self.impression_id
        if self.features:
            d["features"] = self.features
        return d

    def to_json(self) -> bytes:
        """Canonical wire form: ``event_time`` as integer ms; parses back to an equal event."""
        return orjson.dumps(self.to_dict())


class _Invalid(Exception):
    """The first failed check; raised by the field checks, turned into a :class:`Rejection`."""

    def __init__(self, code: str, field_name: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = f"{code}:{field_name}"
        self.detail = detail


def parse_event(raw: bytes | bytearray | memoryview | str) -> Event | Rejection:
    """Validate one message; never raises for any input bytes.

    >>> parse_event(b'{"price": NaN}').reason
    'invalid_json'
    >>> parse_event('"text"').detail
    'expected a JSON object, got string'
    """
    obj = _load(raw)
    if type(obj) is Rejection:
        return obj
    if type(obj) is not dict:
        return Rejection(NOT_OBJECT, f"expected a JSON object, got {_json_type(obj)}")
    try:
        event_id = _bounded_string(obj, "event_id", MAX_EVENT_ID_CHARS)
        event_type = _enum_string(obj, "event_type", _EVENT_TYPE_SET)
        event_time = _event_time(obj)
        user_id = _bounded_string(obj, "user_id", MAX_ID_CHARS)
        session_id = _bounded_string(obj, "session_id", MAX_ID_CHARS)
        item_id = _bounded_string(obj, "item_id", MAX_ID_CHARS)
        category = _bounded_string(obj, "category", MAX_ID_CHARS)
        country = _country(obj)
        device = _enum_string(obj, "device", _DEVICE_SET)
        price = _price(obj)
        impression_id = _impression_id(obj, event_type)
        features = _features(obj.get("features"))
    except _Invalid as exc:
        return Rejection(exc.reason, exc.detail)
    return Event(
        event_id, event_type, event_time, user_id, session_id, item_id,
        category, country, device, price, impression_id, features,
    )  # fmt: skip


# ------------------------------------------------------------------------ JSON


def _load(raw: bytes | bytearray | memoryview | str) -> Any:
    """Parse with orjson (fast, strict); fall back to the exact parser only where orjson differs."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson also refuses numbers that overflow a double (1e999) and lone surrogate escapes;
        # the contract treats the first as a (non-finite) number, the second as invalid JSON.
        return _load_exact(raw)
    except TypeError:  # not bytes or str
        return _load_exact(raw)
    if type(obj) is dict:
        t = obj.get("event_time")
        if type(t) is float and abs(t) >= _ORJSON_INT_LIMIT:
            return _load_exact(raw)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def _load_exact(raw: bytes | bytearray | memoryview | str) -> Any:
    """The stdlib parser: big integers stay integers and 1e999 becomes inf, as in the Java twin."""
    if isinstance(raw, str):
        text = raw
        if not _is_scalar_text(text):
            return Rejection(INVALID_JSON, "message is not valid UTF-8 (surrogates)")
    elif isinstance(raw, bytes | bytearray | memoryview):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection(INVALID_JSON, f"message is not valid UTF-8: {exc.reason} at byte {exc.start}")
    else:
        return Rejection(INVALID_JSON, f"message must be bytes or str, got {type(raw).__name__}")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        return Rejection(INVALID_JSON, f"invalid JSON: {str(exc).splitlines()[0] if str(exc) else 'parse error'}")
    if not _all_scalar_text(obj):
        # "\ud800" escapes decode to lone surrogates, which are not Unicode text.
        return Rejection(INVALID_JSON, "invalid JSON: string contains a lone surrogate escape")
    return obj


def _is_scalar_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _all_scalar_text(obj: Any) -> bool:
    if type(obj) is str:
        return _is_scalar_text(obj)
    if type(obj) is dict:
        return all(_is_scalar_text(k) and _all_scalar_text(v) for k, v in obj.items())
    if type(obj) is list:
        return all(_all_scalar_text(v) for v in obj)
    return True


_JSON_TYPES = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", list: "array"}


def _json_type(v: Any) -> str:
    return _JSON_TYPES.get(type(v), "object")


# ------------------------------------------------------------------------ field checks


def _required(obj: dict, name: str) -> Any:
    v = obj.get(name)
    if v is None:  # absent and null are the same
        raise _Invalid(MISSING_FIELD, name, f"{name} is required")
    return v


def _string(v: Any, name: str) -> str:
    if type(v) is not str:
        raise _Invalid(WRONG_TYPE, name, f"{name} must be a string, got {_json_type(v)}")
    return v


def _check_length(name: str, s: str, max_chars: int) -> str:
    n = len(s)  # code points, as the contract counts
    if n < 1 or n > max_chars:
        raise _Invalid(OUT_OF_RANGE, name, f"{name} must be 1-{max_chars} characters, got {n}")
    return s


def _bounded_string(obj: dict, name: str, max_chars: int) -> str:
    return _check_length(name, _string(_required(obj, name), name), max_chars)


def _enum_string(obj: dict, name: str, allowed: frozenset[str]) -> str:
    s = _string(_required(obj, name), name)
    if s not in allowed:
        raise _Invalid(OUT_OF_RANGE, name, f"{name} must be one of {', '.join(sorted(allowed))}, got {_quote(s)}")
    return s


def _country(obj: dict) -> str:
    s = _string(_required(obj, "country"), "country")
    if len(s) != 2 or not ("A" <= s[0] <= "Z" and "A" <= s[1] <= "Z"):
        raise _Invalid(OUT_OF_RANGE, "country", f"country must be two ASCII capital letters, got {_quote(s)}")
    return s


def _as_finite(v: int | float) -> float | None:
    """The number as a double, or None when it is not finite (1e999, or an integer beyond a double)."""
    try:
        d = float(v)
    except OverflowError:
        return None
    return d if math.isfinite(d) else None


def _price(obj: dict) -> float:
    v = _required(obj, "price")
    if type(v) is not int and type(v) is not float:  # type(True) is bool: never a number
        raise _Invalid(WRONG_TYPE, "price", f"price must be a number, got {_json_type(v)}")
    d = _as_finite(v)
    if d is None or not d >= 0:
        raise _Invalid(OUT_OF_RANGE, "price", f"price must be finite and >= 0, got {v}")
    return d


def _event_time(obj: dict) -> int:
    v = _required(obj, "event_time")
    t = type(v)
    if t is int:
        ms = v
    elif t is str:
        ms = rfc3339_to_ms(v)
        if ms is None:
            raise _Invalid(
                OUT_OF_RANGE, "event_time",
                f"event_time string must be an RFC 3339 date-time with Z or +-hh:mm offset, got {_quote(v)}",
            )  # fmt: skip
    elif t is float:
        raise _Invalid(
            WRONG_TYPE, "event_time",
            f"event_time must be an integer (no fraction, no exponent) or an RFC 3339 string, got {v}",
        )  # fmt: skip
    else:
        raise _Invalid(
            WRONG_TYPE, "event_time", f"event_time must be an integer or an RFC 3339 string, got {_json_type(v)}"
        )
    if not 0 <= ms <= MAX_EVENT_TIME_MS:
        raise _Invalid(OUT_OF_RANGE, "event_time", f"event_time must be 0-{MAX_EVENT_TIME_MS} ms, got {ms}")
    return ms


def _impression_id(obj: dict, event_type: str) -> str | None:
    v = obj.get("impression_id")
    if v is None:
        if event_type != "impression":
            raise _Invalid(MISSING_FIELD, "impression_id", f"impression_id is required on {event_type} events")
        return None
    return _check_length("impression_id", _string(v, "impression_id"), MAX_ID_CHARS)


def _features(v: Any) -> dict[str, float]:
    if v is None:
        return {}
    if type(v) is not dict:
        raise _Invalid(WRONG_TYPE, "features", f"features must be an object, got {_json_type(v)}")
    # The size is checked before the values, as in the Java twin.
    if len(v) > MAX_FEATURES:
        raise _Invalid(OUT_OF_RANGE, "features", f"features must have at most {MAX_FEATURES} entries, got {len(v)}")
    out = {}
    for k, x in v.items():
        if type(x) is not int and type(x) is not float:
            raise _Invalid(WRONG_TYPE, "features", f"features[{_quote(k)}] must be a number, got {_json_type(x)}")
        d = _as_finite(x)
        if d is None:
            raise _Invalid(OUT_OF_RANGE, "features", f"features[{_quote(k)}] must be finite, got {x}")
        out[k] = d
    return out


def _quote(s: str, max_chars: int = 40) -> str:
    return '"' + (s if len(s) <= max_chars else s[:max_chars] + "...") + '"'


# ------------------------------------------------------------------------ time


def rfc3339_to_ms(s: str) -> int | None:
    """Epoch ms of an RFC 3339 date-time (fraction truncated to ms), or None if it is not one.

    Leap seconds (``:60``) are refused, as ``java.time`` does.

    >>> rfc3339_to_ms("1970-01-01T00:00:01.9999Z")
    1999
    >>> rfc3339_to_ms("1970-01-01t01:00:00+01:00")
    0
    >>> rfc3339_to_ms("2026-02-29T00:00:00Z") is None
    True
    """
    m = _RFC3339.fullmatch(s)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if hour > 23 or minute > 59 or second > 59:
        return None
    try:  # year 0 is refused here too; it would be before the epoch anyway
        days = dt.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    offset_s = 0
    if m.group(8) is None:
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        offset_s = (oh * 3600 + om * 60) * (-1 if m.group(9) == "-" else 1)
    frac = m.group(7) or ""
    millis = int((frac + "000")[:3])
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_s
    return seconds * 1000 + millis


def ms_to_rfc3339(ms: int) -> str:
    """The UTC RFC 3339 form of epoch ms, with milliseconds.

    >>> ms_to_rfc3339(1795701064123)
    '2026-11-26T13:51:04.123Z'
    >>> rfc3339_to_ms(ms_to_rfc3339(1795701064123))
    1795701064123
    """
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{ms % 1000:03d}Z"
    )
