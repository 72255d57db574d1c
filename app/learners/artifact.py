"""The versioned, signed model artifact that travels on ``models.v1``.

Layout (all integers big-endian)::

    b"TRBMODEL" | u16 format | u32 header length | header JSON | u64 payload length | payload
    | b"SIG1" | HMAC-SHA256(key, everything before b"SIG1")

The header (:class:`ArtifactHeader`) is canonical JSON: model name, kind, version (monotonic int
per model name), created_at, trained_until_watermark, Kafka topic and offsets (next offset to read,
per partition), metrics, feature spec version, examples seen, and the payload's SHA-256.

The payload is a pickle (``payload_encoding="pickle"``: ``{"model": ..., "state": ...}``) or
opaque bytes (``"raw"``, e.g. tensors). Unpickling runs code, so it is allowed **only** because
the whole artifact is authenticated with a shared key: :func:`verify` checks framing, format
version, lengths, the HMAC (``hmac.compare_digest``) and the SHA-256 **before** anything is
unpickled, and raises :class:`ArtifactError` with the reason otherwise.

>>> key = b"k" * 32
>>> blob = sign({"w": 1.5}, key=key, model_name="ctr", kind="river:logreg", version=3,
...             trained_until_watermark=1_700_000_000_000, kafka_topic="examples.v1",
...             kafka_offsets={0: 120, 1: 98}, metrics={"log_loss": 0.41}, created_at=1)
>>> art = verify(blob, key)
>>> art.model, art.header.version, art.header.kafka_offsets
({'w': 1.5}, 3, {0: 120, 1: 98})
>>> verify(blob, b"another key" * 3)
Traceback (most recent call last):
...
app.learners.artifact.ArtifactError: bad signature: wrong key or tampered artifact
>>> verify(blob[:-36], key)
Traceback (most recent call last):
...
app.learners.artifact.ArtifactError: unsigned artifact
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from app.features import FEATURE_SPEC_VERSION

__all__ = ["Artifact", "ArtifactError", "ArtifactHeader", "FORMAT_VERSION", "pack", "sign", "verify"]

MAGIC = b"TRBMODEL"
FORMAT_VERSION = 1
SIG_TAG = b"SIG1"
SIG_BYTES = len(SIG_TAG) + hashlib.sha256().digest_size  # 36
_PREFIX = struct.Struct(">8sHI")  # magic, format, header length
_PAYLOAD_LEN = struct.Struct(">Q")
MIN_KEY_BYTES = 16


class ArtifactError(ValueError):
    """The artifact must not be used; the message says why."""


@dataclass(frozen=True)
class ArtifactHeader:
    model_name: str
    kind: str  # e.g. "river:logreg", "torch:dlrm"
    version: int
    created_at: int  # ms since the epoch
    payload_sha256: str
    trained_until_watermark: int | None = None  # event time (ms) of the newest example learned
    kafka_topic: str | None = None
    kafka_offsets: dict[int, int] = field(default_factory=dict)  # partition -> next offset to read
    metrics: dict[str, float] = field(default_factory=dict)
    feature_spec_version: int = FEATURE_SPEC_VERSION
    examples_seen: int = 0
    payload_encoding: str = "pickle"  # pickle | raw
    format: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        d = asdict(self)
        d["kafka_offsets"] = {str(p): o for p, o in self.kafka_offsets.items()}
        return orjson.dumps(d, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> ArtifactHeader:
        try:
            d = orjson.loads(data)
            d["kafka_offsets"] = {int(p): int(o) for p, o in (d.get("kafka_offsets") or {}).items()}
            known = cls.__dataclass_fields__.keys()
            header = cls(**{k: v for k, v in d.items() if k in known})
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"malformed header: {exc}") from None
        if not isinstance(header.version, int) or not isinstance(header.model_name, str):
            raise ArtifactError("malformed header: model_name must be a string and version an integer")
        return header


@dataclass(frozen=True)
class Artifact:
    """A verified artifact: its header, the model (or raw bytes) and the learner's extra state."""

    header: ArtifactHeader
    model: Any
    state: Any = None


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise ArtifactError(f"signing key must be at least {MIN_KEY_BYTES} bytes")


def pack(header: dict[str, Any], payload: bytes, key: bytes | None) -> bytes:
    """Low level: frame ``header`` (a dict, written as given) and ``payload``, and sign them.

    ``key=None`` writes an unsigned artifact, which :func:`verify` always rejects (for tests and
    inspection). Use :func:`sign`, which fills in the header correctly.
    """
    header_bytes = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
    fmt = header.get("format", FORMAT_VERSION)
    body = b"".join(
        (_PREFIX.pack(MAGIC, fmt, len(header_bytes)), header_bytes, _PAYLOAD_LEN.pack(len(payload)), payload)
    )
    if key is None:
        return body
    _check_key(key)
    return body + SIG_TAG + hmac.new(key, body, hashlib.sha256).digest()


def sign(
    model: Any,
    *,
    key: bytes,
    model_name: str,
    kind: str,
    version: int,
    state: Any = None,
    trained_until_watermark: int | None = None,
    kafka_topic: str | None = None,
    kafka_offsets: dict[int, int] | None = None,
    metrics: dict[str, float] | None = None,
    examples_seen: int = 0,
    created_at: int | None = None,
    feature_spec_version: int = FEATURE_SPEC_VERSION,
    raw: bool = False,
) -> bytes:
    """A signed artifact of ``model`` (pickled with ``state``; or, with ``raw=True``, bytes as is)."""
    _check_key(key)
    if raw:
        if not isinstance(model, bytes | bytearray):
            raise TypeError("raw=True needs the model as bytes")
        payload = bytes(model)
    else:
        payload = pickle.dumps({"model": model, "state": state}, protocol=pickle.HIGHEST_PROTOCOL)
    header = ArtifactHeader(
        model_name=model_name,
        kind=kind,
        version=int(version),
        created_at=int(time.time() * 1000) if created_at is None else int(created_at),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        trained_until_watermark=trained_until_watermark,
        kafka_topic=kafka_topic,
        kafka_offsets=dict(kafka_offsets or {}),
        metrics=dict(metrics or {}),
        feature_spec_version=feature_spec_version,
        examples_seen=int(examples_seen),
        payload_encoding="raw" if raw else "pickle",
    )
    return pack(orjson.loads(header.to_json()), payload, key)


def verify(blob: bytes, key: bytes) -> Artifact:
    """Authenticate ``blob`` with ``key`` and only then decode it; :class:`ArtifactError` if not."""
    _check_key(key)
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ArtifactError("artifact must be bytes")
    blob = bytes(blob)
    if len(blob) < _PREFIX.size:
        if not MAGIC.startswith(blob[: len(MAGIC)]):
            raise ArtifactError("not a Tributary model artifact (bad magic)")
        raise ArtifactError("truncated artifact: shorter than its fixed prefix")
    magic, fmt, header_len = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise ArtifactError("not a Tributary model artifact (bad magic)")
    if fmt != FORMAT_VERSION:
        raise ArtifactError(f"unsupported artifact format version {fmt} (this build reads {FORMAT_VERSION})")
    pos = _PREFIX.size + header_len
    if len(blob) < pos + _PAYLOAD_LEN.size:
        raise ArtifactError("truncated artifact: header cut short")
    (payload_len,) = _PAYLOAD_LEN.unpack_from(blob, pos)
    end = pos + _PAYLOAD_LEN.size + payload_len
    if len(blob) < end:
        raise ArtifactError("truncated artifact: payload cut short")
    trailer = blob[end:]
    if not trailer:
        raise ArtifactError("unsigned artifact")
    if len(trailer) < SIG_BYTES:
        raise ArtifactError("truncated artifact: signature cut short")
    if len(trailer) > SIG_BYTES:
        raise ArtifactError(f"malformed artifact: {len(trailer) - SIG_BYTES} unexpected bytes after the signature")
    if trailer[: len(SIG_TAG)] != SIG_TAG:
        raise ArtifactError("unsigned artifact: no signature block")
    expected = hmac.new(key, blob[:end], hashlib.sha256).digest()
    if not hmac.compare_digest(expected, trailer[len(SIG_TAG) :]):
        raise ArtifactError("bad signature: wrong key or tampered artifact")
    # Authenticated from here on: the bytes are what a key holder wrote.
    header = ArtifactHeader.from_json(blob[_PREFIX.size : _PREFIX.size + header_len])
    if header.format != fmt:
        raise ArtifactError(f"format version mismatch: prefix {fmt}, header {header.format}")
    payload = blob[pos + _PAYLOAD_LEN.size : end]
    if not hmac.compare_digest(hashlib.sha256(payload).hexdigest(), str(header.payload_sha256)):
        raise ArtifactError("payload sha256 mismatch")
    if header.payload_encoding == "raw":
        return Artifact(header=header, model=payload)
    if header.payload_encoding != "pickle":
        raise ArtifactError(f"unknown payload encoding {header.payload_encoding!r}")
    try:
        obj = pickle.loads(payload)  # noqa: S301 - authenticated above
    except Exception as exc:  # a signed but unloadable payload (e.g. a missing class)
        raise ArtifactError(f"payload does not load: {exc!r}") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise ArtifactError("payload is not a {'model': ..., 'state': ...} mapping")
    return Artifact(header=header, model=obj["model"], state=obj.get("state"))
