"""Freshness: from a window's end (event time) to that window being queryable in serving.

The sketch job and serving (with its ingester) run on fresh topics; the generator produces at a
steady rate in real time (event_time ≈ now). For every 10 s window that starts after the
generator did, the script polls serving's distinct route for exactly that window every 50 ms
and records when it first answers with the window's events: queryable − window end = the delay.
It also reads aggregates.v1 itself (committed only) to split the delay into

* fire: ``emitted_at`` (processing time at which Flink computed the window) − window end
  (includes the watermark's out-of-orderness, 5 s by default);
* commit: visible to a read_committed consumer − emitted_at (the transactional sink commits
  on checkpoints, every 2 s);
* ingest: queryable in serving − visible in Kafka (ingester poll + Redis write).

Baseline, in the same run: the Kafka append-to-consume latency of the same events (a plain
consumer on events.v1: receive time − the message's append timestamp).

Target (shared/DESIGN.md): p99 ≤ window length + 3 s (13 s for 10 s windows).

    TRIBUTARY_TEST_PORT_OFFSET=300 .venv/bin/python benchmarks/freshness.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid

import _common as C  # noqa: I001

import httpx  # noqa: E402

from adapters.local import jobs, stack  # noqa: E402
from adapters.local.parts import settings_env  # noqa: E402
from app.cli.stack_cmds import sketch_job_args  # noqa: E402


class EventLatency(threading.Thread):
    """Baseline: append-to-consume latency of the events (plain consumer, latest offsets)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-fresh-{uuid.uuid4().hex[:8]}",
                           "auto.offset.reset": "latest", "enable.auto.commit": False})  # fmt: skip
        self.c.subscribe([topic])
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.measuring = False

    def run(self) -> None:
        while not self.stop.is_set():
            for m in self.c.consume(500, 0.005):  # short timeout: a batch wait would add latency
                if m.error() is None and self.measuring:
                    now = time.time() * 1000
                    self.latencies.append(now - m.timestamp()[1])
        self.c.close()


class AggregateTimes(threading.Thread):
    """emitted_at and visible-at of each window's ``hll|user_id|all`` record."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-fresh-agg-{uuid.uuid4().hex[:8]}",
                           "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                           "enable.auto.commit": False})  # fmt: skip
        self.c.subscribe([topic])
        self.windows: dict[int, dict] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        from app.contracts.aggregates import AggregateRecord

        while not self.stop.is_set():
            for m in self.c.consume(1_000, 0.1):
                if m.error() is not None or m.value() is None:
                    continue
                now = time.time() * 1000
                r = AggregateRecord.from_json(m.value())
                if r.kind == "hll" and r.field == "user_id" and r.dim == "all":
                    self.windows.setdefault(r.window_start, {"emitted_at": r.emitted_at, "visible_at": now, "events": r.events})
        self.c.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="50 s of events, 3-4 windows (about 2 min with the job's start-up)")
    p.add_argument("--seconds", type=float, default=300.0, help="how long the generator runs (real time)")
    p.add_argument("--rate", type=float, default=2_000.0, help="generator events per second (the stack default)")
    p.add_argument("--dims", default="all,country,device,category")
    p.add_argument("--keep-stack", action="store_true")
    p.add_argument("--tag", default="", help="results go to benchmarks/results/freshness[-TAG].json")
    a = p.parse_args()
    if a.quick:
        a.seconds = min(a.seconds, 50.0)

    with C.infrastructure(keep=a.keep_stack) as base:
        load0, foreign = C.load_snapshot(), C.foreign_cpu_share(C.stack_pids(base) | {os.getpid()})
        s = C.fresh_topics("fresh")
        s = s.model_copy(update={"redis_key_prefix": f"bench-fresh-{uuid.uuid4().hex[:6]}:"})
        name = f"bench-fresh-{uuid.uuid4().hex[:6]}"
        serving = stack.serving_part(s)
        gen = None
        C.fresh_taskmanager(base)
        result: dict = {}
        try:
            with C.console.status("submitting the sketch job and starting serving …"):
                jid = jobs.submit(s, "sketch_job", name, sketch_job_args(s) + ["--dims", a.dims])
                C.wait_running(s, jid)
                stack.start_part(serving)
            base_lat = EventLatency(s.kafka_bootstrap, s.topics.events)
            agg = AggregateTimes(s.kafka_bootstrap, s.topics.aggregates)
            base_lat.start()
            agg.start()
            time.sleep(3)  # consumers assigned before the first event
            env = {**os.environ, **settings_env(s), "PYTHONPATH": str(C.ROOT)}
            argv = [sys.executable, "-m", "app.cli.main", "generate", "--rate", str(a.rate), "--duration", str(a.seconds)]
            gen_log = open(s.log_dir / f"{name}-generator.log", "w")  # noqa: SIM115
            t_gen = time.time()
            gen = subprocess.Popen(argv, env=env, cwd=C.ROOT, stdout=gen_log, stderr=subprocess.STDOUT)  # noqa: S603
            base_lat.measuring = True
            load = C.LoadMeter()
            w_ms = s.window_seconds * 1000
            first_ws = (int(t_gen * 1000) // w_ms + 1) * w_ms  # first whole window after the generator started
            # last window that closes while the generator still runs: the watermark trails the newest
            # event by the out-of-orderness, and stops when the events stop
            last_end = (int((t_gen + a.seconds) * 1000) - s.out_of_orderness_ms - 2_000) // w_ms * w_ms
            queryable: dict[int, dict] = {}
            client = httpx.Client(base_url=s.serving_url, timeout=5)
            errors = 0
            total = (last_end - first_ws) // w_ms
            with C.progress() as progress:
                task = progress.add_task("windows queryable", total=total)
                deadline = last_end / 1000 + 60
                while time.time() < deadline and len(queryable) < total:
                    now_ms = time.time() * 1000
                    pending = [ws for ws in range(first_ws, last_end, w_ms) if ws + w_ms <= now_ms and ws not in queryable]
                    for ws in pending:
                        try:
                            r = client.get("/v1/aggregates/distinct", params={"field": "user_id", "start": ws, "end": ws + w_ms})
                        except httpx.HTTPError:
                            errors += 1
                            continue
                        t = time.time() * 1000
                        if r.status_code == 200 and r.json().get("events", 0) > 0:
                            queryable[ws] = {"queryable_at": t, "events": r.json()["events"]}
                        elif r.status_code != 200:
                            errors += 1
                    progress.update(task, completed=len(queryable))
                    time.sleep(0.05)
            load_info = load.read()
        finally:
            if gen is not None and gen.poll() is None:
                gen.terminate()
                gen.wait(20)
            for t in ("base_lat", "agg"):
                if t in locals():
                    locals()[t].stop.set()
            with C.console.status("stopping serving and the job …"):
                serving.process.stop()
                if "jid" in locals():
                    C.cancel_job(s, jid)
            C.drop_topics(s)

    rows, delays, fire, commit, ingest = [], [], [], [], []
    for ws in sorted(queryable):
        end = ws + w_ms
        q = queryable[ws]
        d = {"window_start": ws, "delay_ms": round(q["queryable_at"] - end), "events": q["events"]}
        k = agg.windows.get(ws)
        if k:
            d.update(fire_ms=k["emitted_at"] - end, commit_ms=round(k["visible_at"] - k["emitted_at"]),
                     ingest_ms=round(q["queryable_at"] - k["visible_at"]))
            fire.append(d["fire_ms"])
            commit.append(d["commit_ms"])
            ingest.append(d["ingest_ms"])
        delays.append(d["delay_ms"])
        rows.append(d)
    target = w_ms + 3000
    pct = lambda xs, q: round(C.percentile(xs, q)) if xs else None  # noqa: E731
    ours = {"windows": len(delays), "missing_windows": total - len(delays), "p50_ms": pct(delays, 0.5),
            "p99_ms": pct(delays, 0.99), "max_ms": max(delays) if delays else None,
            "meets_target": bool(delays) and len(delays) == total and pct(delays, 0.99) <= target,
            "breakdown_p50_ms": {"fire": pct(fire, 0.5), "commit": pct(commit, 0.5), "ingest": pct(ingest, 0.5)},
            "breakdown_p99_ms": {"fire": pct(fire, 0.99), "commit": pct(commit, 0.99), "ingest": pct(ingest, 0.99)},
            "poll_errors": errors}  # fmt: skip
    bl = base_lat.latencies
    baseline = {"events": len(bl), "p50_ms": round(C.percentile(bl, 0.5), 1) if bl else None,
                "p99_ms": round(C.percentile(bl, 0.99), 1) if bl else None, "max_ms": round(max(bl), 1) if bl else None}  # fmt: skip
    result = {
        "benchmark": "freshness", "quick": a.quick, "rate": a.rate, "seconds": a.seconds, "dims": a.dims,
        "window_seconds": s.window_seconds, "out_of_orderness_ms": s.out_of_orderness_ms,
        "target_p99_ms": target, "ours": ours, "baseline_kafka_append_to_consume": baseline, "windows": rows,
        "machine": {"start": load0, "during": load_info, "foreign_cpu_cores_at_start": foreign},
    }  # fmt: skip
    md = [f"## Freshness (generator {a.rate:,.0f} events/s in real time for {a.seconds:.0f} s; windows of {s.window_seconds} s; dims {a.dims})", "",
          C.md_table(["path", "samples", "p50 (ms)", "p99 (ms)", "max (ms)"], [
              ["window end → queryable in serving (ours)", f"{len(delays)} windows", ours["p50_ms"], ours["p99_ms"], ours["max_ms"]],
              ["Kafka append → consumed (baseline, same events)", f"{len(bl):,} events", baseline["p50_ms"], baseline["p99_ms"], baseline["max_ms"]],
          ]), "",
          f"Target p99 ≤ {target:,} ms: {'met' if ours['meets_target'] else 'MISSED'}"
          + (f" ({ours['missing_windows']} windows never became queryable)" if ours["missing_windows"] else "") + ".", "",
          "Where the delay goes (p50 / p99, ms): "
          f"fire (watermark: {s.out_of_orderness_ms} ms out-of-orderness + processing) {ours['breakdown_p50_ms']['fire']} / {ours['breakdown_p99_ms']['fire']}; "
          f"commit (checkpoint, transactional sink) {ours['breakdown_p50_ms']['commit']} / {ours['breakdown_p99_ms']['commit']}; "
          f"ingest (serving consumer → Redis) {ours['breakdown_p50_ms']['ingest']} / {ours['breakdown_p99_ms']['ingest']}.", "",
          f"Machine: {load0['cpus']} CPUs, load average {load0['loadavg']} at start, {load_info['loadavg_end']} at end, "
          f"machine CPU busy {load_info['machine_cpu_busy']:.0%} during the run; other processes used {foreign} cores at start."]  # fmt: skip
    C.write_results("freshness" + (f"-{a.tag}" if a.tag else ""), result, "\n".join(md))


if __name__ == "__main__":
    main()
