"""Shared plumbing of the stack benchmarks: the test stack on its own ports, cached events,
producing, Flink REST metrics, machine load, and writing results (JSON + Markdown).

Every benchmark honours ``TRIBUTARY_TEST_PORT_OFFSET`` (tests/support/stack.py): with
``TRIBUTARY_TEST_PORT_OFFSET=300`` it uses Kafka 19392, Redis 16679, Flink 18381, serving 18300
and var/test-300, so it never meets another engineer's stack.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

RESULTS = ROOT / "benchmarks" / "results"
console = Console(stderr=True)


# ---------------------------------------------------------------------------- machine load


def _proc_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


class LoadMeter:
    """Machine CPU busy share over a phase, and the load averages at its start and end."""

    def __init__(self) -> None:
        self.start_ticks = _proc_cpu_ticks()
        self.start_load = os.getloadavg()

    def read(self) -> dict[str, Any]:
        busy0, total0 = self.start_ticks
        busy1, total1 = _proc_cpu_ticks()
        share = (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
        return {
            "cpus": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in self.start_load],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "machine_cpu_busy": round(share, 3) if share is not None else None,
        }


def load_snapshot() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def foreign_cpu_share(own_pids: set[int], seconds: float = 2.0) -> float:
    """CPU (in cores) used by processes that are not ours during ``seconds``: other engineers' work."""

    def ticks() -> dict[int, int]:
        out = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as fh:
                    f = fh.read().rsplit(")", 1)[1].split()
                out[int(d)] = int(f[11]) + int(f[12])
            except (OSError, IndexError, ValueError):
                continue
        return out

    a = ticks()
    time.sleep(seconds)
    b = ticks()
    hz = os.sysconf("SC_CLK_TCK")
    used = sum(b[p] - a.get(p, b[p]) for p in b if p not in own_pids)
    return round(used / hz / seconds, 2)


# ---------------------------------------------------------------------------- the stack


def settings(**overrides):
    from tests.support.stack import test_settings

    return test_settings(**overrides)


@contextmanager
def infrastructure(keep: bool = False) -> Iterator[Any]:
    """Kafka, Redis and Flink on the test ports; stopped afterwards if this call started them."""
    from adapters.local import stack
    from tests.support.stack import start_infrastructure, stop_infrastructure, test_settings

    s = test_settings()
    was_up = all(p.healthy() for p in stack.infrastructure(s))
    if not was_up:
        with console.status("starting Kafka, Redis and Flink …"):
            start_infrastructure(s)
    try:
        yield s
    finally:
        if not was_up and not keep:
            with console.status("stopping the stack …"):
                stop_infrastructure(s)


def stack_pids(s) -> set[int]:
    from adapters.local import stack

    pids = set()
    for part in stack.infrastructure(s):
        pid = part.process.pid()
        if pid:
            pids.add(pid)
    return pids


def fresh_topics(name: str, partitions: int = 4):
    """Settings with a unique topic prefix, and its topics created."""
    from adapters import kafka_io
    from tests.support.stack import unique_prefix

    s = settings(topic_prefix=unique_prefix(name))
    kafka_io.ensure_topics(s.kafka_bootstrap, s.topics.all(), partitions=partitions, compacted=s.topics.compacted())
    return s


def drop_topics(s) -> None:
    from adapters import kafka_io

    try:
        kafka_io.delete_topics(s.kafka_bootstrap, s.topics.all())
    except Exception:  # noqa: BLE001 - best effort
        pass


# ---------------------------------------------------------------------------- events

#: Event time of the first pre-produced event: fixed, far from now (windows close by watermark only).
BASE_MS = 1_700_000_000_000
_HEADER = struct.Struct("<HI")


def cached_events(n: int, *, rate: float = 50_000.0, seed: int = 7, start_ms: int = BASE_MS) -> Path:
    """A file of ``n`` generator messages (key, value), made once and reused (the generator is
    ~60 k events/s on one core: too slow to run inside a throughput measurement)."""
    from app.generator import EventGenerator

    cache = ROOT / "var" / "bench-cache"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"events-s{seed}-r{int(rate)}-t{start_ms}-n{n}.bin"
    if path.exists():
        return path
    gen = EventGenerator(seed=seed, rate=rate, start_ms=start_ms, diurnal_amplitude=0.0)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh, _progress() as progress:
        task = progress.add_task(f"generating {n:,} events (cached in {cache.name}/)", total=n)
        for i, m in enumerate(gen.events(n), 1):
            fh.write(_HEADER.pack(len(m.key), len(m.value)))
            fh.write(m.key)
            fh.write(m.value)
            if i % 20_000 == 0:
                progress.update(task, completed=i)
        progress.update(task, completed=n)
    tmp.rename(path)
    return path


def read_events(path: Path) -> Iterator[tuple[bytes, bytes]]:
    with open(path, "rb") as fh:
        data = fh.read()
    pos, size, hs = 0, len(data), _HEADER.size
    unpack = _HEADER.unpack_from
    while pos < size:
        kl, vl = unpack(data, pos)
        pos += hs
        key = data[pos : pos + kl]
        pos += kl
        yield key, data[pos : pos + vl]
        pos += vl


def last_event_time(path: Path) -> int:
    import orjson

    last = 0
    for _, v in read_events(path):
        last = max(last, orjson.loads(v)["event_time"])
    return last


def produce_events(bootstrap: str, topic: str, events, total: int, label: str = "producing") -> float:
    """Produce every (key, value) with delivery reports; return the seconds it took."""
    from adapters.kafka_io import DeliveryTracker, producer

    p, tracker = producer(bootstrap), DeliveryTracker()
    t0 = time.monotonic()
    with _progress() as progress:
        task = progress.add_task(f"{label} → {topic}", total=total)
        for i, (key, value) in enumerate(events, 1):
            while True:
                try:
                    p.produce(topic, value=value, key=key, on_delivery=tracker)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % 5_000 == 0:
                p.poll(0)
                progress.update(task, completed=i)
        progress.update(task, completed=total)
        p.flush(120)
    if tracker.failed or tracker.delivered != total:
        raise RuntimeError(f"produced {tracker.delivered}/{total}, failed {tracker.failed}: {tracker.last_error}")
    return time.monotonic() - t0


def closing_events(topic_partitions: int, event_time: int) -> list[tuple[int, bytes]]:
    """One valid event per partition at ``event_time``: moves every partition's watermark past the data."""
    import orjson

    out = []
    for p in range(topic_partitions):
        ev = {"event_id": f"closer-{p}-{event_time}", "event_type": "impression", "event_time": event_time,
              "user_id": "closer", "session_id": "closer", "item_id": "closer", "category": "closer",
              "country": "US", "device": "mobile", "price": 0.0}  # fmt: skip
        out.append((p, orjson.dumps(ev)))
    return out


def produce_to_partitions(bootstrap: str, topic: str, messages: list[tuple[int, bytes]]) -> None:
    from adapters.kafka_io import producer

    p = producer(bootstrap)
    for part, value in messages:
        p.produce(topic, value=value, key=b"closer", partition=part)
    p.flush(30)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    try:
        meta = c.list_topics(topic, timeout=10)
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.topics[topic].partitions}
    finally:
        c.close()


# ---------------------------------------------------------------------------- Flink REST


def flink_get(s, path: str) -> Any:
    import httpx

    r = httpx.get(s.flink_rest_url + path, timeout=10)
    r.raise_for_status()
    return r.json()


def job_vertices(s, jid: str) -> list[dict]:
    return flink_get(s, f"/jobs/{jid}")["vertices"]


def vertex_metrics(s, jid: str, vid: str, names: list[str]) -> dict[str, float]:
    """Aggregated (sum over subtasks) metric values of one vertex."""
    q = ",".join(names)
    out = {}
    for m in flink_get(s, f"/jobs/{jid}/vertices/{vid}/subtasks/metrics?get={q}&agg=sum,max"):
        out[m["id"]] = m.get("sum", m.get("max"))
    return out


def vertex_metric_names(s, jid: str, vid: str) -> list[str]:
    return [m["id"] for m in flink_get(s, f"/jobs/{jid}/vertices/{vid}/subtasks/metrics")]


def wait_running(s, jid: str, timeout: float = 180) -> float:
    """Wait until the job and every task are RUNNING; return when (time.time())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            job = flink_get(s, f"/jobs/{jid}")
        except Exception:  # noqa: BLE001
            time.sleep(0.2)
            continue
        if job["state"] in ("FAILED", "CANCELED", "FINISHED"):
            raise RuntimeError(f"job {jid} is {job['state']}")
        if job["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in job["vertices"]):
            return time.time()
        time.sleep(0.2)
    raise TimeoutError(f"job {jid} not running after {timeout:.0f} s")


def cancel_job(s, jid: str) -> None:
    import httpx

    try:
        httpx.patch(f"{s.flink_rest_url}/jobs/{jid}?mode=cancel", timeout=10)
    except httpx.HTTPError:
        pass
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if flink_get(s, f"/jobs/{jid}")["state"] in ("CANCELED", "FAILED", "FINISHED"):
                return
        except Exception:  # noqa: BLE001
            return
        time.sleep(0.5)


# ---------------------------------------------------------------------------- results


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3g}"
        if isinstance(v, int):
            return f"{v:,}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, data: dict, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + "\n")
    print(json.dumps(data, indent=2, default=str))
    print()
    print(markdown)
    console.print(f"[green]wrote[/] {RESULTS / (name + '.json')} and .md")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    )


progress = _progress


# ---------------------------------------------------------------------------- CPU of process trees


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree_pids(root: int) -> list[int]:
    kids, out, todo = _children_map(), [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime (and those of waited-for children) of these processes, in seconds."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        except (OSError, IndexError, ValueError):
            continue
    return total / hz


class TreeCpu:
    """CPU seconds used by a process tree (e.g. the TaskManager and its Python workers) since start.

    Processes of the tree are remembered as they appear, so a worker that exits keeps counting
    its last reading."""

    def __init__(self, root: int | None) -> None:
        self.root = root
        self.last: dict[int, float] = {}
        self.base: dict[int, float] = {}
        self.sample(initial=True)

    def sample(self, initial: bool = False) -> float:
        if not self.root:
            return 0.0
        for p in tree_pids(self.root):
            v = cpu_seconds([p])
            if initial:
                self.base[p] = v
            self.last[p] = v
        return sum(v - self.base.get(p, 0.0) for p, v in self.last.items())


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def part_pid(s, name: str) -> int | None:
    from adapters.local import stack

    for part in stack.infrastructure(s):
        if part.name == name:
            return part.process.pid()
    return None


# ---------------------------------------------------------------------------- poor man's profiler

#: Frames (substring of "class.method") that name where a sampled Flink task thread is.
PROFILE_BUCKETS = (
    ("dev.tributary.flink.", "parse_event UDF (JSON parse + validation, Java)"),
    ("RowRowConverter", "parse_event UDF (result conversion)"),
    ("org.apache.flink.connector.kafka", "Kafka source (fetch, deserialize)"),
    ("org.apache.flink.kafka.shaded", "Kafka client"),
    ("org.apache.flink.runtime.state", "keyed state (window buffers)"),
    ("org.apache.flink.table.runtime.typeutils", "row serializers / copies"),
    ("org.apache.flink.table.runtime.arrow", "Arrow serialization"),
    ("org.apache.flink.table.runtime.operators.python", "Python operator (Java side: buffering, Arrow)"),
    ("org.apache.flink.streaming.api.operators.python", "Python operator (Java side: buffering, Arrow)"),
    ("org.apache.arrow", "Arrow serialization"),
    ("org.apache.beam", "Beam / gRPC to the Python worker"),
    ("io.grpc", "Beam / gRPC to the Python worker"),
    ("StreamExecCalc", "generated Calc code (filters, projections)"),
    ("org.apache.flink.runtime.io.network", "network buffers / channels"),
)


def jstack_profile(pid: int, thread_prefix, samples: int = 30, interval: float = 0.5, stop=None) -> dict:
    """Sample ``jstack`` of a JVM and attribute each RUNNABLE stack of the thread(s) named
    ``thread_prefix…`` to the first matching bucket (innermost frame first). With a list of
    prefixes, one result per prefix (from the same samples)."""
    import collections
    import subprocess

    prefixes = [thread_prefix] if isinstance(thread_prefix, str) else list(thread_prefix)
    buckets = {p: collections.Counter() for p in prefixes}
    taken = dict.fromkeys(prefixes, 0)
    for _ in range(samples):
        if stop is not None and stop.is_set():
            break
        try:
            out = subprocess.run(["jstack", str(pid)], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for block in out.split("\n\n"):
            prefix = next((p for p in prefixes if block.startswith(f'"{p}')), None)
            if prefix is None:
                continue
            lines = block.split("\n")
            taken[prefix] += 1
            if len(lines) < 2 or "RUNNABLE" not in lines[1]:
                buckets[prefix]["waiting (not runnable)"] += 1
                continue
            frames = [ln.strip()[3:] for ln in lines if ln.strip().startswith("at ")]
            label = "other"
            for f in frames:
                hit = next((name for key, name in PROFILE_BUCKETS if key in f), None)
                if hit:
                    label = hit
                    break
            buckets[prefix][label] += 1
        time.sleep(interval)
    results = {}
    for p in prefixes:
        n, b = taken[p], buckets[p]
        running = n - b.get("waiting (not runnable)", 0)
        results[p] = {"samples": n, "share": {k: round(v / n, 3) for k, v in b.most_common()} if n else {},
                      "share_of_runnable": {k: round(v / running, 3) for k, v in b.most_common()
                                            if k != "waiting (not runnable)"} if running else {}}
    return results[prefixes[0]] if isinstance(thread_prefix, str) else results


# ---------------------------------------------------------------------------- a lean HTTP/1.1 client

class HttpPool:
    """Keep-alive HTTP/1.1 GETs over raw asyncio streams: ~20x less client CPU than httpx, so an
    open-loop generator on this small machine measures the server, not itself."""

    def __init__(self, host: str, port: int, max_conns: int = 256) -> None:
        self.host, self.port, self.max_conns = host, port, max_conns
        self.idle: list = []
        self.opened = 0
        self.keepalive_s = 3.0

    async def _conn(self, fresh: bool = False):
        import asyncio

        now = time.monotonic()
        while self.idle and not fresh:
            reader, writer, used = self.idle.pop()
            if now - used < self.keepalive_s:
                return (reader, writer), True
            writer.close()  # the server drops idle keep-alive connections after ~5 s
            self.opened -= 1
        while self.opened >= self.max_conns:
            await asyncio.sleep(0.001)
            if self.idle:
                reader, writer, _ = self.idle.pop()
                return (reader, writer), True
        self.opened += 1
        try:
            return await asyncio.open_connection(self.host, self.port), False
        except Exception:
            self.opened -= 1
            raise

    async def get(self, target: str) -> tuple[int, bytes]:
        import asyncio

        for attempt in range(3):
            (reader, writer), reused = await self._conn(fresh=attempt > 0)
            try:
                writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                writer.close()
                self.opened -= 1
                # the server closed a keep-alive connection: try again on a fresh one
                if reused and not getattr(exc, "partial", b""):
                    continue
                raise
            except Exception:
                writer.close()
                self.opened -= 1
                raise
            self.idle.append((reader, writer, time.monotonic()))
            return status, body
        raise ConnectionError("could not send the request")

    async def close(self) -> None:
        for _, w, _ in self.idle:
            w.close()
        self.idle.clear()


def fresh_taskmanager(s) -> None:
    """Restart the TaskManager, so each measured job gets a fresh JVM.

    Each PyFlink job submitted to the session cluster leaves classes behind in the
    TaskManager's metaspace (seen here: ``OutOfMemoryError: Metaspace`` on the 5th job), and a
    job that ran out of heap can leave the JVM hanging; a fresh one also makes runs comparable.
    """
    from adapters.local import stack
    from tests.support.stack import start_infrastructure

    tm = next(p for p in stack.infrastructure(s) if p.name == "flink-taskmanager")
    with console.status("restarting the Flink TaskManager (fresh JVM for the next job) …"):
        if tm.process.is_running():
            tm.process.stop()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the JobManager notices the old one is gone
            try:
                if flink_get(s, "/overview").get("taskmanagers", 0) == 0:
                    break
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.5)
        for attempt in range(3):
            try:
                start_infrastructure(s)
                return
            except Exception:  # noqa: BLE001 - the health wait can misread a JVM that is still exec'ing
                if attempt == 2:
                    raise
                time.sleep(5)


def tasks_running_at(s, jid: str, fallback: float) -> float:
    """When the last task of the job switched to RUNNING (seconds since the epoch), from Flink's
    own per-subtask state timestamps; ``fallback`` if they cannot be read."""
    try:
        latest = 0
        for v in job_vertices(s, jid):
            times = flink_get(s, f"/jobs/{jid}/vertices/{v['id']}/subtasktimes")
            for sub in times.get("subtasks", []):
                latest = max(latest, int(sub.get("timestamps", {}).get("RUNNING", 0)))
        return latest / 1000 if latest else fallback
    except Exception:  # noqa: BLE001
        return fallback
