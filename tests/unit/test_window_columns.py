"""The packed window (flink_jobs/window_columns.py): the Python encoder matches the shared vectors
that the Java side (WindowColumnsTest) checks PackWindow against, and the reader inverts it.

Regenerate the vectors (only when the format version changes): ``python -m tests.unit.test_window_columns``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flink_jobs import window_columns as wc

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "window_columns.json"


def _frame(events: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(events)
    frame["raw"] = [e["raw"].encode() for e in events]
    frame["features"] = [e.get("features") for e in events]
    return frame


def test_python_pack_matches_the_shared_vectors():
    doc = json.loads(VECTORS.read_text())
    frame = _frame(doc["events"])
    assert wc.pack(frame).hex() == doc["packed_hex"]
    assert wc.pack(frame, wc.IDENTITY).hex() == doc["identity_hex"]
    assert wc.pack(frame, wc.VALUES).hex() == doc["values_hex"]


def test_the_two_sections_read_as_the_whole_window():
    doc = json.loads(VECTORS.read_text())
    whole = wc.PackedColumns(bytes.fromhex(doc["packed_hex"]))
    identity, values = bytes.fromhex(doc["identity_hex"]), bytes.fromhex(doc["values_hex"])
    both = wc.PackedColumns(identity, values)
    for name in wc.STRING_COLUMNS:
        assert [a.tolist() for a in both.factorized(name)] == [a.tolist() for a in whole.factorized(name)]
    assert both.floats("price").tolist() == whole.floats("price").tolist()
    assert both.features() == whole.features()
    assert len(identity) + len(values) < 1.2 * len(bytes.fromhex(doc["packed_hex"]))
    only_identity = wc.PackedColumns(identity)
    for missing in (lambda: only_identity.floats("price"), only_identity.features):
        with pytest.raises(KeyError):
            missing()
    with pytest.raises(KeyError):
        wc.PackedColumns(values).factorized("user_id")
    assert wc.PackedColumns(values).factorized("country")[1].tolist() == whole.factorized("country")[1].tolist()


def test_packed_columns_read_back_every_field():
    events = json.loads(VECTORS.read_text())["events"]
    cols = wc.PackedColumns(bytes.fromhex(json.loads(VECTORS.read_text())["packed_hex"]))
    assert (cols.rows, cols.first_event_time) == (len(events), events[0]["event_time"])
    for name in wc.STRING_COLUMNS:
        codes, uniques = cols.factorized(name)
        assert uniques[codes].tolist() == [e[name] for e in events]
        assert len(set(uniques.tolist())) == len(uniques)  # each value once
    assert cols.floats("price").tolist() == [e["price"] for e in events]
    expected: dict[str, list[float]] = {}
    for e in events:
        for k, v in e.get("features", {}).items():
            expected.setdefault(k, []).append(v)
    assert cols.features() == expected
    rows = np.array([3, 0, len(events) - 1])
    assert list(cols.texts("raw_text", rows)) == [events[i]["raw"] for i in rows]
    assert cols.texts("raw_text", rows)[1:] == [events[0]["raw"], events[-1]["raw"]]


def test_an_empty_window_packs_and_reads():
    frame = pd.DataFrame({c: [] for c in ("event_time", *wc.STRING_COLUMNS, "price", "features", "raw")})
    cols = wc.PackedColumns(wc.pack(frame))
    assert cols.rows == 0 and cols.features() == {} and cols.factorized("user_id")[1].tolist() == []


def test_unknown_version_is_refused():
    blob = bytearray(bytes.fromhex(json.loads(VECTORS.read_text())["packed_hex"]))
    blob[0] = 99
    try:
        wc.PackedColumns(bytes(blob))
    except ValueError as e:
        assert "version 99" in str(e)
    else:
        raise AssertionError("accepted an unknown version")


def main() -> None:
    rng = random.Random(7)
    events = []
    for i in range(40):
        ev = {"event_time": 1_700_000_000_000 + i * 37, "user_id": f"u{rng.randrange(9)}",
              "session_id": f"s{rng.randrange(15)}", "item_id": rng.choice(["i1", "i2", "ítem-ü", "商品"]),
              "category": rng.choice(["music", "books"]), "country": rng.choice(["US", "DE", "JP"]),
              "device": rng.choice(["mobile", "desktop"]), "price": round(rng.random() * 50, 3)}  # fmt: skip
        if i % 3:
            ev["features"] = {"dwell": round(rng.random(), 4), **({"position": float(i % 5)} if i % 2 else {})}
        ev["raw"] = json.dumps(ev, ensure_ascii=False)
        events.append(ev)
    doc = {"comment": "Events and the packed window PackWindow must emit for them (flink_jobs/window_columns.py "
           "pack; WindowColumnsTest and tests/unit/test_window_columns.py check both sides).",
           "events": events, "packed_hex": wc.pack(_frame(events)).hex(),
           "identity_hex": wc.pack(_frame(events), wc.IDENTITY).hex(),
           "values_hex": wc.pack(_frame(events), wc.VALUES).hex()}  # fmt: skip
    VECTORS.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
