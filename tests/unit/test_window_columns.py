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
    frame, k = _frame(doc["events"]), doc["sample_k"]
    assert wc.pack(frame, sample_k=k).hex() == doc["packed_hex"]
    assert wc.pack(frame, wc.IDENTITY, k).hex() == doc["identity_hex"]
    assert wc.pack(frame, wc.VALUES, k).hex() == doc["values_hex"]


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
    assert cols.sample_k == json.loads(VECTORS.read_text())["sample_k"]
    everything = np.arange(len(events))
    texts, priorities = cols.sample_candidates("raw_text", everything)
    assert priorities.tolist() == [wc.priority(t.encode()) for t in texts]
    raws = [e["raw"] for e in events]
    assert [raws.index(t) for t in texts] == sorted(raws.index(t) for t in texts)  # row order
    assert list(texts[1:3]) == list(texts)[1:3]


def _bottom_k(priorities: list[int], rows: list[int], k: int) -> set[int]:
    return set(sorted(rows, key=lambda r: (priorities[r], r))[:k])


def test_sample_candidates_hold_every_groups_k_smallest_priorities_and_nothing_else():
    """Brute force: the candidates are exactly the union of the k smallest priorities of the whole
    window and of every value of every dimension, and a group reads back its own k smallest."""
    rng = random.Random(11)
    n, k = 3_000, 7
    events = [{"event_time": 1_000 + i, "user_id": "u", "session_id": "s", "item_id": "i",
               "category": rng.choice("abcdefgh"), "country": rng.choice(["US", "DE", "FR", "JP", "BR"]),
               "device": rng.choice(["mobile", "desktop", "tablet"]), "price": 1.0,
               "raw": f'{{"event_id":"e{i}-{rng.random()}"}}'} for i in range(n)]  # fmt: skip
    frame = _frame(events)
    priorities = [wc.priority(e["raw"].encode()) for e in events]
    expected = _bottom_k(priorities, list(range(n)), k)
    for column in wc.SAMPLE_GROUP_COLUMNS:
        for value in {e[column] for e in events}:
            expected |= _bottom_k(priorities, [i for i, e in enumerate(events) if e[column] == value], k)
    assert wc.sample_candidate_rows(frame, priorities, k).tolist() == sorted(expected)
    cols = wc.PackedColumns(wc.pack(frame, wc.VALUES, k))
    rows = np.array([i for i, e in enumerate(events) if e["country"] == "JP"])
    texts, got = cols.sample_candidates("raw_text", rows)
    smallest = sorted(got.tolist())[:k]
    assert smallest == sorted(priorities[r] for r in _bottom_k(priorities, rows.tolist(), k))
    assert set(texts) <= {events[r]["raw"] for r in rows}


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
    """Writes the vectors (a reservoir k of 3, so the 40 events' groups overflow it)."""
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
           "sample_k": 3, "events": events, "packed_hex": wc.pack(_frame(events), sample_k=3).hex(),
           "identity_hex": wc.pack(_frame(events), wc.IDENTITY, 3).hex(),
           "values_hex": wc.pack(_frame(events), wc.VALUES, 3).hex()}  # fmt: skip
    VECTORS.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
