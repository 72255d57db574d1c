"""One pass over a window's rows (flink_jobs/window_records.py) gives, per dimension value, the same
sketches and exact counts as building each on its own, and survives its packing."""

from __future__ import annotations

import random

import orjson
import pandas as pd

from app.sketches import decode_sketch, new_sketch
from flink_jobs import window_records
from flink_jobs.sql import SKETCHES, WINDOW_COLUMNS

DIMS = ["all", "country", "device", "category"]


def _frame(n: int = 3_000, seed: int = 3) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        ev = {"event_time": 50_000 + i, "user_id": f"u{rng.randrange(500)}", "session_id": f"s{rng.randrange(900)}",
              "item_id": f"i{int(rng.paretovariate(1.2)) % 300}", "category": rng.choice("abcde"),
              "country": rng.choice(["US", "DE", "FR"]), "device": rng.choice(["mobile", "desktop"]),
              "price": round(rng.random() * 100, 2)}  # fmt: skip
        if i % 3:
            ev["features"] = {"dwell": rng.random(), **({"pos": i % 7} if i % 2 else {})}
        ev["raw_text"] = orjson.dumps(ev).decode()
        rows.append(ev)
    return pd.DataFrame(rows)[list(WINDOW_COLUMNS)]


def test_one_pass_equals_each_sketch_built_alone():
    frame = _frame()
    recs = list(window_records.unpack(window_records.build(frame, DIMS, SKETCHES, 10_000, features_column="raw_text")))
    by_key = {(r.kind, r.field, r.dim, r.dim_value): r for r in recs}
    assert {r.window_start for r in recs} == {50_000}
    for dim in DIMS:
        groups = [("", frame)] if dim == "all" else list(frame.groupby(dim))
        assert {v for (_, _, d, v) in by_key if d == dim} == {str(v) for v, _ in groups}
        for value, group in groups:
            assert by_key[("count", "*", dim, str(value))].events == len(group)
            for kind, field, column in SKETCHES:
                rec = by_key[(kind, field, dim, str(value))]
                assert rec.events == len(group)
                alone = new_sketch(kind)
                alone.update_many(group[column].to_numpy("float64") if kind == "kll" else group[column].tolist())
                built = decode_sketch(rec.sketch)
                truth = group[column].value_counts()
                if kind == "cms":  # linear: pre-counted weights give the very same counters
                    assert rec.sketch == alone.to_bytes(), (kind, field, dim, value)
                elif kind == "hll":  # repeats leave the registers alone; only the HIP order differs
                    ref = alone.estimate()
                    assert abs(built.estimate().value - ref.value) <= (ref.upper_bound - ref.lower_bound) / 2
                    assert built.estimate().lower_bound <= truth.size <= built.estimate().upper_bound
                elif kind == "frequent":  # weighted updates: same total, every count inside its bounds
                    assert built.total_weight == len(group)
                    for item, n in truth.items():
                        assert built.bounds(item).contains(n), (field, dim, value, item)
                else:
                    assert built.to_bytes() == rec.sketch
    # features: one KLL per name, dimension all, over exactly the events that carry it
    with_dwell = sum(1 for i in range(len(frame)) if i % 3)
    with_pos = sum(1 for i in range(len(frame)) if i % 3 and i % 2)
    assert by_key[("kll", "features.dwell", "all", "")].events == with_dwell
    assert by_key[("kll", "features.pos", "all", "")].events == with_pos
    pos = decode_sketch(by_key[("kll", "features.pos", "all", "")].sketch)
    truth = [i % 7 for i in range(len(frame)) if i % 3 and i % 2]
    assert (pos.n, pos.min, pos.max) == (with_pos, min(truth), max(truth))


def test_record_keys_are_the_aggregate_contract_keys():
    from app.contracts.aggregates import AggregateRecord

    r = next(window_records.unpack(window_records.build(_frame(50), ["country"], SKETCHES[:1], 10_000)))
    rec = AggregateRecord(kind=r.kind, field=r.field, dim=r.dim, dim_value=r.dim_value, window_start=r.window_start,
                          window_end=r.window_start + 10_000, events=r.events, sketch=r.sketch)  # fmt: skip
    assert rec.key() == r.key()


def test_window_parts_cover_every_record_once():
    """Two window operators (sql.WINDOW_PARTS) emit together exactly the records of one."""
    from flink_jobs.sql import window_parts

    frame = _frame(800)

    def keys(parts) -> list[str]:
        out = []
        for part in parts:
            sub = frame[list(part.columns)]
            blob = window_records.build(sub, DIMS, part.sketches, 10_000, features_column="raw_text" if part.features
                                        else None, counts=part.counts)  # fmt: skip
            out += [r.key() for r in window_records.unpack(blob)]
        return out

    one, two = keys(window_parts(1)), keys(window_parts(2))
    assert len(two) == len(set(two))  # no record key twice (the exact counts come from one part)
    assert sorted(one) == sorted(two)
    assert {p.counts for p in window_parts(2)} == {True, False}
