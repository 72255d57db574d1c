"""How Tributary lays windows out in Redis: the stored value format and the Lua scripts.

See :mod:`adapters.redis_store` for the key layout and the roll-up design.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from app.sketches import decode_sketch
from app.windows import Window

log = logging.getLogger(__name__)
HEADER_MAX = 159  # bytes of a value that always hold its header (7 integers)

#: Write one base window unless a higher revision is stored; mark its coarser buckets dirty.
#: KEYS[7] (optional): the window's header key, set to the value's header with the same expiry.
PUT = """
local hkey = KEYS[7]
local function head() return string.match(ARGV[2], '^T1|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|') end
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    if hkey then redis.call('SET', hkey, head(), 'PX', ARGV[3]) end
    return 2
  end
  local rev = tonumber(string.match(cur, '^T1|(%d+)|'))
  if rev and rev > tonumber(ARGV[1]) then return 0 end
end
if hkey and redis.call('EXISTS', KEYS[5]) == 0 then  -- a new store: every window will have its header key
  redis.call('HSET', KEYS[5], 'layout', '2')
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if hkey then redis.call('SET', hkey, head(), 'PX', ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('SADD', KEYS[4], ARGV[5])
local hw = tonumber(redis.call('HGET', KEYS[5], 'hw') or '0')
if tonumber(ARGV[8]) > hw then redis.call('HSET', KEYS[5], 'hw', ARGV[8]) end
redis.call('HSET', KEYS[5], 'last_write', ARGV[9])
if #ARGV >= 10 then
  local v = redis.call('INCR', KEYS[6])
  for i = 10, #ARGV do redis.call('ZADD', KEYS[3], v, ARGV[i]) end
end
return 1
"""

#: Write a re-merged bucket; clear its dirty mark only if no newer mark came meanwhile.
#: KEYS[4] (optional): the bucket's header key, as in PUT.
REFRESH = """
local cur = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not cur then return 0 end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  if KEYS[4] then
    redis.call('SET', KEYS[4], string.match(ARGV[3], '^T1|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|'), 'PX', ARGV[4])
  end
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[6])
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
end
if tonumber(cur) == tonumber(ARGV[2]) then redis.call('ZREM', KEYS[2], ARGV[1]) return 1 end
return 2
"""

#: Give every window key in KEYS its header key (the key with 'h' for 'w' at ARGV[1]), same expiry.
BACKFILL_HEADS = """
local n = 0
local at = tonumber(ARGV[1])
for _, k in ipairs(KEYS) do
  local v = redis.call('GETRANGE', k, 0, 159)
  local ttl = redis.call('PTTL', k)
  local h = string.match(v, '^T1|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|')
  if h and ttl > 0 then
    redis.call('SET', string.sub(k, 1, at - 1) .. 'h' .. string.sub(k, at + 1), h, 'PX', ttl)
    n = n + 1
  end
end
return n
"""

#: The first ARGV[1] bytes (the header) of every key, in one command.
HEADERS = """
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('GETRANGE', k, 0, ARGV[1]) end
return out
"""

#: Serving's read: the header of every key after KEYS[1] (the dirty set), up to and including its
#: last '|' (``T1|rev|events|late|newest|emitted|nbase|mask|``; '' when missing), joined by
#: newlines into one reply; and, when ARGV[3] is '1', the dirty marks of the roll-up keys among
#: them (pairs of the key's index among them, from 0, and its mark), read with one ZMSCORE.
#: ARGV[1]: where the member name starts in a key (after the prefix and 'w'); ARGV[2]: the base
#: level's member prefix (``10|``), never marked dirty; ARGV[4]: HEADER_MAX.
HEADS = """
local heads, members, at, dirty = {}, {}, {}, {}
local off, base, check, hmax = tonumber(ARGV[1]), ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
for i = 2, #KEYS do
  local k = KEYS[i]
  local v = redis.call('GETRANGE', k, 0, hmax)
  if v == '' then
    heads[i - 1] = ''
  else
    heads[i - 1] = string.match(v, '^T1|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|') or '?'
  end
  if check then
    local m = string.sub(k, off)
    if string.sub(m, 1, #base) ~= base then
      members[#members + 1] = m
      at[#members] = i - 2
    end
  end
end
for lo = 1, #members, 1000 do  -- unpack() takes a few thousand values at most
  local hi = math.min(lo + 999, #members)
  local scores = redis.call('ZMSCORE', KEYS[1], unpack(members, lo, hi))
  for j = lo, hi do
    if scores[j - lo + 1] then dirty[#dirty + 1] = at[j]; dirty[#dirty + 1] = scores[j - lo + 1] end
  end
end
return {table.concat(heads, '\\n'), dirty}
"""


@dataclass(frozen=True)
class StoredWindow:
    start: int
    end: int
    revision: int
    events: int
    late_events: int
    newest_end: int  # end of the newest base window inside (freshness)
    emitted_at: int
    base_windows: int
    mask: int  # which children a roll-up bucket holds (bit i = child i); 1 for a base window
    sketch: bytes

    def to_bytes(self) -> bytes:
        head = (self.revision, self.events, self.late_events, self.newest_end, self.emitted_at,
                self.base_windows, self.mask)
        return b"T1|" + b"|".join(str(int(x)).encode() for x in head) + b"|" + self.sketch

    @classmethod
    def from_bytes(cls, data: bytes, window: Window, *, header_only: bool = False) -> StoredWindow:
        p = data.split(b"|", 8)
        if len(p) != 9 or p[0] != b"T1":
            raise ValueError("not a stored window")
        return cls(window.start, window.end, *(int(x) for x in p[1:8]), b"" if header_only else p[8])


@dataclass(frozen=True)
class WindowSet:
    """What :meth:`AggregateStore.windows` found: the cover actually spanned, and the windows in Redis."""

    start: int
    end: int
    planned: int
    windows: list[StoredWindow]


def merge_sketches(blobs: Iterable[bytes]):
    """Decode and merge sketch envelopes; ``None`` when there is nothing (or only undecodable data)."""
    out = None
    for blob in blobs:
        if not blob:
            continue
        try:
            sk = decode_sketch(blob)
            if out is None:
                out = sk
            else:
                out.merge(sk)
        except Exception as exc:  # noqa: BLE001 - one bad sketch must not break a merge
            log.warning("skipping an unmergeable sketch: %s", exc)
    return out


def series_id(kind: str, field: str, dim: str, dim_value: str) -> str:
    return f"{kind}|{field}|{dim}|{dim_value}"
