"""Aggregate query latency: every route, 1-hour and 7-day ranges, 200 requests/s open loop.

Fill: Redis gets 7 days (and a day more) of windows for every sketch the job writes (hll ×3,
frequent ×3, kll, cms ×2, reservoir, count; dim ``all``), with real sketches from app.sketches
built from generator events (20,000 events per 10 s window, the generator's default rate):

* the last 2–3 hours go through the real write path: ``AggregateStore.put_many`` of base
  windows, then ``AggregateStore.compact`` builds the 1-minute and 1-hour roll-ups;
* older history is written bucket by bucket through the store's own roll-up write (its
  ``REFRESH`` Lua script, as compaction does), with sketches merged from the same pool so
  their sizes are those of real 1-minute / 1-hour / 1-day merges. (Putting 7 days of 10 s
  windows and compacting them takes ~11 min on this machine and ~6 GB of transient Redis
  memory: the older base windows would have expired anyway.)

Then serving runs (``python -m serving`` through adapters.local.stack.serving_part, its own
Redis key prefix) and an asyncio open-loop generator sends each route, for each range,
at ``--rate`` requests/s for ``--seconds``. Every request asks a different range end (a random
10 s step in the last day), so serving's answer cache mostly misses and each answer merges its
cover (≈ 60 windows); latency is measured from the scheduled send time (no coordinated
omission). The client is a lean keep-alive HTTP/1.1 client on raw asyncio streams (httpx cost
~1 ms of client CPU per request, enough to fall behind schedule on this machine). Before each
open-loop phase, a few requests one at a time give the service time without queueing. Baseline, same rate, same keys: a plain Redis MGET of the windows of each request's
cover (redis.asyncio).

Target (shared/DESIGN.md): p99 ≤ 25 ms for any range up to 7 days, at 200 requests/s.

    TRIBUTARY_TEST_PORT_OFFSET=300 .venv/bin/python benchmarks/query_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import time
import uuid

from pathlib import Path

import _common as C  # noqa: I001

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from adapters.local import stack  # noqa: E402
from adapters.redis_layout import StoredWindow  # noqa: E402
from adapters.redis_store import AggregateStore, series_id  # noqa: E402
from app.contracts.aggregates import AggregateRecord  # noqa: E402
from app.sketches import decode_sketch, new_sketch  # noqa: E402
from app.windows import Window, children, floor_to, plan_cover, resolution_ladder  # noqa: E402

SERIES = [("hll", "user_id"), ("hll", "session_id"), ("hll", "item_id"), ("frequent", "item_id"),
          ("frequent", "category"), ("frequent", "user_id"), ("kll", "price"), ("cms", "item_id"),
          ("cms", "user_id"), ("reservoir", "*")]  # fmt: skip
COUNT = ("count", "*")
EVENTS_PER_WINDOW = 20_000
HOUR, DAY, W = 3_600_000, 86_400_000, 10_000
TARGET_MS = 25.0


# ---------------------------------------------------------------------------- fill


def build_pool(n: int, seed: int = 11) -> tuple[list[dict], str]:
    """``n`` distinct base-window sketch sets (one per series) from generator events; and an item id."""
    from app.generator import EventGenerator

    gen = EventGenerator(seed=seed, rate=EVENTS_PER_WINDOW / 10, start_ms=C.BASE_MS, diurnal_amplitude=0.0)
    pool, item = [], ""
    with C.progress() as progress:
        task = progress.add_task(f"building {n} windows of real sketches", total=n)
        for _ in range(n):
            msgs = list(gen.events(EVENTS_PER_WINDOW))
            evs = [orjson.loads(m.value) for m in msgs]
            sk = {}
            for kind, field in SERIES:
                s = new_sketch(kind)
                if kind == "kll":
                    s.update_many(np.array([e["price"] for e in evs], dtype="float64"))
                elif kind == "reservoir":
                    s.update_many([m.value.decode() for m in msgs])
                else:
                    s.update_many([e[field] for e in evs])
                sk[(kind, field)] = s.to_bytes()
            pool.append(sk)
            item = item or max(set(e["item_id"] for e in evs), key=[e["item_id"] for e in evs].count)
            progress.advance(task)
    return pool, item


def merged_pool(parts: list[dict], count: int) -> list[dict]:
    """Sketch sets standing for roll-ups of ``count`` children (merging ``count`` parts, cycled)."""
    out = []
    for j in range(len(parts)):
        sk = {}
        for key in parts[0]:
            acc = decode_sketch(parts[j][key])
            for i in range(1, count):
                acc.merge(decode_sketch(parts[(j + i) % len(parts)][key]))
            sk[key] = acc.to_bytes()
        out.append(sk)
    return out


def direct_bucket(store: AggregateStore, pipe, series: str, win: Window, blob: bytes) -> None:
    """Write one roll-up bucket the way compaction does (dirty mark, then the REFRESH script)."""
    member = f"{win.width // 1000}|{series}|{win.start}"
    pipe.zadd(store.dirty_key, {member: 1})
    ttl, trim, idx_ttl = store._ttl_args(win.width, win.end, store.reference_ms())
    store._refresh_script(keys=[store.key(win.width, series, win.start), store.dirty_key, store.index_key(win.width, series),
                                store.head_key(win.width, series, win.start)],
                          args=[member, 1, blob, ttl, win.start, trim, idx_ttl], client=pipe)  # fmt: skip


def fill(store: AggregateStore, t_end: int, days: int, pool_size: int) -> dict:
    t0 = time.perf_counter()
    pool, item = build_pool(pool_size)
    minute, hour, day = (merged_pool(pool, 6), None, None)
    hour = merged_pool(minute, 60)
    day = merged_pool(hour, 24)
    t_pool = time.perf_counter() - t0
    r = store.r
    r.hset(store.meta_key, "hw", t_end)
    real_from = floor_to(t_end - 2 * HOUR, HOUR)
    oldest = floor_to(t_end - (days + 1) * DAY, DAY)
    # older history: day buckets (whole days), hour buckets (to real_from), minute buckets (last day)
    plan = []
    for ds in range(oldest, floor_to(t_end, DAY), DAY):
        if ds + DAY <= real_from:
            plan.append((Window(ds, DAY), day, 24, 86_400 // 10))
    for hs in range(oldest, real_from, HOUR):
        plan.append((Window(hs, HOUR), hour, 60, 360))
    for ms in range(floor_to(t_end - DAY - HOUR, HOUR), real_from, 60_000):
        plan.append((Window(ms, 60_000), minute, 6, 6))
    t1 = time.perf_counter()
    with C.progress() as progress:
        task = progress.add_task("writing roll-up buckets (older history)", total=len(plan))
        pipe = r.pipeline(transaction=False)
        for i, (win, sets, nkids, nbase) in enumerate(plan):
            sk = sets[(win.start // win.width) % len(sets)]
            for kind, field in [*SERIES, COUNT]:
                blob = sk[(kind, field)] if kind != "count" else b""
                value = StoredWindow(win.start, win.end, 0, EVENTS_PER_WINDOW * nbase, 0, win.end, win.end, nbase,
                                     (1 << nkids) - 1, blob).to_bytes()  # fmt: skip
                direct_bucket(store, pipe, series_id(kind, field, "all", ""), win, value)
            if i % 50 == 49:
                pipe.execute()
                progress.update(task, completed=i + 1)
        pipe.execute()
        progress.update(task, completed=len(plan))
    t2 = time.perf_counter()
    # the recent past through the real write path: base windows, then compaction
    starts = list(range(real_from, t_end, W))
    with C.progress() as progress:
        task = progress.add_task("AggregateStore.put_many (last hours, 10 s windows)", total=len(starts))
        batch = []
        for i, ws in enumerate(starts):
            sk = pool[i % len(pool)]
            for kind, field in [*SERIES, COUNT]:
                batch.append(AggregateRecord(kind=kind, field=field, window_start=ws, window_end=ws + W,
                                             events=EVENTS_PER_WINDOW, sketch=sk.get((kind, field), b""),
                                             emitted_at=ws + W))  # fmt: skip
            if len(batch) >= 220:
                store.put_many(batch)
                batch = []
                progress.update(task, completed=i + 1)
        if batch:
            store.put_many(batch)
        progress.update(task, completed=len(starts))
    t3 = time.perf_counter()
    compacted = 0
    with C.console.status("AggregateStore.compact (1-minute and 1-hour roll-ups) …"):
        while True:
            k = store.compact(upto=t_end)
            compacted += k
            if not k:
                break
    store.backfill_heads()  # what serving's ingester does at start for a store written before header keys
    t4 = time.perf_counter()
    info = r.info("memory")
    return {"item": item, "pool_windows": pool_size, "direct_buckets": len(plan) * (len(SERIES) + 1),
            "base_windows_put": len(starts) * (len(SERIES) + 1), "compacted_buckets": compacted,
            "seconds": {"sketches": round(t_pool, 1), "direct": round(t2 - t1, 1), "put": round(t3 - t2, 1),
                        "compact": round(t4 - t3, 1)},
            "redis_used_memory_mb": round(info["used_memory"] / 2**20),
            "sketch_bytes_per_base_window": {f"{k}|{f}": len(pool[0][(k, f)]) for k, f in SERIES},
            "sketch_bytes_per_day_bucket": {f"{k}|{f}": len(day[0][(k, f)]) for k, f in SERIES}}  # fmt: skip


# ---------------------------------------------------------------------------- load


def routes(item: str) -> list[tuple[str, str, dict, tuple[str, str]]]:
    """(name, path, params, series read) per aggregate route."""
    return [
        ("distinct", "/v1/aggregates/distinct", {"field": "user_id"}, ("hll", "user_id")),
        ("top", "/v1/aggregates/top", {"field": "item_id", "k": 10}, ("frequent", "item_id")),
        ("quantiles", "/v1/aggregates/quantiles", {"field": "price", "q": [0.5, 0.99]}, ("kll", "price")),
        ("frequency", "/v1/aggregates/frequency", {"field": "item_id", "value": item}, ("cms", "item_id")),
        ("timeseries", "/v1/aggregates/timeseries", {"metric": "events"}, COUNT),
        ("samples", "/v1/samples", {"n": 100}, ("reservoir", "*")),
    ]


async def open_loop(send, rate: float, seconds: float) -> dict:
    """Call ``send(i)`` at ``rate``/s for ``seconds`` without waiting for answers; latency from the scheduled time."""
    loop = asyncio.get_running_loop()
    n = int(rate * seconds)
    lat: list[float] = []
    behind: list[float] = []
    errors: list[str] = []
    t0 = loop.time() + 0.05

    async def one(i: int, sched: float) -> None:
        behind.append(loop.time() - sched)
        try:
            err = await send(i)
        except Exception as exc:  # noqa: BLE001
            err = type(exc).__name__
        lat.append((loop.time() - sched) * 1000)
        if err:
            errors.append(err)

    tasks = []
    for i in range(n):
        sched = t0 + i / rate
        delay = sched - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, sched)))
    await asyncio.gather(*tasks)
    wall = loop.time() - t0
    return {"requests": n, "errors": len(errors), "error_kinds": sorted(set(errors))[:5],
            "achieved_rate": round(n / wall, 1), "p50_ms": round(C.percentile(lat, 0.5), 2),
            "p90_ms": round(C.percentile(lat, 0.9), 2), "p99_ms": round(C.percentile(lat, 0.99), 2),
            "max_ms": round(max(lat), 2), "send_behind_p99_ms": round(C.percentile(behind, 0.99) * 1000, 2)}  # fmt: skip


CLIENT_GC: list[float] = []  # this process's collector pauses (ms) during the current phase
_gc_t0 = [0.0]


def _gc_pause(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_t0[0] = time.perf_counter()
    else:
        CLIENT_GC.append((time.perf_counter() - _gc_t0[0]) * 1000)


gc.callbacks.append(_gc_pause)


def range_ends(t_end: int, n: int, seed: int) -> list[int]:
    rnd = random.Random(seed)
    return [t_end - rnd.randrange(0, DAY // W) * W for _ in range(n)]


async def drive(s, store: AggregateStore, t_end: int, item: str, rate: float, seconds: float, serving_pid: int | None,
                redis_pid: int | None = None) -> list[dict]:
    from urllib.parse import urlencode

    import redis.asyncio as aredis

    out = []
    n = int(rate * seconds)
    n_serial = max(20, min(100, n // 10))
    avail = store.available_from(t_end)
    pool = C.HttpPool(s.serving_host, s.serving_port)
    rclient = aredis.Redis(host=s.redis_host, port=s.redis_port, max_connections=256)

    def target(path: str, params: dict, start: int, end: int) -> str:
        return path + "?" + urlencode({**params, "start": start, "end": end}, doseq=True)

    try:
        # warm-up: connections, imports, the first decode of each series
        for name, path, params, _ in routes(item):
            for length in (HOUR, 7 * DAY):
                extra = {"step": 60 if length == HOUR else 3600} if name == "timeseries" else {}
                for e in range_ends(t_end, 5, 99):
                    await pool.get(target(path, {**params, **extra}, e - length, e))
        total = len(routes(item)) * 2
        with C.progress() as progress:
            task = progress.add_task(f"{rate:.0f} req/s × {seconds:.0f} s per route and range (+ serial, + MGET)", total=total * 3)
            for name, path, params, (kind, field) in routes(item):
                for label, length in (("1h", HOUR), ("7d", 7 * DAY)):
                    seed = sum(map(ord, name + label))
                    ends = range_ends(t_end, n, seed)
                    extra = {"step": 60 if length == HOUR else 3600} if name == "timeseries" else {}
                    targets = [target(path, {**params, **extra}, e - length, e) for e in ends]
                    sid = series_id(kind, field, "all", "")
                    keys = []
                    for e in ends:
                        cover = plan_cover(e - length, e, store.widths, avail)
                        keys.append([store.key(w.width, sid, w.start) for w in cover.windows])

                    # service time: one request at a time (no queueing), other range ends
                    serial = []
                    for e in range_ends(t_end, n_serial, seed + 1):
                        t0 = time.perf_counter()
                        await pool.get(target(path, {**params, **extra}, e - length, e))
                        serial.append((time.perf_counter() - t0) * 1000)
                    progress.advance(task)

                    async def ask(i: int, targets=targets):
                        status, _ = await pool.get(targets[i])
                        return None if status == 200 else f"HTTP {status}"

                    async def mget(i: int, keys=keys):
                        vals = await rclient.mget(keys[i])
                        return None if any(v is not None for v in vals) else "all keys missing"

                    gc.collect()
                    gc.freeze()  # this client's own collector must not stall the measurement
                    cpu, rcpu = C.TreeCpu(serving_pid), C.TreeCpu(redis_pid)
                    CLIENT_GC.clear()
                    res = await open_loop(ask, rate, seconds)
                    res["client_gc_max_ms"] = round(max(CLIENT_GC, default=0.0), 1)
                    res["serving_cpu_ms_per_request"] = round(cpu.sample() * 1000 / n, 2)
                    res["redis_cpu_ms_per_request"] = round(rcpu.sample() * 1000 / n, 2)
                    progress.advance(task)
                    CLIENT_GC.clear()
                    base = await open_loop(mget, rate, seconds)
                    base["client_gc_max_ms"] = round(max(CLIENT_GC, default=0.0), 1)
                    progress.advance(task)
                    sizes = [len(k) for k in keys]
                    out.append({"route": name, "range": label, "ours": res, "baseline_mget": base,
                                "serial_service_ms": {"p50": round(C.percentile(serial, 0.5), 2),
                                                      "p99": round(C.percentile(serial, 0.99), 2), "requests": len(serial)},
                                "windows_per_request": {"min": min(sizes), "max": max(sizes), "mean": round(sum(sizes) / len(sizes), 1)},
                                "meets_target": res["p99_ms"] <= TARGET_MS and res["errors"] == 0,
                                "loadavg_1m": round(os.getloadavg()[0], 2)})  # fmt: skip
    finally:
        await pool.close()
        await rclient.aclose()
    return out


def inprocess_profile(store: AggregateStore, t_end: int, item: str, n: int = 100) -> list[dict]:
    """The same queries on serving's QueryService in this process (no HTTP), under cProfile:
    time per answer, and the functions that take it (own time, share of the total)."""
    import cProfile
    import pstats

    from serving.query import QueryService, RangeQuery

    q = QueryService(store)
    calls = {
        "distinct": lambda rq, step: q.distinct("user_id", rq),
        "top": lambda rq, step: q.top("item_id", rq, 10),
        "quantiles": lambda rq, step: q.quantiles("price", rq, [0.5, 0.99]),
        "frequency": lambda rq, step: q.frequency("item_id", item, rq),
        "timeseries": lambda rq, step: q.timeseries("events", step, rq),
        "samples": lambda rq, step: q.samples(100, rq),
    }
    out = []
    for name, fn in calls.items():
        for label, length in (("1h", HOUR), ("7d", 7 * DAY)):
            step = 60 if length == HOUR else 3600
            prof, times = cProfile.Profile(), []
            for e in range_ends(t_end, n, sum(map(ord, name + label)) + 7):
                rq = RangeQuery(e - length, e)
                t0 = time.perf_counter()
                prof.enable()
                fn(rq, step)
                prof.disable()
                times.append((time.perf_counter() - t0) * 1000)
            st = pstats.Stats(prof).stats
            total = sum(v[2] for v in st.values()) or 1.0
            top = sorted(st.items(), key=lambda kv: kv[1][2], reverse=True)[:6]
            out.append({"route": name, "range": label, "p50_ms": round(C.percentile(times, 0.5), 2),
                        "p99_ms": round(C.percentile(times, 0.99), 2),
                        "top_own_time": [{"function": f"{Path(f).stem}:{fn_name}", "share": round(v[2] / total, 3)}
                                         for (f, _, fn_name), v in top]})  # fmt: skip
    return out


# ---------------------------------------------------------------------------- main


@contextlib.contextmanager
def kafka_and_redis(keep: bool = False):
    """Kafka (serving's ingester follows aggregates.v1) and Redis on the test ports, started if they
    are not up and stopped afterwards if this call started them. No Flink: nothing here runs a job,
    and its two idle JVMs would only take CPU from the measurement on this small machine."""
    from tests.support.stack import test_settings

    s = test_settings()
    parts = [p for p in stack.infrastructure(s) if p.name in ("kafka", "redis")]
    started = [p for p in parts if not p.healthy()]
    with C.console.status("starting Kafka and Redis …"):
        for p in started:
            stack.start_part(p)
    try:
        yield {pid for p in parts if (pid := p.process.pid())}
    finally:
        if not keep:
            for p in reversed(started):
                p.process.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 s per route and range (< 2 min once the stack is up)")
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--pool", type=int, default=6, help="distinct base windows of real sketches")
    p.add_argument("--keep-stack", action="store_true")
    p.add_argument("--tag", default="", help="results go to benchmarks/results/query_latency[-TAG].json")
    p.add_argument("--profile", action="store_true", help="also profile the queries in-process (cProfile, no HTTP)")
    a = p.parse_args()
    if a.quick:
        a.seconds, a.pool = min(a.seconds, 3.0), min(a.pool, 3)

    import redis

    with kafka_and_redis(keep=a.keep_stack) as own_pids:
        load0, foreign = C.load_snapshot(), C.foreign_cpu_share(own_pids | {os.getpid()})
        s = C.fresh_topics("query")
        s = s.model_copy(update={"redis_key_prefix": f"bench-query-{uuid.uuid4().hex[:6]}:"})
        r = redis.Redis(host=s.redis_host, port=s.redis_port, protocol=2)
        store = AggregateStore(r, resolution_ladder(s.window_seconds), base_seconds=s.window_seconds, key_prefix=s.redis_key_prefix)
        t_end = floor_to(int(time.time() * 1000), W)
        serving = stack.serving_part(s)
        try:
            filled = fill(store, t_end, a.days, a.pool)
            profile = None
            if a.profile:
                with C.console.status("profiling the queries in-process (cProfile) …"):
                    profile = inprocess_profile(store, t_end, filled["item"])
            with C.console.status("starting serving …"):
                stack.start_part(serving)
            load = C.LoadMeter()
            redis_pid = next((p.process.pid() for p in stack.infrastructure(s) if p.name == "redis"), None)
            results = asyncio.run(drive(s, store, t_end, filled["item"], a.rate, a.seconds, serving.process.pid(), redis_pid))
            load_info = load.read()
        finally:
            with C.console.status("stopping serving, clearing Redis …"):
                serving.process.stop()
                store.clear()
                r.close()
            C.drop_topics(s)

    data = {"benchmark": "query_latency", "quick": a.quick, "rate": a.rate, "seconds_per_phase": a.seconds,
            "days": a.days, "target_p99_ms": TARGET_MS, "fill": filled, "results": results, "inprocess_profile": profile,
            "machine": {"start": load0, "during": load_info, "foreign_cpu_cores_at_start": foreign}}  # fmt: skip
    rows = [[x["route"], x["range"], f"{x['windows_per_request']['mean']:.0f}", x["serial_service_ms"]["p50"], x["ours"]["p50_ms"], x["ours"]["p99_ms"],
             x["ours"]["max_ms"], x["ours"].get("client_gc_max_ms"), x["ours"]["errors"], x["baseline_mget"]["p50_ms"], x["baseline_mget"]["p99_ms"],
             round(x["ours"]["p99_ms"] / x["baseline_mget"]["p99_ms"], 1) if x["baseline_mget"]["p99_ms"] else None,
             x["ours"]["serving_cpu_ms_per_request"], x["ours"].get("redis_cpu_ms_per_request"),
             "yes" if x["meets_target"] else "NO"] for x in results]  # fmt: skip
    missed = [f"{x['route']} {x['range']}" for x in results if not x["meets_target"]]
    md = [f"## Aggregate query latency ({a.rate:.0f} requests/s open loop, {a.seconds:.0f} s per route and range; "
          f"{a.days} days of windows, every sketch kind)", "",
          C.md_table(["route", "range", "windows merged", "1-at-a-time p50 ms", "p50 ms", "p99 ms", "max ms", "client GC max ms", "errors", "MGET p50 ms", "MGET p99 ms",
                      "p99 / MGET p99", "serving CPU ms/req", "Redis CPU ms/req", f"p99 ≤ {TARGET_MS:.0f} ms"], rows), "",
          f"Target p99 ≤ {TARGET_MS:.0f} ms: " + ("met for every route and range." if not missed else "MISSED for " + ", ".join(missed) + "."), "",
          f"Fill: {filled['direct_buckets']:,} roll-up buckets written directly, {filled['base_windows_put']:,} base windows "
          f"through put_many + {filled['compacted_buckets']:,} buckets compacted; Redis {filled['redis_used_memory_mb']} MB.", "",
          f"Machine: {load0['cpus']} CPUs, load average {load0['loadavg']} at start, {load_info['loadavg_end']} at end, machine "
          f"CPU busy {load_info['machine_cpu_busy']:.0%} during the load; other processes used {foreign} cores at start."]  # fmt: skip
    if profile:
        md += ["", "### Where a query's time goes (QueryService in-process, cProfile, 100 queries each)", "",
               C.md_table(["route", "range", "p50 ms", "p99 ms", "top functions by own time"],
                          [[x["route"], x["range"], x["p50_ms"], x["p99_ms"],
                            "; ".join(f"{f['function']} {f['share']:.0%}" for f in x["top_own_time"])] for x in profile])]
    C.write_results("query_latency" + (f"-{a.tag}" if a.tag else ""), data, "\n".join(md))


if __name__ == "__main__":
    main()
