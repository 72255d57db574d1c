"""The one feature function: deterministic, bounded, tolerant, and the same for every caller."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import orjson
import pytest

from app.config import PROJECT_ROOT
from app.contracts.examples import Example
from app.features import DEVICES, HASH_BUCKETS, MAX_EVENT_FEATURES, event_time_ms, features, hash_bucket
from app.learners.synthetic import synthetic_examples

IMPRESSION = {
    "event_id": "e1", "event_type": "impression", "event_time": 1_795_700_000_000,
    "user_id": "u1", "session_id": "s1", "item_id": "i1", "category": "books",
    "country": "US", "device": "mobile", "price": 12.5, "features": {"dwell": 1.5, "rank": 3},
}  # fmt: skip


def test_keys_are_indicators_or_numerics():
    x = features(IMPRESSION, context={"user_recent": 2, "item_recent": 7})
    indicators = {k for k in x if "=" in k}
    assert indicators == {
        f"user={hash_bucket('user', 'u1')}", f"item={hash_bucket('item', 'i1')}",
        f"category={hash_bucket('category', 'books')}", "device=mobile", "country=US",
        f"user_category={hash_bucket('user_category', 'u1|books')}",
        f"device_category={hash_bucket('device_category', 'mobile|books')}",
    }  # fmt: skip
    assert all(x[k] == 1.0 for k in indicators)
    numerics = set(x) - indicators
    assert numerics == {"log_price", "hour_sin", "hour_cos", "log_dwell", "f:rank", "user_recent", "item_recent"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in x.values())
    assert x["log_price"] == pytest.approx(math.log1p(12.5))
    assert x["user_recent"] == pytest.approx(math.log1p(2))


def test_stable_across_processes_with_different_hash_seeds():
    """CRC-32, not Python's salted hash: training and serving processes agree."""
    code = "import orjson, sys; from app.features import features; print(orjson.dumps(features(orjson.loads(sys.argv[1]))).decode())"
    outs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(PROJECT_ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", code, orjson.dumps(IMPRESSION).decode()],
            env=env, capture_output=True, text=True, check=True, cwd=PROJECT_ROOT,
        )  # fmt: skip
        outs.add(out.stdout.strip())
    assert len(outs) == 1
    assert orjson.loads(outs.pop()) == features(IMPRESSION)


def test_hash_buckets_bounded():
    for field, n in HASH_BUCKETS.items():
        assert {hash_bucket(field, f"v{i}") for i in range(5_000)} <= set(range(n))


def test_small_vocabularies_are_one_hot():
    for d in DEVICES:
        assert f"device={d}" in features({"device": d})
    assert "device=other" in features({"device": "fridge"})
    assert "country=DE" in features({"country": "DE"})
    for bad in ("de", "DEU", "", 42, None):
        x = features({"country": bad})
        assert x == ({} if bad is None else {"country=??": 1.0})


@pytest.mark.parametrize(
    ("ms", "sin", "cos"),
    [(0, 0.0, 1.0), (6 * 3_600_000, 1.0, 0.0), (12 * 3_600_000, 0.0, -1.0), (86_400_000 + 18 * 3_600_000, -1.0, 0.0)],
)
def test_hour_of_day_is_cyclic_utc(ms, sin, cos):
    x = features({"event_time": ms})
    assert x["hour_sin"] == pytest.approx(sin, abs=1e-12)
    assert x["hour_cos"] == pytest.approx(cos, abs=1e-12)


def test_rfc3339_event_time_equals_epoch_ms():
    assert event_time_ms("2026-11-26T13:51:04.123Z") == 1_795_701_064_123
    assert features({"event_time": "2026-11-26T14:51:04.123+01:00"}) == features({"event_time": 1_795_701_064_123})


def test_numeric_features_validated_and_capped():
    x = features({"features": {"a=b": 1, "nan": float("nan"), "inf": float("inf"), "flag": True, "s": "x", "ok": 2.5}})
    assert x == {"f:a_b": 1.0, "f:ok": 2.5}
    many = {f"k{i}": float(i) for i in range(MAX_EVENT_FEATURES + 10)}
    assert len(features({"features": many})) == MAX_EVENT_FEATURES


def test_price_edge_cases():
    assert features({"price": 0})["log_price"] == 0.0
    assert features({"price": -5})["log_price"] == 0.0
    assert features({"price": float("nan")})["log_price"] == 0.0
    assert "log_price" not in features({})


def test_context_argument_overrides_the_example_context():
    ex = {**IMPRESSION, "context": {"user_recent": 1, "item_recent": 1}}
    assert features(ex)["user_recent"] == pytest.approx(math.log1p(1))
    assert features(ex, context={"user_recent": 9})["user_recent"] == pytest.approx(math.log1p(9))
    assert "item_recent" not in features(ex, context={"user_recent": 9})


def test_does_not_mutate_and_is_deterministic():
    before = orjson.dumps(IMPRESSION)
    assert features(IMPRESSION) == features(IMPRESSION)
    assert orjson.dumps(IMPRESSION) == before


def test_same_features_from_the_contract_record_and_from_raw_json():
    """Learner (raw JSON dict), batch trainer and serving (Example) see identical features."""
    for row in synthetic_examples(200, seed=5):
        ex = Example.from_dict(row)
        assert features(orjson.loads(ex.to_json())) == features(row)
        assert features(ex.__dict__) == features(row)


def test_position_and_dwell_get_log_transforms_and_a_per_device_position_slope():
    x = features({"device": "tablet", "features": {"position": 4, "dwell": 2.0}})
    assert x["log_position"] == x["log_position@tablet"] == pytest.approx(math.log(4))
    assert x["log_dwell"] == pytest.approx(math.log(2.0))
    assert "log_position@mobile" not in x
    assert "f:position" not in x and "f:dwell" not in x  # the logs replace them
    bad = features({"features": {"position": 0, "dwell": -1.0}})
    assert "log_position" not in bad and "log_dwell" not in bad
    assert bad["f:position"] == 0.0 and bad["f:dwell"] == -1.0


def test_features_use_impression_time_information_only():
    """The label and when it became known never reach the features."""
    row = {**IMPRESSION, "label": 1, "example_time": IMPRESSION["event_time"] + 4_000}
    later = {**row, "label": 0, "example_time": IMPRESSION["event_time"] + 30_000}
    assert features(row) == features(later) == features(IMPRESSION)
