"""One pass over a window's rows (flink_jobs/window_records.py) gives, per dimension value, the same
sketches and exact counts as building each on its own, and survives its packing; the packed
columns PackWindow emits (flink_jobs/window_columns.py) give the same records as a frame."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pandas as pd

from app.sketches import decode_sketch, new_sketch
import pytest

from flink_jobs import window_columns, window_records
from flink_jobs.sql import SKETCHES

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
        ev["raw"] = ev["raw_text"].encode()
        rows.append(ev)
    return pd.DataFrame(rows)


def _source(frame: pd.DataFrame, packed: bool):
    return window_columns.PackedColumns(window_columns.pack(frame)) if packed else frame


@pytest.mark.parametrize("packed", [False, True], ids=["frame", "packed"])
def test_one_pass_equals_each_sketch_built_alone(packed: bool):
    frame = _frame()
    recs = list(window_records.unpack(window_records.build(_source(frame, packed), DIMS, SKETCHES, 10_000, features=True)))
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
                elif kind == "hll":  # built from the window's hashes: the library's very registers
                    mine, ref = built.payload(), alone.payload()
                    if ref[7] & 3 == 2:  # HLL mode: only the estimator differs (composite, not HIP)
                        assert mine[40:] == ref[40:] and mine[:5] == ref[:5], (field, dim, value)
                    else:  # coupon list or set: left to the library, the same coupons (in any order)
                        assert mine[:8] == ref[:8], (field, dim, value)
                        coupons = [sorted(np.frombuffer(p[4 * p[0] :], "<u4").tolist()) for p in (mine, ref)]
                        assert coupons[0] == coupons[1], (field, dim, value)
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


def test_packed_columns_give_the_records_a_frame_gives():
    """Byte for byte, except the randomized sketches: KLL (random compaction) and the reservoir
    see the same values (same n, extremes and ranks within the error; sample from the group)."""
    frame = _frame(1_500, seed=5)
    frame_recs, packed_recs = (
        list(window_records.unpack(window_records.build(_source(frame, p), DIMS, SKETCHES, 10_000, emitted_at=1,
                                                        features=True)))  # fmt: skip
        for p in (False, True)
    )
    assert [r.key() for r in frame_recs] == [r.key() for r in packed_recs]
    for a, b in zip(frame_recs, packed_recs, strict=True):
        assert a._replace(sketch=b"") == b._replace(sketch=b""), a.key()
        if a.kind == "kll":
            ka, kb = decode_sketch(a.sketch), decode_sketch(b.sketch)
            assert (ka.n, ka.min, ka.max) == (kb.n, kb.min, kb.max), a.key()
            e = 2 * ka.rank_error
            for q in (0.1, 0.5, 0.9):  # one's quantile lies within the other's at q -+ both errors
                lo, hi = ka.quantile(max(0.0, q - e)).value, ka.quantile(min(1.0, q + e)).value
                assert lo <= kb.quantile(q).value <= hi, (a.key(), q)
            continue
        if a.kind != "reservoir":
            assert a.sketch == b.sketch, a.key()
            continue
        ra, rb = decode_sketch(a.sketch), decode_sketch(b.sketch)
        assert ra.n_seen == rb.n_seen == a.events
        group = frame if a.dim == "all" else frame[frame[a.dim] == a.dim_value]
        assert set(rb.sample()) <= set(group["raw_text"]) and len(rb.sample()) == min(rb.k, len(group))


def test_window_parts_cover_every_record_once():
    """Two sketch builders (sql.WINDOW_PARTS) emit together exactly the records of one."""
    from flink_jobs.sql import window_parts

    packed = window_columns.PackedColumns(window_columns.pack(_frame(800)))

    def keys(parts) -> list[str]:
        out = []
        for part in parts:
            blob = window_records.build(packed, DIMS, part.sketches, 10_000, features=part.features, counts=part.counts)
            out += [r.key() for r in window_records.unpack(blob)]
        return out

    one, two = keys(window_parts(1)), keys(window_parts(2))
    assert len(two) == len(set(two))  # no record key twice (the exact counts come from one part)
    assert sorted(one) == sorted(two)
    assert {p.counts for p in window_parts(2)} == {True, False}


def test_packed_reservoir_samples_each_group_uniformly():
    """The packed path samples by priority (a hash of each raw event, window_columns.priority) and
    keeps only the candidates: per group every event must still be equally likely to be sampled.
    400 windows whose events differ only by a nonce: chi-square of how often each row of the
    country "US" group was drawn, against uniform; and n_seen is the group's size."""
    from scipy import stats

    k, trials = 5, 400
    base = _frame(60, seed=21)
    us_rows = [i for i, c in enumerate(base["country"]) if c == "US"]
    hits = dict.fromkeys(us_rows, 0)
    rng = random.Random(4)
    for _ in range(trials):
        frame = base.copy()
        frame["raw"] = [r[:-1] + b',"nonce":%d}' % rng.getrandbits(48) for r in base["raw"]]
        cols = window_columns.PackedColumns(window_columns.pack(frame, sample_k=k))
        blob = window_records.build(cols, ["country"], [("reservoir", "*", "raw_text")], 10_000, {"reservoir": {"k": k}},
                                    counts=False)  # fmt: skip
        us = next(r for r in window_records.unpack(blob) if r.dim_value == "US")
        sample = decode_sketch(us.sketch)
        assert sample.n_seen == len(us_rows) == us.events
        raws = {bytes(frame["raw"][i]).decode(): i for i in us_rows}
        for item in sample.sample():
            hits[raws[item]] += 1
    counts = list(hits.values())
    assert sum(counts) == trials * k
    p = stats.chisquare(counts).pvalue
    assert p > 1e-4, f"not uniform: p={p:.2g}, {counts}"


def test_a_window_packed_for_a_smaller_k_gives_a_smaller_sample_not_an_error():
    frame = _frame(300, seed=5)
    cols = window_columns.PackedColumns(window_columns.pack(frame, sample_k=3))
    blob = window_records.build(cols, ["all"], [("reservoir", "*", "raw_text")], 10_000, {"reservoir": {"k": 10}},
                                counts=False)  # fmt: skip
    sample = decode_sketch(next(window_records.unpack(blob)).sketch)
    assert (sample.n_seen, len(sample.sample())) == (300, 3)


def test_value_counts_histogram_and_sort_paths_agree(monkeypatch):
    """Per group, the distinct codes and their counts: by histogram (small code spaces) and by
    sorting (when groups x distinct values would dwarf the window) give the same answer."""
    import numpy as np

    frame = _frame(2_000, seed=11)
    groups = window_records._Groups(window_records.FrameColumns(frame), "country")
    codes, uniques = window_records.FrameColumns(frame).factorized("user_id")
    by_histogram = groups.value_counts(codes, len(uniques))
    monkeypatch.setattr(window_records.np, "bincount", None)  # any use of the histogram path fails
    by_sorting = groups.value_counts(codes, 10**9)  # a code space too large for a histogram
    for (a_codes, a_counts), (b_codes, b_counts), value in zip(by_histogram, by_sorting, groups.values, strict=True):
        assert np.array_equal(a_codes, b_codes) and np.array_equal(a_counts, b_counts)
        truth = frame[frame.country == value].user_id.value_counts()
        assert dict(zip(uniques[a_codes], a_counts.tolist())) == truth.to_dict()
