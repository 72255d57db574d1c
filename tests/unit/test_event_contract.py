"""The events.v1 contract: shared vectors, property-style checks, and the published JSON Schema."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from pathlib import Path

import jsonschema
import orjson
import pytest

from app.contracts import schema as event_schema
from app.contracts.events import (
    MAX_EVENT_TIME_MS,
    REQUIRED_FIELDS,
    Event,
    Rejection,
    ms_to_rfc3339,
    parse_event,
    rfc3339_to_ms,
)

VECTORS_FILE = Path(__file__).resolve().parents[1] / "vectors" / "events.jsonl"
CODES = {"invalid_json", "not_object", "missing_field", "wrong_type", "out_of_range"}
FIELDS = set(REQUIRED_FIELDS) | {"impression_id", "features"}


def _vectors() -> list[dict]:
    return [orjson.loads(line) for line in VECTORS_FILE.read_bytes().splitlines() if line.strip()]


def _raw(v: dict) -> bytes:
    return bytes.fromhex(v["raw_hex"]) if v.get("raw_hex") else v["raw"].encode("utf-8")


VECTORS = _vectors()


def _reason(result: Event | Rejection) -> str | None:
    return result.reason if isinstance(result, Rejection) else None


def _assert_well_formed_reason(reason: str) -> None:
    code, _, field = reason.partition(":")
    assert code in CODES, reason
    assert (field in FIELDS) if code in {"missing_field", "wrong_type", "out_of_range"} else not field, reason


# ---------------------------------------------------------------------- shared vectors


def test_vectors_cover_both_outcomes_and_have_unique_names():
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names))
    assert any(v["reason"] is None for v in VECTORS) and any(v["reason"] for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector):
    raw = _raw(vector)
    result = parse_event(raw)
    assert _reason(result) == vector["reason"], getattr(result, "detail", result)
    if vector["reason"] is None:
        assert result.event_time == vector["event_time"]
        # The canonical form parses back to the same event, and says the same thing.
        assert parse_event(result.to_json()) == result
        assert isinstance(result.price, float)
        assert all(isinstance(x, float) for x in result.features.values())
    else:
        _assert_well_formed_reason(result.reason)
        assert result.detail


@pytest.mark.parametrize("vector", [v for v in VECTORS if "raw" in v], ids=lambda v: v["name"])
def test_vector_as_str_bytearray_and_memoryview(vector):
    raw = _raw(vector)
    expected = _reason(parse_event(raw))
    for form in (vector["raw"], bytearray(raw), memoryview(raw)):
        assert _reason(parse_event(form)) == expected


# ---------------------------------------------------------------------- property-style checks

_ALPHABET = "abcXYZ019_-:/ é中😀"


def _random_string(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(lo, hi)))


def _random_valid(rng: random.Random) -> tuple[dict, int]:
    """A random valid event as a JSON-able dict, and the event_time it must normalize to."""
    ms = rng.randint(0, MAX_EVENT_TIME_MS - 10**8)
    event_type = rng.choice(["impression", "click", "purchase"])
    d = {
        "event_id": _random_string(rng, 1, 64),
        "event_type": event_type,
        "event_time": ms,
        "user_id": _random_string(rng, 1, 128),
        "session_id": _random_string(rng, 1, 20),
        "item_id": _random_string(rng, 1, 20),
        "category": _random_string(rng, 1, 20),
        "country": rng.choice(["US", "DE", "ZZ", "AA"]),
        "device": rng.choice(["mobile", "desktop", "tablet"]),
        "price": rng.choice([0, 1, 10**6, rng.random() * 1000, 1e300]),
    }
    if event_type != "impression" or rng.random() < 0.2:
        d["impression_id"] = _random_string(rng, 1, 128)
    if rng.random() < 0.5:
        d["features"] = {_random_string(rng, 0, 8): rng.choice([0, -3, rng.uniform(-1e6, 1e6)]) for _ in range(rng.randint(0, 64))}
    if rng.random() < 0.5:  # the same instant as an RFC 3339 string, with a random offset and fraction
        d["event_time"], ms = _random_rfc3339(rng, ms)
    return d, ms


def _random_rfc3339(rng: random.Random, ms: int) -> tuple[str, int]:
    offset_min = rng.randint(-23 * 60 - 59, 23 * 60 + 59)
    local = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms, minutes=offset_min)
    if not 1970 <= local.year <= 9999:
        return ms_to_rfc3339(ms), ms
    digits = rng.randint(0, 9)
    frac = f"{local.microsecond // 1000:03d}" + "".join(rng.choice("0123456789") for _ in range(6))
    sign = "+" if offset_min >= 0 else "-"
    off = "Z" if offset_min == 0 and rng.random() < 0.5 else f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac[:digits]}" if digits else "") + off
    if rng.random() < 0.2:
        text = text.replace("T", "t").replace("Z", "z")
    truncated = ms - ms % 1000 + (int((frac[:digits] + "000")[:3]) if digits else 0)
    return text, truncated


def test_random_valid_events_are_accepted_and_round_trip():
    rng = random.Random(1)
    for _ in range(2_000):
        d, ms = _random_valid(rng)
        e = parse_event(orjson.dumps(d))
        assert isinstance(e, Event), (d, e)
        assert e.event_time == ms
        assert e.price == float(d["price"])
        assert e.features == {k: float(v) for k, v in (d.get("features") or {}).items()}
        assert parse_event(e.to_json()) == e
        assert hash(e) == hash(parse_event(e.to_json()))


def test_first_failing_field_is_the_reason():
    rng = random.Random(2)
    wrong = {"event_time": True, "price": "1", "country": 1, "device": ["mobile"]}
    for _ in range(500):
        d, _ = _random_valid(rng)
        broken = sorted(rng.sample(range(len(REQUIRED_FIELDS)), rng.randint(1, 3)))
        first = REQUIRED_FIELDS[broken[0]]
        how = rng.choice(["missing", "null", "wrong"])
        for i in broken:
            f = REQUIRED_FIELDS[i]
            if how == "missing":
                d.pop(f)
            elif how == "null":
                d[f] = None
            else:
                d[f] = wrong.get(f, 7)
        code = "wrong_type" if how == "wrong" else "missing_field"
        assert parse_event(orjson.dumps(d)).reason == f"{code}:{first}"


def test_booleans_are_never_numbers():
    base, _ = _random_valid(random.Random(3))
    for field, value, reason in [
        ("event_time", True, "wrong_type:event_time"),
        ("price", False, "wrong_type:price"),
        ("features", {"a": True}, "wrong_type:features"),
    ]:
        assert parse_event(orjson.dumps({**base, field: value})).reason == reason


def test_rfc3339_agrees_with_datetime():
    rng = random.Random(4)
    for _ in range(2_000):
        ms = rng.randint(0, MAX_EVENT_TIME_MS)
        assert rfc3339_to_ms(ms_to_rfc3339(ms)) == ms
        text, expected = _random_rfc3339(rng, ms)
        assert rfc3339_to_ms(text) == expected, text
        m = re.fullmatch(r"(.{19})(?:\.(\d+))?(.*)", text.upper())
        if m.group(2) is None or len(m.group(2)) <= 6:  # what datetime can parse exactly
            parsed = dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
            assert (parsed - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1) == expected


def test_rfc3339_refuses_impossible_times():
    for text in ["2026-11-26T23:60:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-04-31T00:00:00Z",
                 "2026-11-26T13:51:04+23:60", "2026-11-26T13:51:04", "2026-11-26", "2026-11-26T13:51Z", " 2026-11-26T13:51:04Z"]:
        assert rfc3339_to_ms(text) is None, text


def test_any_bytes_give_an_event_or_a_well_formed_rejection():
    rng = random.Random(5)
    seeds = [_raw(v) for v in VECTORS]
    for _ in range(5_000):
        raw = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op, i = rng.random(), rng.randrange(len(raw) + 1)
            if op < 0.4 and raw:
                del raw[min(i, len(raw) - 1)]
            elif op < 0.8:
                raw.insert(i, rng.choice(b'{}[]",:0123456789-+.eEtrufalsn \\\x00\xff\xc3'))
            elif raw:
                raw[min(i, len(raw) - 1)] = rng.randrange(256)
        result = parse_event(bytes(raw))
        if isinstance(result, Rejection):
            _assert_well_formed_reason(result.reason)
        else:
            assert parse_event(result.to_json()) == result


def test_non_message_types_are_rejected_not_raised():
    assert parse_event(None).reason == "invalid_json"  # type: ignore[arg-type]
    assert parse_event(42).reason == "invalid_json"  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the published JSON Schema


def test_committed_schema_is_fresh():
    assert event_schema.SCHEMA_PATH.read_text(encoding="utf-8") == event_schema.render(), (
        "docs/event.schema.json is stale: run python -m app.contracts.schema"
    )
    assert event_schema.main(["--check"]) == 0


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(event_schema.SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_valid_vectors_and_random_events_satisfy_the_schema():
    validator = _validator()
    for v in VECTORS:
        if v["reason"] is None:
            obj = json.loads(_raw(v).decode("utf-8"))
            validator.validate(obj)
            validator.validate(parse_event(_raw(v)).to_dict())  # the canonical form too
    rng = random.Random(6)
    for _ in range(300):
        d, _ = _random_valid(rng)
        validator.validate(parse_event(orjson.dumps(d)).to_dict())


def test_schema_refuses_field_level_violations():
    """What JSON Schema can say, it says the same: missing fields, wrong types, bad enums and lengths."""
    validator = _validator()
    refused = 0
    for v in VECTORS:
        reason = v["reason"] or ""
        field = reason.partition(":")[2]
        # JSON Schema cannot see: 1.0 is an "integer" to it, date-time formats are not asserted,
        # and a number that overflows to infinity still is a number >= 0.
        if reason == "wrong_type:event_time" or (reason.startswith("out_of_range") and field in {"event_time", "price", "features"}):
            continue
        if reason.startswith(("missing_field", "wrong_type", "out_of_range")):
            obj = json.loads(_raw(v).decode("utf-8"))
            if isinstance(obj, dict):
                assert not validator.is_valid(obj), v["name"]
                refused += 1
    assert refused >= 15
