"""Replay a file of events (JSON lines, CSV, Parquet) as raw Kafka messages, for users with real data.

JSON lines are sent byte for byte, so a malformed line reaches the pipeline (and its dead-letter
topic) exactly as written. CSV and Parquet rows are turned into JSON objects: empty cells are
left out (the contract then names the missing field), numbers are read as numbers where the
contract wants them, a ``features`` column may hold a JSON object, and ``features.<name>``
columns are gathered into ``features``. The key is the ``user_id`` when there is one.

>>> import pathlib, tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     csv_file, jsonl_file = pathlib.Path(tmp, "e.csv"), pathlib.Path(tmp, "e.jsonl")
...     _ = csv_file.write_text("event_id,event_type,event_time,user_id,price,features.dwell\\n"
...                             "e1,impression,1000,u1,2.5,0.7\\n")
...     _ = jsonl_file.write_bytes(b'{"user_id":"u2"}\\nnot json\\n\\n')
...     from_csv, from_jsonl = list(read_messages(csv_file)), list(read_messages(jsonl_file))
>>> from_csv[0][0], orjson.loads(from_csv[0][1])["features"]
(b'u1', {'dwell': 0.7})
>>> from_jsonl
[(b'u2', b'{"user_id":"u2"}'), (None, b'not json')]
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

FORMATS = ("jsonl", "csv", "parquet")
_SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
}  # fmt: skip
_INTEGER_FIELDS = ("event_time",)
_NUMBER_FIELDS = ("price",)


def detect_format(path: str | Path) -> str:
    """The format from the file name (``.gz`` not supported: decompress first).

    >>> detect_format("a/b.ndjson"), detect_format("x.PARQUET")
    ('jsonl', 'parquet')
    """
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"cannot tell the format of {path}: use one of {', '.join(sorted(_SUFFIXES))} or pass fmt")
    return _SUFFIXES[suffix]


def read_messages(path: str | Path, fmt: str | None = None) -> Iterator[tuple[bytes | None, bytes]]:
    """``(key, value)`` for each event in the file; key is the user_id (None if unreadable)."""
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        for line in _json_lines(path):
            yield _key_of(line), line
    elif fmt == "csv":
        for row in _csv_rows(path):
            yield _encode(row)
    elif fmt == "parquet":
        for row in _parquet_rows(path):
            yield _encode(row)
    else:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def read_raw(path: str | Path, fmt: str | None = None) -> Iterator[bytes]:
    """Just the message values."""
    for _, value in read_messages(path, fmt):
        yield value


def _json_lines(path: str | Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\r\n")
            if line.strip():  # a blank line separates nothing: it is not a message
                yield line


def _key_of(raw: bytes) -> bytes | None:
    try:
        user = orjson.loads(raw).get("user_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return user.encode() if isinstance(user, str) and user else None


def _encode(row: dict[str, Any]) -> tuple[bytes | None, bytes]:
    user = row.get("user_id")
    return (user.encode() if isinstance(user, str) and user else None), orjson.dumps(row, default=_json_default)


def _number(text: str) -> int | float | str:
    """A CSV cell as the JSON number it spells, or the text unchanged (the contract will judge it)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        x = float(text)
    except ValueError:
        return text
    return x if math.isfinite(x) else text  # "nan"/"inf" cells stay text: JSON has no such numbers


def _csv_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as f:
        for cells in csv.DictReader(f):
            row: dict[str, Any] = {}
            features: dict[str, Any] = {}
            for name, text in cells.items():
                if name is None or text is None or text == "":
                    continue
                if name.startswith("features."):
                    features[name[len("features."):]] = _number(text)
                elif name == "features":
                    try:
                        row["features"] = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        row["features"] = text
                elif name in _INTEGER_FIELDS or name in _NUMBER_FIELDS:
                    row[name] = _number(text)
                else:
                    row[name] = text
            yield _gather_features(row, features)


def _parquet_rows(path: str | Path, batch_size: int = 65_536) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        for batch in f.iter_batches(batch_size=batch_size):
            for rec in batch.to_pylist():
                yield _normalize_record(rec)


def _normalize_record(rec: dict[str, Any]) -> dict[str, Any]:
    """Parquet values to JSON values: timestamps to epoch ms, NaN and nulls left out."""
    row: dict[str, Any] = {}
    features: dict[str, Any] = {}
    for name, v in rec.items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, dt.datetime):
            v = _epoch_ms(v)
        elif isinstance(v, list) and name == "features":  # a Parquet map reads as [(key, value), ...]
            v = dict(v)
        if name.startswith("features."):
            features[name[len("features."):]] = v
        else:
            row[name] = v
    return _gather_features(row, features)


def _gather_features(row: dict[str, Any], features: dict[str, Any]) -> dict[str, Any]:
    """Merge ``features.<name>`` columns into ``features`` (unless that column is not an object)."""
    if features:
        existing = row.get("features", {})
        row["features"] = {**existing, **features} if isinstance(existing, dict) else existing
    return row


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _epoch_ms(t: dt.datetime) -> int:
    if t.tzinfo is None:  # a naive timestamp in a data file is UTC by convention
        t = t.replace(tzinfo=dt.UTC)
    return (t - _EPOCH) // dt.timedelta(milliseconds=1)  # exact integer arithmetic, truncated


def _json_default(v: Any) -> Any:
    """Values orjson cannot write itself (Parquet decimals, binary): the nearest JSON value."""
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, bytes | bytearray):
        return v.decode("utf-8", errors="replace")
    raise TypeError(f"cannot write {type(v).__name__} as JSON")
