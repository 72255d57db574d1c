"""Signed model artifacts: round trip, and every kind of bad artifact rejected before unpickling."""

from __future__ import annotations

import builtins
import hashlib
import hmac
import struct

import orjson
import pytest

from app.features import FEATURE_SPEC_VERSION, features
from app.learners.artifact import (
    FORMAT_VERSION, MAGIC, SIG_BYTES, ArtifactError, ArtifactHeader, pack, sign, verify,
)  # fmt: skip
from app.learners.pipelines import build
from app.learners.synthetic import synthetic_examples

KEY = b"0123456789abcdef0123456789abcdef"
MARK = "_tributary_artifact_test_unpickled"


class Evil:
    """Unpickling this sets a marker on ``builtins``: proof that a payload was unpickled."""

    def __reduce__(self):
        return (exec, (f"import builtins; builtins.{MARK} = True",))


@pytest.fixture(autouse=True)
def _no_marker():
    if hasattr(builtins, MARK):
        delattr(builtins, MARK)
    yield
    if hasattr(builtins, MARK):
        delattr(builtins, MARK)


def _unpickled() -> bool:
    return getattr(builtins, MARK, False)


def _trained_model():
    model = build("logreg")
    for r in synthetic_examples(500, seed=1):
        model.learn_one(features(r), bool(r["label"]))
    return model


def _evil_blob(**kw) -> bytes:
    return sign(Evil(), key=KEY, model_name="ctr", kind="river:logreg", version=1, **kw)


def _split(blob: bytes):
    header_len = struct.unpack_from(">I", blob, 10)[0]
    header = orjson.loads(blob[14 : 14 + header_len])
    payload_len = struct.unpack_from(">Q", blob, 14 + header_len)[0]
    start = 14 + header_len + 8
    return header, blob[start : start + payload_len]


def test_round_trip_keeps_model_state_and_header():
    model = _trained_model()
    blob = sign(
        model, key=KEY, model_name="ctr", kind="river:logreg", version=7, state={"n": 500},
        trained_until_watermark=1_795_700_000_000, kafka_topic="examples.v1", kafka_offsets={0: 10, 3: 490},
        metrics={"log_loss": 0.4}, examples_seen=500, created_at=123,
    )  # fmt: skip
    art = verify(blob, KEY)
    h = art.header
    assert (h.model_name, h.kind, h.version, h.created_at) == ("ctr", "river:logreg", 7, 123)
    assert h.trained_until_watermark == 1_795_700_000_000 and h.examples_seen == 500
    assert h.kafka_topic == "examples.v1" and h.kafka_offsets == {0: 10, 3: 490}
    assert h.metrics == {"log_loss": 0.4} and h.feature_spec_version == FEATURE_SPEC_VERSION
    assert h.format == FORMAT_VERSION and h.payload_encoding == "pickle"
    assert art.state == {"n": 500}
    x = features(synthetic_examples(1, seed=9)[0])
    assert art.model.predict_proba_one(x) == model.predict_proba_one(x)


def test_raw_payload_round_trip():
    art = verify(sign(b"\x00tensor bytes", key=KEY, model_name="dlrm", kind="torch:dlrm", version=1, raw=True), KEY)
    assert art.model == b"\x00tensor bytes" and art.header.payload_encoding == "raw"


def test_a_correctly_signed_evil_payload_is_unpickled_so_the_marker_works():
    """Positive control: with the right key and intact bytes the payload IS unpickled."""
    verify(_evil_blob(), KEY)
    assert _unpickled()


def _flip(blob: bytes, i: int) -> bytes:
    return blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1 :]


def test_tampered_payload_rejected_before_unpickling():
    blob = _evil_blob()
    with pytest.raises(ArtifactError, match="bad signature"):
        verify(_flip(blob, len(blob) - SIG_BYTES - 3), KEY)
    assert not _unpickled()


def test_swapped_payload_rejected_before_unpickling():
    """A forger keeps a genuine header and signature and swaps in an evil payload."""
    good = sign({"w": 1}, key=KEY, model_name="ctr", kind="river:logreg", version=1)
    header, _ = _split(good)
    _, evil_payload = _split(_evil_blob())
    forged = pack(header, evil_payload, None) + good[-SIG_BYTES:]
    with pytest.raises(ArtifactError, match="bad signature"):
        verify(forged, KEY)
    assert not _unpickled()


def test_tampered_header_rejected():
    blob = _evil_blob()
    i = blob.index(b'"version":1')
    tampered = blob[:i] + b'"version":9' + blob[i + len(b'"version":1') :]
    with pytest.raises(ArtifactError, match="bad signature"):
        verify(tampered, KEY)
    assert not _unpickled()


def test_wrong_key_rejected():
    with pytest.raises(ArtifactError, match="bad signature"):
        verify(_evil_blob(), b"another-key-of-enough-length-xx")
    assert not _unpickled()


@pytest.mark.parametrize("cut", [0, 5, 13, 40, -SIG_BYTES - 10, -SIG_BYTES + 1, -1])
def test_truncated_rejected(cut):
    blob = _evil_blob()
    short = blob[:cut] if cut else b""
    with pytest.raises(ArtifactError, match="truncated"):
        verify(short, KEY)
    assert not _unpickled()


def test_unsigned_rejected():
    blob = _evil_blob()
    with pytest.raises(ArtifactError, match="unsigned"):
        verify(blob[:-SIG_BYTES], KEY)
    header, payload = _split(blob)
    with pytest.raises(ArtifactError, match="unsigned"):
        verify(pack(header, payload, None), KEY)
    with pytest.raises(ArtifactError, match="unsigned"):  # a block of the right size that is no signature
        verify(blob[:-SIG_BYTES] + b"\x00" * SIG_BYTES, KEY)
    assert not _unpickled()


def test_bad_sha256_rejected_even_when_signed():
    header, payload = _split(_evil_blob())
    header["payload_sha256"] = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ArtifactError, match="sha256"):
        verify(pack(header, payload, KEY), KEY)
    assert not _unpickled()


def _resign(body: bytes) -> bytes:
    return body + b"SIG1" + hmac.new(KEY, body, hashlib.sha256).digest()


def test_wrong_format_version_rejected_even_when_signed():
    blob = _evil_blob()
    body = blob[:-SIG_BYTES]
    with pytest.raises(ArtifactError, match="format version 2"):
        verify(_resign(body[:8] + struct.pack(">H", FORMAT_VERSION + 1) + body[10:]), KEY)
    header, payload = _split(blob)
    mismatched = pack({**header, "format": 2}, payload, None)  # header says 2 ...
    mismatched = mismatched[:8] + struct.pack(">H", FORMAT_VERSION) + mismatched[10:]  # ... prefix says 1
    with pytest.raises(ArtifactError, match="format version mismatch"):
        verify(_resign(mismatched), KEY)
    assert not _unpickled()


def test_not_an_artifact_and_trailing_bytes_rejected():
    with pytest.raises(ArtifactError, match="bad magic"):
        verify(b"PK\x03\x04" + b"\x00" * 100, KEY)
    with pytest.raises(ArtifactError, match="unexpected"):
        verify(_evil_blob() + b"\x00", KEY)
    with pytest.raises(ArtifactError, match="must be bytes"):
        verify("text", KEY)  # type: ignore[arg-type]
    assert not _unpickled()


def test_keys_must_be_long_enough():
    with pytest.raises(ArtifactError, match="at least 16 bytes"):
        sign({}, key=b"short", model_name="m", kind="k", version=1)
    with pytest.raises(ArtifactError, match="at least 16 bytes"):
        verify(_evil_blob(), b"")
    assert not _unpickled()


def test_header_json_is_canonical_and_readable():
    blob = sign({"w": 1}, key=KEY, model_name="ctr", kind="river:logreg", version=2, kafka_offsets={1: 5})
    assert blob.startswith(MAGIC)
    header, _ = _split(blob)
    assert header["kafka_offsets"] == {"1": 5}
    assert ArtifactHeader.from_json(orjson.dumps(header)).kafka_offsets == {1: 5}
