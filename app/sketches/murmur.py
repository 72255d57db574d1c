"""MurmurHash3_x64_128 of many strings at once (numpy), bit for bit the hash DataSketches uses.

The sketch job updates HLL and count-min once per distinct value per group: ~10 library calls
per event, each hashing a string the window has already hashed for another group. Hashing each
distinct string of a window once, here, lets those sketches be filled with array operations
(:mod:`app.sketches.from_counts`). ``tests/unit/test_sketch_from_counts.py`` checks the result
against the library's own sketches, byte for byte.

Strings come as one UTF-8 buffer and ``n + 1`` offsets (Arrow's layout, and the packed window's).

>>> data, offsets = b"abc", np.array([0, 1, 3])          # "a", "bc"
>>> h1, h2 = murmur3_x64_128(data, offsets, seed=0)
>>> hex(int(h1[0]))                                       # the reference MurmurHash3("a", 0)
'0x85555565f6597889'
>>> len(h1), h1.dtype
(2, dtype('uint64'))
"""

from __future__ import annotations

import numpy as np

_C1, _C2 = np.uint64(0x87C37B91114253D5), np.uint64(0x4CF5AD432745937F)
_U = np.uint64


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << _U(r)) | (x >> _U(64 - r))


def _fmix(k: np.ndarray) -> np.ndarray:
    k = k ^ (k >> _U(33))
    k = k * _U(0xFF51AFD7ED558CCD)
    k = k ^ (k >> _U(33))
    k = k * _U(0xC4CEB9FE1A85EC53)
    return k ^ (k >> _U(33))


def padded_words(data: bytes | memoryview, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each string zero-padded to whole 16-byte blocks, as little-endian u64 words (n x 2b),
    and the byte lengths. Zero padding is what the reference hash does with a tail."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    n = len(lengths)
    width = (int(lengths.max(initial=0)) // 16 + 1) * 16
    source = np.frombuffer(data, dtype=np.uint8)
    column = np.arange(width)
    inside = column < lengths[:, None]
    padded = np.zeros((n, width), dtype=np.uint8)
    padded[inside] = source[(offsets[:-1, None] + column)[inside]]
    return padded.view("<u8").reshape(n, width // 8), lengths.astype(np.uint64)


def murmur3_x64_128(
    data: bytes | memoryview, offsets: np.ndarray, seed: int, padded: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Both 64-bit halves of MurmurHash3_x64_128 of every string, with a 64-bit ``seed``
    (``padded``: :func:`padded_words` of the same strings, when already at hand)."""
    words, lengths = padded or padded_words(data, offsets)
    h1 = np.full(len(lengths), seed & (2**64 - 1), dtype=np.uint64)
    h2 = h1.copy()
    blocks, tail = lengths // _U(16), lengths % _U(16)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1] // 2):
            k1 = _rotl(words[:, 2 * j] * _C1, 31) * _C2
            k2 = _rotl(words[:, 2 * j + 1] * _C2, 33) * _C1
            # a whole block: mix both halves into the state
            b1 = _rotl(h1 ^ k1, 27) + h2
            b1 = b1 * _U(5) + _U(0x52DCE729)
            b2 = _rotl(h2 ^ k2, 31) + b1
            b2 = b2 * _U(5) + _U(0x38495AB5)
            # the tail (the last, partial block): xor only, no state mixing
            t1 = h1 ^ np.where(tail > _U(0), k1, _U(0))
            t2 = h2 ^ np.where(tail > _U(8), k2, _U(0))
            whole, last = blocks > _U(j), blocks == _U(j)
            h1 = np.where(whole, b1, np.where(last, t1, h1))
            h2 = np.where(whole, b2, np.where(last, t2, h2))
        h1 ^= lengths
        h2 ^= lengths
        h1 = h1 + h2
        h2 = h2 + h1
        h1, h2 = _fmix(h1), _fmix(h2)
        h1 = h1 + h2
        h2 = h2 + h1
    return h1, h2


def leading_zeros(x: np.ndarray) -> np.ndarray:
    """Count of leading zero bits of each u64 (64 for zero).

    >>> leading_zeros(np.array([0, 1, 2**63, 2**40], dtype=np.uint64)).tolist()
    [64, 63, 0, 23]
    """
    x = np.asarray(x, dtype=np.uint64).copy()
    count = np.zeros(len(x), dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        high_empty = (x >> _U(64 - shift)) == _U(0)
        count += high_empty * shift
        x = np.where(high_empty, x << _U(shift), x)
    return count + (x == _U(0))
