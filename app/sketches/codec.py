"""Versioned envelope around a sketch's bytes: ``b"TRB" | format version | kind | payload``.

>>> kind, payload = decode(encode("hll", b"abc"))
>>> kind, payload
('hll', b'abc')
>>> decode(b"nonsense")
Traceback (most recent call last):
...
ValueError: not a Tributary sketch (bad magic)
"""

from __future__ import annotations

MAGIC = b"TRB"
FORMAT_VERSION = 1
_KIND_LEN = 1


def encode(kind: str, payload: bytes) -> bytes:
    tag = kind.encode("ascii")
    if not 0 < len(tag) < 256:
        raise ValueError(f"bad sketch kind {kind!r}")
    return MAGIC + bytes([FORMAT_VERSION, len(tag)]) + tag + payload


def decode(data: bytes) -> tuple[str, bytes]:
    if len(data) < 5 or data[:3] != MAGIC:
        raise ValueError("not a Tributary sketch (bad magic)")
    version, tag_len = data[3], data[4]
    if version != FORMAT_VERSION:
        raise ValueError(f"unsupported sketch format version {version} (this build reads {FORMAT_VERSION})")
    tag_end = 5 + tag_len
    if len(data) < tag_end:
        raise ValueError("truncated sketch envelope")
    return data[5:tag_end].decode("ascii"), data[tag_end:]


def decode_sketch(data: bytes):
    """Rebuild whichever sketch ``data`` holds, by the kind in its envelope."""
    from app.sketches.registry import SKETCH_TYPES

    kind, payload = decode(data)
    try:
        cls = SKETCH_TYPES[kind]
    except KeyError:
        raise ValueError(f"unknown sketch kind {kind!r}") from None
    return cls.from_payload(payload)
