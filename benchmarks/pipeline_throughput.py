"""Ingest + sketch throughput of the Flink sketch job, against a plain consumer in the same run.

1. Pre-produce N generator events (cached in var/bench-cache/) into a fresh events topic, plus
   one closing event per partition far in the future of event time, so every window closes.
2. Baseline: a plain confluent-kafka consumer drains that topic (assigned partitions, batches of
   10 k, touching every value): events/s, and the consumer's CPU seconds.
3. Ours: the sketch job (adapters.local.jobs.submit with sketch_job_args) reads the same topic
   with a fresh group id, on a freshly restarted TaskManager; the clock starts when the last of
   its tasks switched to RUNNING (Flink's subtask timestamps: start-up excluded) and stops at
   the processing time at which the last window was emitted (the newest
   ``emitted_at`` of its aggregates, set by the Python builder of the fired window). Done when the
   per-window exact counts (``count`` records, dim ``all``) add up to N. Meanwhile, every second:
   consumer lag of the job's group (end offsets - offsets Flink committed on checkpoints), the
   TaskManager's heap, and the CPU seconds of the TaskManager JVM, its Python workers and Kafka.
   Afterwards: per-vertex busy / back-pressured / idle time (Flink REST), to show where the time goes.
4. The same with ``--dims all`` (one dimension instead of four): the cost of dimensions.

Target (shared/DESIGN.md): >= 50,000 events/s with bounded lag; ratio ours/baseline >= 0.5.

``--event-rate`` sets how dense the windows are (events per second of event time): the job keeps
every open window's events (as columns, raw events included) in the TaskManager heap, so 5,000
(50,000 per window) shows the memory limit. ``--profile`` samples ``jstack`` of the source and window-operator threads.
A dimension set may carry job flags after ``@`` (``--dims "all@--parallelism 1;all"``): an A/B of a job setting,
interleaved in one run (this VM's speed drifts too much for runs made minutes apart to compare).

    TRIBUTARY_TEST_PORT_OFFSET=300 .venv/bin/python benchmarks/pipeline_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import shlex
import time
import uuid
from collections.abc import Sequence

import _common as C  # noqa: I001  (puts the project root on sys.path)
from _cpu_probe import cpu_probe
from _throughput_stats import FLOOR, RATIO_GOAL, steady_rate, summarize

from adapters.local import jobs  # noqa: E402
from app.cli.stack_cmds import sketch_job_args  # noqa: E402
from flink_jobs.sql import SKETCHES  # noqa: E402

FULL_DIMS = "all,country,device,category"
#: What a complete window has in dimension ``all``: every sketch and the exact count.
REQUIRED = {(kind, field) for kind, field, _ in SKETCHES} | {("count", "*")}


# ---------------------------------------------------------------------------- baseline


def drain(bootstrap: str, topic: str, n: int) -> dict:
    """A plain consumer reading every message of ``topic`` (assigned partitions, from the start)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-drain-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})  # fmt: skip
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c0, t0 = C.self_cpu(), time.perf_counter()
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    got = nbytes = 0
    deadline = time.monotonic() + 600
    while got < n and time.monotonic() < deadline:
        for m in c.consume(10_000, 1.0):
            if m.error() is None:
                got += 1
                nbytes += len(m.value())
    dt, cpu = time.perf_counter() - t0, C.self_cpu() - c0
    c.close()
    return {"events": got, "seconds": round(dt, 3), "events_per_s": round(got / dt), "consumer_cpu_s": round(cpu, 2),
            "events_per_cpu_s": round(got / cpu) if cpu else None, "mb": round(nbytes / 1e6, 1)}


# ---------------------------------------------------------------------------- the job


class Watcher:
    """Reads the job's aggregates topic (committed only) and sums the exact per-window counts."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-watch-{uuid.uuid4().hex[:8]}",
                           "isolation.level": "read_committed", "enable.auto.commit": False})  # fmt: skip
        parts = self.c.list_topics(topic, timeout=10).topics[topic].partitions
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self.counts: dict[int, int] = {}  # window start -> events (dim all)
        self.seen: dict[int, set[tuple[str, str]]] = {}  # window start -> (kind, field) arrived (dim all)
        self.late: dict[int, int] = {}
        self.records = 0
        self.first_emitted: int | None = None
        self.last_emitted = 0
        self.last_seen = 0.0  # wall clock at which the newest record became visible

    def poll(self) -> None:
        from app.contracts.aggregates import AggregateRecord

        for m in self.c.consume(5_000, 0.2):
            if m.error() is not None or m.value() is None:
                continue
            self.records += 1
            self.last_seen = time.time()
            key = m.key() or b""
            if key.count(b"|") >= 4 and key.split(b"|", 3)[2] != b"all":
                continue  # only dimension `all` is read: parsing every record cost this process CPU the job needs
            r = AggregateRecord.from_json(m.value())
            if r.dim == "all" and r.kind != "late":
                self.seen.setdefault(r.window_start, set()).add((r.kind, r.field))
            if r.kind == "count" and r.dim == "all":
                self.counts[r.window_start] = r.events
            elif r.kind == "late":
                self.late[r.window_start] = r.late_events
            if r.kind != "late" and r.emitted_at:
                self.first_emitted = min(self.first_emitted or r.emitted_at, r.emitted_at)
                self.last_emitted = max(self.last_emitted, r.emitted_at)

    @property
    def events(self) -> int:
        """Events in windows that are complete: every sketch of dimension ``all`` arrived (the
        sketches of a window come from more than one window operator, see sql.WINDOW_PARTS)."""
        done = sum(n for ws, n in self.counts.items() if REQUIRED <= self.seen.get(ws, set()))
        return done + sum(self.late.values())

    def close(self) -> None:
        self.c.close()


def committed_lag(bootstrap: str, group: str, topic: str, ends: dict[int, int]) -> tuple[int, int]:
    """(sum of committed offsets, lag = end - committed) of a consumer group on ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in ends], timeout=5)
    finally:
        c.close()
    done = sum(max(tp.offset, 0) for tp in tps)
    return done, sum(ends.values()) - done


def tm_heap(s) -> dict | None:
    try:
        tms = C.flink_get(s, "/taskmanagers")["taskmanagers"]
        if not tms:
            return None
        vals = C.flink_get(s, f"/taskmanagers/{tms[0]['id']}/metrics?get=Status.JVM.Memory.Heap.Used,Status.JVM.Memory.Heap.Max")
        return {v["id"].rsplit(".", 1)[1].lower(): int(float(v["value"])) for v in vals}
    except Exception:  # noqa: BLE001
        return None


VERTEX_METRICS = ["accumulateBusyTimeMs", "accumulateBackPressuredTimeMs", "accumulateIdleTimeMs", "numRecordsIn", "numRecordsOut"]


def where_time_goes(s, jid: str, n: int) -> list[dict]:
    """Busy / back-pressured / idle per vertex (REST metrics refresh every ~10 s: wait for the final ones)."""
    verts = C.job_vertices(s, jid)
    src = verts[0]["id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        m = C.vertex_metrics(s, jid, src, ["numRecordsIn"])
        if (m.get("numRecordsIn") or 0) >= n:
            break
        time.sleep(1)
    out = []
    for v in verts:
        m = C.vertex_metrics(s, jid, v["id"], VERTEX_METRICS)
        busy, bp, idle = (m.get(k) or 0 for k in VERTEX_METRICS[:3])
        total = busy + bp + idle
        out.append({
            "vertex": v["name"][:90], "records_in": int(m.get("numRecordsIn") or 0),
            "busy_s": round(busy / 1000, 1), "backpressured_s": round(bp / 1000, 1), "idle_s": round(idle / 1000, 1),
            "busy_share": round(busy / total, 2) if total else None,
            "backpressured_share": round(bp / total, 2) if total else None,
        })  # fmt: skip
    return out


def parse_calls_in_plan(s, jid: str) -> dict:
    """How often the optimized plan evaluates the Java UDF ``parse_event`` per record, per vertex."""
    try:
        nodes = C.flink_get(s, f"/jobs/{jid}/plan")["plan"]["nodes"]
    except Exception:  # noqa: BLE001
        return {}
    return {n["description"].split("<br/>")[0][:60]: n["description"].count("parse_event(") for n in nodes
            if "parse_event(" in n["description"]}


def job_failures(s, jid: str) -> list[str]:
    try:
        d = C.flink_get(s, f"/jobs/{jid}/exceptions?maxExceptions=5")
    except Exception:  # noqa: BLE001
        return []
    return [e.get("exceptionName", "") + ": " + (e.get("stacktrace") or "").split("\n", 1)[0][:200]
            for e in d.get("exceptionHistory", {}).get("entries", [])]


def run_job(base, events_topic: str, n: int, dims: str, timeout: float, label: str, profile: bool = False,
            extra: Sequence[str] = ()) -> dict:
    """Submit the sketch job on ``events_topic`` (fresh output topics and group), time it to the last window.
    ``extra``: more job flags (an A/B of a job setting within one benchmark run)."""
    C.fresh_taskmanager(base)
    s = C.fresh_topics(f"tp-{label}")
    group = f"{s.topic_prefix}tributary-sketches"
    args = sketch_job_args(s)
    args[args.index("--events-topic") + 1] = events_topic
    args += ["--dims", dims, *extra]
    name = f"bench-{label}-{uuid.uuid4().hex[:6]}"
    ends = C.end_offsets(s.kafka_bootstrap, events_topic)
    tm_pid, kafka_pid = C.part_pid(s, "flink-taskmanager"), C.part_pid(s, "kafka")

    t_submit = time.time()
    with C.console.status(f"[{label}] submitting the sketch job (dims={dims}) …"):
        jid = jobs.submit(s, "sketch_job", name, args)
        t_running = C.tasks_running_at(s, jid, C.wait_running(s, jid))
    tm_cpu, kafka_cpu = C.TreeCpu(tm_pid), C.TreeCpu(kafka_pid)
    load = C.LoadMeter()
    watcher = Watcher(s.kafka_bootstrap, s.topics.aggregates)
    timeline, failures, state = [], [], "ok"
    profiled: dict = {}
    import threading

    sampling_done = threading.Event()
    if profile and tm_pid:

        def sample() -> None:
            time.sleep(3)
            profiled.update(C.jstack_profile(tm_pid, ["Source: events_raw", "GroupWindowAggregate"], samples=60,
                                             interval=0.5, stop=sampling_done))

        threading.Thread(target=sample, daemon=True).start()
    try:
        with C.progress() as progress:
            task = progress.add_task(f"[{label}] events in closed windows", total=n)
            deadline = time.monotonic() + timeout
            next_sample = 0.0
            while watcher.events < n:
                watcher.poll()
                progress.update(task, completed=watcher.events)
                now = time.monotonic()
                if now >= next_sample:
                    next_sample = now + 1.0
                    done, lag = committed_lag(s.kafka_bootstrap, group, events_topic, ends)
                    heap = tm_heap(s)
                    cpu = tm_cpu.sample()
                    timeline.append({
                        "t_s": round(time.time() - t_running, 1), "committed": done, "lag": lag,
                        "windowed_events": watcher.events, "heap_mb": round(heap["used"] / 2**20) if heap else None,
                        "tm_cpu_s": round(cpu, 1), "loadavg_1m": round(C.os.getloadavg()[0], 2),
                    })  # fmt: skip
                    st = C.flink_get(s, f"/jobs/{jid}")["state"]
                    failures = job_failures(s, jid)
                    if heap and heap["used"] > 0.97 * heap["max"]:
                        timeline[-1]["heap_full"] = True
                    if st != "RUNNING" or failures:
                        state = f"job {st} after {watcher.events:,} events windowed; " + "; ".join(failures[:2])
                        break
                if now > deadline:
                    state = f"timed out after {timeout:.0f} s with {watcher.events:,}/{n:,} events windowed"
                    break
        sampling_done.set()
        time.sleep(1 if profile else 0)
        t_visible = watcher.last_seen
        pids = C.tree_pids(tm_pid) if tm_pid else []
        cpu_total = tm_cpu.sample()
        jvm_cpu = tm_cpu.last.get(tm_pid, 0.0) - tm_cpu.base.get(tm_pid, 0.0) if tm_pid else 0.0
        k_cpu = kafka_cpu.sample()
        load_info = load.read()
        vertices = where_time_goes(s, jid, n) if state == "ok" else []
        parse_calls = parse_calls_in_plan(s, jid)
    finally:
        watcher.close()
        with C.console.status(f"[{label}] cancelling {name} …"):
            C.cancel_job(s, jid)
        C.drop_topics(s)
    seconds = (watcher.last_emitted / 1000 - t_running) if watcher.last_emitted else None
    ok = state == "ok" and seconds
    lags = [p["lag"] for p in timeline]
    return {
        "label": label, "dims": dims, "state": state, "job_id": jid,
        "startup_s": round(t_running - t_submit, 1),
        "events": n, "events_windowed": watcher.events, "windows": len(watcher.counts), "aggregate_records": watcher.records,
        "seconds_to_last_window": round(seconds, 2) if seconds else None,
        "events_per_s": round(n / seconds) if ok else None,
        "steady_events_per_s": steady_rate(timeline, n) if ok else None,
        "seconds_to_visible": round(t_visible - t_running, 2) if ok and t_visible else None,
        "first_window_emitted_s": round(watcher.first_emitted / 1000 - t_running, 2) if watcher.first_emitted else None,
        "cpu_s": {"taskmanager_jvm": round(jvm_cpu, 1), "python_workers": round(cpu_total - jvm_cpu, 1),
                  "kafka_broker": round(k_cpu, 1), "python_worker_processes": max(0, len(pids) - 1)},
        "events_per_cpu_s": round(n / cpu_total) if ok and cpu_total else None,
        "lag": {"max": max(lags) if lags else None, "final": lags[-1] if lags else None},
        "heap_mb_max": max((p["heap_mb"] or 0 for p in timeline), default=None),
        "timeline": timeline, "vertices": vertices, "parse_event_calls_in_plan": parse_calls,
        "source_thread_profile": profiled or None, "load": load_info,  # profile: thread prefix -> shares
    }  # fmt: skip


# ---------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 k events, one baseline repeat (< 2 min once the stack is up)")
    # 3 M: at ~40,000 events/s a 1 M run lasts 25 s, a third of it the JVM's JIT compiling the
    # job's code (C2 took 0.3 cores for the first ~40 s): too short to call the rate sustained.
    p.add_argument("--events", type=int, default=3_000_000)
    p.add_argument("--event-rate", type=float, default=2_000.0,
                   help="events per second of EVENT time in the pre-produced data (sets how many events fall in a "
                        "10 s window: the job buffers every row of an open window in the TaskManager heap)")
    p.add_argument("--dims", default=f"{FULL_DIMS};all",
                   help="';'-separated dimension sets to run; a set may add job flags after '@' "
                        "(e.g. 'all@--sink-linger-ms 0'): an A/B of a job setting, interleaved in one run")
    p.add_argument("--repeats", type=int, default=3, help="baseline drains before the first job run")
    # This VM's CPU speed drifts by ±25 % within seconds (_cpu_probe.py): one run per set proves little.
    p.add_argument("--runs", type=int, default=3, help="job runs per dimension set (interleaved across the sets)")
    p.add_argument("--timeout", type=float, default=900.0, help="per job run")
    p.add_argument("--keep-stack", action="store_true")
    p.add_argument("--profile", action="store_true",
                   help="sample jstack of the TaskManager during each job run (perturbs the timing a little)")
    p.add_argument("--tag", default="", help="results go to benchmarks/results/pipeline_throughput[-TAG].json")
    a = p.parse_args()
    if a.quick:
        a.events, a.repeats, a.dims, a.runs = min(a.events, 200_000), 1, "all", 1
    n = a.events
    dim_sets = [d for d in a.dims.split(";") if d]

    with C.infrastructure(keep=a.keep_stack) as base:
        load0 = C.load_snapshot()
        foreign = C.foreign_cpu_share(C.stack_pids(base) | {C.os.getpid()})
        path = C.cached_events(n, rate=a.event_rate)
        last_t = C.last_event_time(path)
        src = C.fresh_topics("tp-events")
        produce_s = C.produce_events(src.kafka_bootstrap, src.topics.events, C.read_events(path), n)
        C.produce_to_partitions(src.kafka_bootstrap, src.topics.events, C.closing_events(base.kafka_partitions, last_t + 600_000))
        total = n + base.kafka_partitions
        try:
            baselines = []
            for i in range(a.repeats):
                with C.console.status(f"baseline drain {i + 1}/{a.repeats} …"):
                    baselines.append(drain(src.kafka_bootstrap, src.topics.events, total))
            runs = []
            for run_set in [d for _ in range(a.runs) for d in dim_sets]:
                dims, _, flags = run_set.partition("@")
                label = "dims-" + ("all" if dims == "all" else "4")
                probe = cpu_probe()
                try:
                    runs.append(run_job(base, src.topics.events, n, dims, a.timeout, label, a.profile, shlex.split(flags)))
                    runs[-1]["cpu_probe_before_ms"] = probe["median_ms"]
                    runs[-1]["dims"] = run_set
                except Exception as exc:  # noqa: BLE001 - keep the other runs
                    runs.append({"label": label, "dims": run_set, "state": f"failed: {type(exc).__name__}: {str(exc)[:300]}",
                                 "events_per_s": None, "events_per_cpu_s": None, "lag": {"max": None, "final": None},
                                 "heap_mb_max": None, "startup_s": None, "vertices": [], "timeline": []})
                # a baseline drain right after each job run: ratios from neighbouring measurements
                with C.console.status("baseline drain (after the job) …"):
                    baselines.append(drain(src.kafka_bootstrap, src.topics.events, total))
        finally:
            C.drop_topics(src)
        if any(r["state"] != "ok" for r in runs):
            C.fresh_taskmanager(base)
        load1 = C.load_snapshot()

    best_base = max(b["events_per_s"] for b in baselines)
    med_base = sorted(b["events_per_s"] for b in baselines)[len(baselines) // 2]
    for r in runs:
        eps = r["events_per_s"]
        r["ratio_to_baseline_median"] = round(eps / med_base, 4) if eps else None
        r["meets_floor"] = bool(eps and eps >= FLOOR)
        r["meets_ratio_goal"] = bool(eps and eps / med_base >= RATIO_GOAL)
    summary = summarize(runs, med_base)
    data = {
        "benchmark": "pipeline_throughput", "runs_per_set": a.runs, "summary": summary, "quick": a.quick, "events": n, "event_rate_event_time": a.event_rate,
        "events_per_window": round(a.event_rate * base.window_seconds), "window_seconds": base.window_seconds,
        "events_bytes_avg": None, "produce_seconds": round(produce_s, 2), "kafka_partitions": base.kafka_partitions,
        "flink": {"parallelism": base.flink_parallelism, "taskmanager_memory": base.flink_taskmanager_memory},
        "baseline": {"runs": baselines, "median_events_per_s": med_base, "best_events_per_s": best_base},
        "ours": runs, "targets": {"floor_events_per_s": FLOOR, "ratio_goal": RATIO_GOAL},
        "machine": {"start": load0, "end": load1, "foreign_cpu_cores_at_start": foreign},
    }  # fmt: skip
    srows = [["plain confluent-kafka consumer (median of %d drains)" % len(baselines), med_base, None, "1.00", None]]
    for m in summary:
        if m["runs"]:
            srows.append([f"sketch job, dims={m['dims']} (median of {m['runs']} runs)", m["median_events_per_s"],
                          f"{m['min_events_per_s']:,}–{m['max_events_per_s']:,}", f"{m['median_ratio']:.3f}",
                          m["median_steady_events_per_s"]])  # fmt: skip
    rows = [["plain confluent-kafka consumer (median of %d)" % len(baselines), med_base, "1.00", None, None, None, None, None, None]]
    for r in runs:
        rows.append([
            f"sketch job, dims={r['dims']}" + ("" if r["state"] == "ok" else f" — {r['state'][:80]}"),
            r["events_per_s"], f"{r['ratio_to_baseline_median']:.3f}" if r["ratio_to_baseline_median"] else "-",
            r.get("steady_events_per_s"), r["events_per_cpu_s"], r.get("cpu_probe_before_ms"), r["lag"]["max"],
            r["heap_mb_max"], r["startup_s"],
        ])  # fmt: skip
    md = [f"## Pipeline throughput ({n:,} events, {a.event_rate:,.0f} events/s of event time = "
          f"{data['events_per_window']:,} events per {base.window_seconds} s window)", "",
          C.md_table(["pipeline", "events/s (median)", "range", "ratio (median)", "steady events/s (20–80 %, median)"], srows), "",
          f"Targets: ≥ {FLOOR:,} events/s (floor) and ratio ≥ {RATIO_GOAL}, judged on the median run. "
          + "; ".join(f"dims={m['dims']}: floor {'met' if m.get('meets_floor') else 'MISSED'}, ratio {'met' if m.get('meets_ratio_goal') else 'MISSED'}" for m in summary),
          "", "Each run (in the order run; CPU probe: median CPU-ms of a fixed loop just before it, higher = slower machine):", "",
          C.md_table(["pipeline", "events/s", "ratio", "steady events/s", "events per TM CPU-s", "CPU probe (ms)", "max lag (events)", "TM heap max (MB)", "job start-up (s)"], rows),
          "", f"Machine: {load0['cpus']} CPUs, load average {load0['loadavg']} at start, {load1['loadavg']} at end; "
          f"other processes used {foreign} cores when it started.", ""]  # fmt: skip
    for r in runs:
        if r["vertices"]:
            md += [f"### Where the time goes (dims={r['dims']}; Flink REST accumulated busy / back-pressured / idle)", "",
                   C.md_table(["vertex", "records in", "busy s", "back-pressured s", "idle s", "busy share"],
                              [[v["vertex"], v["records_in"], v["busy_s"], v["backpressured_s"], v["idle_s"], v["busy_share"]] for v in r["vertices"]]),
                   "", f"CPU seconds during the run: {r['cpu_s']}; `parse_event(` occurrences in the optimized plan "
                   f"(per record, per vertex): {r.get('parse_event_calls_in_plan')}", ""]  # fmt: skip
            for thread, prof in (r.get("source_thread_profile") or {}).items():
                md += [f"`{thread}…` task threads, {prof['samples']} jstack samples; of those where running: "
                       + ", ".join(f"{k} {v:.0%}" for k, v in prof["share_of_runnable"].items())
                       + f" (not runnable: {prof['share'].get('waiting (not runnable)', 0):.0%} of all samples)", ""]
        if r["timeline"]:
            pts = r["timeline"][:: max(1, len(r["timeline"]) // 12)]
            md += [f"Consumer lag (dims={r['dims']}; end offsets − offsets committed at checkpoints): "
                   + ", ".join(f"{p['t_s']:.0f}s: {p['lag']:,}" for p in pts), "",
                   f"TaskManager heap used (MB; dims={r['dims']}): "
                   + ", ".join(f"{p['t_s']:.0f}s: {p['heap_mb']}" for p in pts), ""]
    C.write_results("pipeline_throughput" + (f"-{a.tag}" if a.tag else ""), data, "\n".join(md))


if __name__ == "__main__":
    main()
