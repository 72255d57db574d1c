"""Choose the Flink design by measurement: Table API + pandas UDAFs vs DataStream + per-record Python.

Same pre-produced input for every design (N generator events, 5,000 events/s of event time, in
a one-partition topic so the DataStream design's single watermark sees events in order, plus
one closing event far ahead in event time). Each design runs alone on the cluster:

* ``datastream``: flink_jobs/alt_datastream_job.py — Python map (json + validation) → Python
  timestamps → key_by constant → 10 s tumbling window → Python ProcessWindowFunction building
  the HLL of user_id and the count (process mode; ``--thread-mode`` adds PyFlink's thread mode);
* ``table dims=all``: the deployed sketch job restricted to dimension ``all`` (it still builds
  all ten sketches, the feature KLLs, the DLQ and the late split: more work than the DataStream job);
* ``table full``: the deployed sketch job as ``tributary up`` runs it (four dimensions).

Measured per design: wall time from submission to the last window (``emitted_at``), start-up
(submission → all tasks RUNNING), events/s from RUNNING to the last window, CPU seconds of the
TaskManager JVM and of its Python workers, events per CPU-second, and events lost (windowed
counts vs N).

    TRIBUTARY_TEST_PORT_OFFSET=300 .venv/bin/python benchmarks/flink_designs.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import uuid

import _common as C  # noqa: I001

from adapters import kafka_io  # noqa: E402
from adapters.local import jobs  # noqa: E402
from app.cli.stack_cmds import sketch_job_args  # noqa: E402
from pipeline_throughput import Watcher  # noqa: E402


def run_design(base, events_topic: str, n: int, design: str, timeout: float) -> dict:
    C.fresh_taskmanager(base)
    s = C.fresh_topics(f"fd-{design.replace(' ', '-').replace('=', '-')}")
    name = f"bench-{design.replace(' ', '-').replace('=', '-')}-{uuid.uuid4().hex[:6]}"
    if design.startswith("datastream"):
        job = "alt_datastream_job"
        args = ["--bootstrap", s.kafka_bootstrap, "--events-topic", events_topic, "--aggregates-topic", s.topics.aggregates,
                "--group-id", f"{s.topic_prefix}alt", "--transactional-id-prefix", f"{s.topic_prefix}alt",
                "--window-seconds", str(s.window_seconds), "--out-of-orderness-ms", str(s.out_of_orderness_ms),
                "--idle-timeout-ms", str(s.idle_timeout_ms),
                "--python-mode", "thread" if "thread" in design else "process"]  # fmt: skip
    else:
        job = "sketch_job"
        args = sketch_job_args(s)
        args[args.index("--events-topic") + 1] = events_topic
        args += ["--dims", "all" if "dims=all" in design else "all,country,device,category"]
    tm_pid = C.part_pid(s, "flink-taskmanager")
    t_submit = time.time()
    state, jid = "ok", None
    watcher = Watcher(s.kafka_bootstrap, s.topics.aggregates)
    try:
        with C.console.status(f"[{design}] submitting …"):
            jid = jobs.submit(s, job, name, args)
            t_running = C.tasks_running_at(s, jid, C.wait_running(s, jid))
        cpu = C.TreeCpu(tm_pid)
        load = C.LoadMeter()
        with C.progress() as progress:
            task = progress.add_task(f"[{design}] events in closed windows", total=n)
            deadline = time.monotonic() + timeout
            last_check = 0.0
            stalled_since = None
            while watcher.events < n:
                watcher.poll()
                progress.update(task, completed=watcher.events)
                if time.monotonic() - last_check > 2:
                    last_check = time.monotonic()
                    st = C.flink_get(s, f"/jobs/{jid}")["state"]
                    if st != "RUNNING":
                        state = f"job {st}"
                        break
                    # the DataStream design drops late records: stop once every window has closed
                    src = C.vertex_metrics(s, jid, C.job_vertices(s, jid)[0]["id"], ["numRecordsOut"]).get("numRecordsOut") or 0
                    if src >= n + 1 and watcher.records and time.time() - watcher.last_seen > 15:
                        stalled_since = stalled_since or time.monotonic()
                        if time.monotonic() - stalled_since > 15:
                            state = f"only {watcher.events:,} of {n:,} events reached a window"
                            break
                if time.monotonic() > deadline:
                    state = f"timed out after {timeout:.0f} s ({watcher.events:,}/{n:,} events windowed)"
                    break
        cpu_total = cpu.sample()
        jvm = cpu.last.get(tm_pid, 0.0) - cpu.base.get(tm_pid, 0.0)
        load_info = load.read()
    except Exception as exc:  # noqa: BLE001 - report the design as failed, go on with the others
        state = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
        t_running, cpu_total, jvm, load_info = time.time(), 0.0, 0.0, {}
    finally:
        watcher.close()
        if jid:
            with C.console.status(f"[{design}] cancelling …"):
                C.cancel_job(s, jid)
        C.drop_topics(s)
    end = watcher.last_emitted / 1000 if watcher.last_emitted else None
    run_s = end - t_running if end else None
    return {
        "design": design, "state": state, "job_id": jid, "events": n, "events_windowed": watcher.events,
        "events_lost": n - watcher.events, "windows": len(watcher.counts),
        "startup_s": round(t_running - t_submit, 1),
        "wall_s_submit_to_last_window": round(end - t_submit, 1) if end else None,
        "run_s_running_to_last_window": round(run_s, 1) if run_s else None,
        "events_per_s": round(watcher.events / run_s) if run_s else None,
        "cpu_s": {"taskmanager_jvm": round(jvm, 1), "python_workers": round(cpu_total - jvm, 1)},
        "events_per_cpu_s": round(watcher.events / cpu_total) if cpu_total and watcher.events else None,
        "load": load_info,
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 k events, datastream and table dims=all only")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--event-rate", type=float, default=5_000.0, help="events per second of event time")
    p.add_argument("--thread-mode", action="store_true", help="also run the DataStream job in PyFlink's thread mode")
    p.add_argument("--repeats", type=int, default=2, help="rounds over all designs (interleaved); medians reported")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--keep-stack", action="store_true")
    p.add_argument("--tag", default="", help="results go to benchmarks/results/flink_designs[-TAG].json")
    a = p.parse_args()
    designs = ["datastream (process mode)", "table dims=all", "table full"]
    if a.thread_mode:
        designs.insert(1, "datastream (thread mode)")
    if a.quick:
        a.events, a.repeats, designs = min(a.events, 20_000), 1, ["datastream (process mode)", "table dims=all"]
    n = a.events

    with C.infrastructure(keep=a.keep_stack) as base:
        load0, foreign = C.load_snapshot(), C.foreign_cpu_share(C.stack_pids(base) | {C.os.getpid()})
        path = C.cached_events(n, rate=a.event_rate)
        last_t = C.last_event_time(path)
        src = C.settings(topic_prefix=f"t-fd-input-{uuid.uuid4().hex[:6]}.")
        topic = src.topics.events
        kafka_io.ensure_topics(src.kafka_bootstrap, [topic], partitions=1)
        try:
            C.produce_events(src.kafka_bootstrap, topic, C.read_events(path), n)
            C.produce_to_partitions(src.kafka_bootstrap, topic, C.closing_events(1, last_t + 600_000))
            runs = []
            for rnd in range(a.repeats):
                for d in designs:
                    runs.append({**run_design(base, topic, n, d, a.timeout), "round": rnd + 1})
            if any(r["state"] != "ok" for r in runs):
                C.fresh_taskmanager(base)
        finally:
            kafka_io.delete_topics(src.kafka_bootstrap, [topic])
        load1 = C.load_snapshot()

    def med(xs):
        xs = sorted(x for x in xs if x)
        return xs[len(xs) // 2] if xs else None

    summary = []
    for d in designs:
        rs = [r for r in runs if r["design"] == d]
        ok = [r for r in rs if r["state"] == "ok"]
        summary.append({
            "design": d, "rounds": len(rs), "ok": len(ok), "states": sorted({r["state"][:120] for r in rs}),
            "startup_s": med(r["startup_s"] for r in rs),
            "wall_s_submit_to_last_window": med(r["wall_s_submit_to_last_window"] for r in ok),
            "run_s_running_to_last_window": med(r["run_s_running_to_last_window"] for r in ok),
            "events_per_s": med(r["events_per_s"] for r in ok),
            "events_per_s_all": [r["events_per_s"] for r in ok],
            "events_per_cpu_s": med(r["events_per_cpu_s"] for r in ok),
            "jvm_cpu_us_per_event": med(round(r["cpu_s"]["taskmanager_jvm"] / n * 1e6) for r in ok),
            "python_cpu_us_per_event": med(round(r["cpu_s"]["python_workers"] / n * 1e6) for r in ok),
            "events_lost": max((r["events_lost"] for r in ok), default=None),
            "machine_cpu_busy": [r["load"].get("machine_cpu_busy") for r in ok if r.get("load")],
        })  # fmt: skip
    ref = next((x for x in summary if x["design"] == "table dims=all" and x["events_per_s"]), None)
    for x in summary:
        x["speed_vs_table_dims_all"] = round(x["events_per_s"] / ref["events_per_s"], 3) if ref and x["events_per_s"] else None
        x["cpu_efficiency_vs_table_dims_all"] = (round(x["events_per_cpu_s"] / ref["events_per_cpu_s"], 3)
                                                  if ref and x["events_per_cpu_s"] else None)
    data = {"benchmark": "flink_designs", "quick": a.quick, "events": n, "event_rate_event_time": a.event_rate,
            "partitions": 1, "repeats": a.repeats, "summary": summary, "runs": runs,
            "machine": {"start": load0, "end": load1, "foreign_cpu_cores_at_start": foreign}}  # fmt: skip
    rows = [[x["design"] + ("" if x["ok"] == x["rounds"] else f" ({x['ok']}/{x['rounds']} ok: {'; '.join(s for s in x['states'] if s != 'ok')[:90]})"),
             x["startup_s"], x["wall_s_submit_to_last_window"], x["run_s_running_to_last_window"], x["events_per_s"],
             ", ".join(f"{v:,}" for v in x["events_per_s_all"]), x["speed_vs_table_dims_all"], x["events_per_cpu_s"],
             x["cpu_efficiency_vs_table_dims_all"], x["jvm_cpu_us_per_event"], x["python_cpu_us_per_event"], x["events_lost"]]
            for x in summary]  # fmt: skip
    md = [f"## Flink designs on the same input ({n:,} events, {a.event_rate:,.0f} events/s of event time, 1 partition; "
          f"medians of {a.repeats} interleaved round(s))", "",
          C.md_table(["design", "start-up s", "submit → last window s", "running → last window s", "events/s",
                      "events/s each round", "× table dims=all", "events per CPU-s", "CPU efficiency × table dims=all",
                      "JVM µs/event", "Python µs/event", "events lost"], rows), "",
          f"Machine: {load0['cpus']} CPUs, load average {load0['loadavg']} at start, {load1['loadavg']} at end; "
          f"other processes used {foreign} cores at start. Machine CPU busy per run: "
          + "; ".join(f"{x['design']} {', '.join(f'{b:.0%}' for b in x['machine_cpu_busy'] if b is not None)}" for x in summary)]  # fmt: skip
    C.write_results("flink_designs" + (f"-{a.tag}" if a.tag else ""), data, "\n".join(md))


if __name__ == "__main__":
    main()
