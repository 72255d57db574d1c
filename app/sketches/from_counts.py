"""DataSketches states built from counted values in a few array operations.

Why: the sketch job knows each window's exact value counts per group, and feeding them to the
library one call per distinct value per group was ~100 of the ~150 ms a 20,000-event window
took in Python. These functions build the same library state from a
:class:`~app.sketches.dictionary.StringDictionary` (hashed once per window), in the library's
own serialized form, which the library then reads back; the sketch classes call them from
``update_dictionary``.

- **Count-min** is linear: the counters are sums of weights per hashed bucket, so the state is
  the library's to the byte (same MurmurHash3 and the same per-row seeds, which the C++ code
  draws from ``std::default_random_engine``; emulated here).
- **HLL** registers are a max per slot, so the registers are the library's to the byte. The
  state is marked out-of-order, as every union result is: its estimate is the composite one,
  not the update-order-dependent HIP one (RSE 1.04/sqrt(K) instead of 0.84/sqrt(K), and the
  library's bounds say so). Groups that the library would still hold as a coupon list or set
  are left to the library, which is exact there.
- **Frequent items**: when a group has more distinct values than the sketch has counters, the
  library's Misra-Gries purges lose weight in an order-dependent way. With exact counts at hand
  we keep the ``capacity`` largest exactly and set the offset (every bound's width) to the
  largest count left out: every DataSketches invariant holds (lower bound = exact count, upper
  bound = count + offset, absent items <= offset), the bounds are tighter, and it merges with
  any library sketch. Groups that fit are left to the library (identical state).
"""

from __future__ import annotations

import functools
import struct

import datasketches as ds
import numpy as np

from app.sketches.dictionary import StringDictionary
from app.sketches.murmur import leading_zeros

#: The library's default hash seed (HLL, count-min).
DEFAULT_SEED = 9001
_M64 = 2**64 - 1


# --- count-min ---------------------------------------------------------------------------------


def _minstd_rand0(state: int):
    """libstdc++'s ``std::default_random_engine``: Lehmer, multiplier 16807, modulus 2**31 - 1."""
    state %= 2147483647
    state = state or 1
    while True:
        state = state * 16807 % 2147483647
        yield state


def _uniform_u64(engine, high: int) -> int:
    """libstdc++'s ``uniform_int_distribution<uint64_t>(0, high)`` over minstd_rand0 (1 .. 2**31 - 2)."""
    engine_range = 2147483646 - 1
    if engine_range > high:  # downscaling
        span = high + 1
        scaling = engine_range // span
        past = span * scaling
        while (value := next(engine) - 1) >= past:
            pass
        return value // scaling
    if engine_range == high:
        return next(engine) - 1
    while True:  # upscaling: one recursive draw for the high part, one for the low part
        step = engine_range + 1
        high_part = (step * _uniform_u64(engine, high // step)) & _M64
        value = (high_part + next(engine) - 1) & _M64
        if value <= high and value >= high_part:
            return value


@functools.lru_cache(maxsize=32)
def count_min_hash_seeds(num_hashes: int, seed: int = DEFAULT_SEED) -> tuple[int, ...]:
    """The per-row MurmurHash3 seeds of a DataSketches ``count_min_sketch(num_hashes, _, seed)``.

    >>> count_min_hash_seeds(3)
    (4480857443237086988, 6631161516192699342, 11350819014790094519)
    """
    engine = _minstd_rand0(seed)
    return tuple((_uniform_u64(engine, _M64) + seed) & _M64 for _ in range(num_hashes))


@functools.lru_cache(maxsize=32)
def _count_min_header(num_hashes: int, num_buckets: int, seed: int) -> bytes:
    """The first 16 bytes of a non-empty serialized ``count_min_sketch`` of this shape (the
    library's own, for its seed hash), with the empty flag cleared."""
    header = bytearray(ds.count_min_sketch(num_hashes, num_buckets, seed).serialize()[:16])
    header[3] = 0
    return bytes(header)


def count_min_state(
    num_hashes: int, num_buckets: int, seed: int, dictionary: StringDictionary, codes: np.ndarray, counts: np.ndarray
) -> bytes:
    """The serialized ``count_min_sketch(num_hashes, num_buckets, seed)`` after
    ``update(value, count)`` for each ``dictionary`` value at ``codes``."""
    header = _count_min_header(num_hashes, num_buckets, seed)

    def bucket_rows() -> np.ndarray:
        rows = [dictionary.hashes(s)[0] % np.uint64(num_buckets) for s in count_min_hash_seeds(num_hashes, seed)]
        return np.stack(rows).astype(np.int64)

    buckets = dictionary.cached(("cms", num_hashes, num_buckets, seed), bucket_rows)
    taken = dictionary.non_empty[codes]  # the library skips empty strings
    codes, weights = codes[taken], np.asarray(counts, dtype=np.float64)[taken]
    table = np.stack([np.bincount(row[codes], weights=weights, minlength=num_buckets) for row in buckets])
    return header + struct.pack("<d", weights.sum()) + table.astype("<f8").tobytes()


# --- HLL ---------------------------------------------------------------------------------------


def hll_coupons(dictionary: StringDictionary) -> np.ndarray:
    """Each entry's HLL coupon (26-bit slot address | value << 26), as the library computes it;
    -1 where the library would skip the value (missing or empty)."""

    def compute() -> np.ndarray:
        h1, h2 = dictionary.hashes(DEFAULT_SEED)
        values = np.minimum(leading_zeros(h2), 62) + 1
        coupons = (values << 26) | (h1 & np.uint64(2**26 - 1)).astype(np.int64)
        return np.where(dictionary.non_empty, coupons, -1)

    return dictionary.cached("hll-coupons", compute)


def hll_promotes(lg_k: int, coupons: int) -> bool:
    """Whether the library holds ``coupons`` distinct coupons as HLL registers (not a list/set).

    >>> hll_promotes(12, 384), hll_promotes(12, 385), hll_promotes(5, 8)
    (False, True, True)
    """
    if lg_k < 8:
        return coupons >= 8
    return coupons > 3 * 2 ** (lg_k - 3) // 4


_INVERSE_POWERS = np.ldexp(1.0, -np.arange(64))  # 2**-value for every register value


def hll8_state(lg_k: int, coupons: np.ndarray) -> bytes:
    """A compact, out-of-order HLL_8 sketch in HLL mode holding ``coupons``."""
    k = 1 << lg_k
    registers = np.zeros(k, dtype=np.uint8)
    np.maximum.at(registers, coupons & (k - 1), (coupons >> 26).astype(np.uint8))
    inverse = _INVERSE_POWERS[registers]
    low = registers < 32
    head = struct.pack(
        "<BBBBBBBBdddii",
        10, 1, 7, lg_k, 0,  # preamble ints, serial version, family (HLL), lg_k, lg_arr
        8 | 16,  # flags: compact | out of order
        0,  # current minimum (always 0 for HLL_8)
        2 | 2 << 2,  # mode HLL, type HLL_8
        0.0, float(inverse[low].sum()), float(inverse[~low].sum()),  # HIP accumulator (unused), kxq0, kxq1
        int(np.count_nonzero(registers == 0)), 0,  # registers at the minimum, aux count
    )
    return head + registers.tobytes()


# --- frequent items ----------------------------------------------------------------------------


def frequent_capacity(lg_max_k: int) -> int:
    """Counters a frequent-items sketch keeps: 3/4 of its largest map."""
    return 3 * (1 << lg_max_k) // 4


def frequent_strings_state(lg_max_k: int, dictionary: StringDictionary, codes: np.ndarray, counts: np.ndarray) -> bytes:
    """A serialized ``frequent_strings_sketch`` holding the ``capacity`` largest of ``counts``
    exactly, with offset = the largest count left out (``codes`` distinct, missing ones dropped)."""
    counts = np.asarray(counts, dtype=np.int64)
    keep = frequent_capacity(lg_max_k)
    if len(counts) > keep:
        order = np.argpartition(-counts, keep)
        kept, offset = order[:keep], int(counts[order[keep:]].max())
    else:
        kept, offset = np.arange(len(counts)), 0
    head = struct.pack(
        "<BBBBBBHIIqq",
        4, 1, 10, lg_max_k, lg_max_k, 0, 0,  # preamble longs, serial version, family, lg max/current map, flags
        len(kept), 0, int(counts.sum()), offset,
    )
    weights = counts[kept].astype("<u8").tobytes()
    return head + weights + dictionary.encoded_items(np.asarray(codes)[kept])
