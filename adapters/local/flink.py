"""A standalone Flink cluster (one JobManager, one TaskManager) from the PyFlink wheel's distribution."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from app.config import Settings
from adapters.local.parts import Part, flink_home, flink_python
from adapters.local.process import ManagedProcess, StartError


#: In the command line of the start script (before exec) or of the Flink JVM (after).
FLINK_MARKERS = ("pyflink/bin/", "org.apache.flink.runtime.")


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for key in parents:
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = node[key] = {}
        node = nxt
    node[leaf] = value


def flink_conf(s: Settings) -> dict[str, Any]:
    """Our overrides of Flink's default config.yaml (flattened keys)."""
    var = s.var_dir / "flink"
    py = str(flink_python(s))
    return {
        "jobmanager.rpc.address": "localhost",
        "jobmanager.bind-host": "localhost",
        "jobmanager.memory.process.size": s.flink_jobmanager_memory,
        "taskmanager.bind-host": "localhost",
        "taskmanager.host": "localhost",
        "taskmanager.memory.process.size": s.flink_taskmanager_memory,
        "taskmanager.numberOfTaskSlots": s.flink_slots,
        "parallelism.default": s.flink_parallelism,
        "rest.address": s.flink_host,
        "rest.bind-address": s.flink_host,
        "rest.port": s.flink_rest_port,
        "jobmanager.rpc.port": s.flink_rpc_port,
        "io.tmp.dirs": str(var / "tmp"),
        "web.tmpdir": str(var / "web"),
        "blob.storage.directory": str(var / "blobs"),
        "state.backend.type": "hashmap",
        # Room in flight between the source and the window operator: while a window fires, its
        # operator waits for Python to build every sketch (~0.3 s per 20,000 events). Flink 2.2
        # fixes the buffers per channel (2 + 8 floating, at most 10 queued per subpartition), so
        # with 32 KB buffers the source stalled after ~300 records and source and Python took
        # turns on the two cores; 1 MB buffers hold ~12,000 records. (A buffer is sent when full
        # or after execution.buffer-timeout, 100 ms, so latency does not grow.)
        "taskmanager.memory.segment-size": "1mb",
        "taskmanager.memory.network.min": "256mb",
        # The heap, not managed memory, holds our state (hashmap backend) and window buffers; the
        # sketch job's Python workers run outside the managed budget (python.fn-execution.memory
        # .managed=false, flink_jobs/sketch_job.py). Flink's default (40 % managed) left a
        # ~670 MB task heap that ran out after ~2 M events at full speed.
        "taskmanager.memory.managed.size": "128mb",
        # Throughput collector: G1's concurrent marking cost ~7 µs of CPU per event in the sketch
        # job (window rows live one window, long enough to be promoted). The live set is small,
        # so ParallelGC's stop-the-world collections stay short. Shallower C2 inlining: the
        # planner's generated operators made C2 compile units that took ~1 s each, and the JIT
        # used ~0.5 of the 2 cores for the first minute of a job (JVM CPU 90 -> 64 s per 3 M events).
        "env.java.opts.taskmanager": s.flink_taskmanager_java_opts,
        "execution.checkpointing.dir": f"file://{var / 'checkpoints'}",
        "execution.checkpointing.savepoint-dir": f"file://{var / 'savepoints'}",
        # Python workers: the Flink venv's interpreter (PyFlink pins clash with our main venv).
        "python.executable": py,
        "python.client.executable": py,
        # Headroom for class metadata: Python UDF jobs load Beam/Arrow/gRPC (the jars themselves
        # are on the cluster classpath, see prepare_lib, so this no longer grows per job).
        "taskmanager.memory.jvm-metaspace.size": "384m",
        # A lost TaskManager is noticed in seconds, not the default 50 s (local processes only).
        "heartbeat.interval": 2000,
        "heartbeat.timeout": 10000,
        # A bad record must never restart the job; real failures restart with backoff.
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": "1 s",
        "restart-strategy.exponential-delay.max-backoff": "30 s",
    }


class FlinkJobManager(Part):
    def __init__(self, s: Settings) -> None:
        self.s = s
        self.conf_dir = s.var_dir / "flink" / "conf"
        home = flink_home(s) if (s.home / ".venv-flink").exists() else Path("/nonexistent")
        argv = ["bash", str(home / "bin" / "jobmanager.sh"), "start-foreground"]
        # bash execs java, so the pid we record is first the script's, then the JVM's.
        proc = ManagedProcess("flink-jobmanager", argv, s.run_dir, s.log_dir, marker=FLINK_MARKERS, env=flink_env(s))
        super().__init__("flink-jobmanager", proc, s.flink_rest_url, (s.flink_rest_port, s.flink_rpc_port))

    def prepare(self) -> None:
        if not shutil.which("java"):
            raise StartError("flink: no `java` on PATH; install OpenJDK 17")
        home = flink_home(self.s)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for extra in ("log4j-console.properties", "log4j-cli.properties", "log4j.properties", "logback-console.xml"):
            shutil.copy(home / "conf" / extra, self.conf_dir / extra)
        tree = yaml.safe_load((home / "conf" / "config.yaml").read_text()) or {}
        for key, value in flink_conf(self.s).items():
            _set_dotted(tree, key, value)
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
        for sub in ("tmp", "web", "blobs", "checkpoints", "savepoints"):
            (self.s.var_dir / "flink" / sub).mkdir(parents=True, exist_ok=True)
        prepare_lib(self.s)

    def healthy(self) -> bool:
        if not self.process.is_running():
            return False
        return rest_get(self.s, "/overview") is not None


class FlinkTaskManager(Part):
    def __init__(self, s: Settings) -> None:
        self.s = s
        home = flink_home(s) if (s.home / ".venv-flink").exists() else Path("/nonexistent")
        argv = ["bash", str(home / "bin" / "taskmanager.sh"), "start-foreground"]
        proc = ManagedProcess("flink-taskmanager", argv, s.run_dir, s.log_dir, marker=FLINK_MARKERS, env=flink_env(s))
        super().__init__("flink-taskmanager", proc, s.flink_rest_url + "/#/task-manager", ())

    def healthy(self) -> bool:
        if not self.process.is_running():
            return False
        overview = rest_get(self.s, "/overview")
        return bool(overview and overview.get("taskmanagers", 0) >= 1)


def flink_lib_dir(s: Settings) -> Path:
    return s.var_dir / "flink" / "lib"


def prepare_lib(s: Settings) -> Path:
    """The cluster's lib/: the distribution's jars plus flink-python, the Kafka connector and our
    UDFs, as links.

    On the cluster classpath they load once. Shipped with every job instead, each job got its own
    class loader holding ~45 MB of metaspace (Beam, gRPC, Arrow, Netty) that was never freed:
    the fifth submission killed the TaskManager with OutOfMemoryError: Metaspace.
    """
    home = flink_home(s)
    lib = flink_lib_dir(s)
    lib.mkdir(parents=True, exist_ok=True)
    for old in lib.glob("*.jar"):
        old.unlink()
    jars = [*home.glob("lib/*.jar"), *home.glob("opt/flink-python-*.jar"), *(s.jars_dir / "flink").glob("*.jar")]
    for jar in jars:
        (lib / jar.name).symlink_to(jar.resolve())
    return lib


def flink_env(s: Settings) -> dict[str, str]:
    return {
        "FLINK_LIB_DIR": str(flink_lib_dir(s)),
        "FLINK_CONF_DIR": str(s.var_dir / "flink" / "conf"),
        "FLINK_LOG_DIR": str(s.log_dir / "flink"),
        "FLINK_PID_DIR": str(s.run_dir / "flink"),
        "PYFLINK_CLIENT_EXECUTABLE": str(flink_python(s)),
        "JAVA_HOME": os.environ.get("JAVA_HOME", _java_home()),
    }


def _java_home() -> str:
    java = shutil.which("java")
    return str(Path(java).resolve().parent.parent) if java else ""


def rest_get(s: Settings, path: str) -> dict | None:
    import httpx

    try:
        r = httpx.get(s.flink_rest_url + path, timeout=3)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
