"""Submitting, finding and cancelling our PyFlink jobs on the local (or any) Flink cluster."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import httpx

from app.config import Settings
from adapters.local.flink import flink_env, rest_get
from adapters.local.parts import flink_home, flink_python
from adapters.local.process import StartError

PY_PACKAGES = ("app", "flink_jobs")


def python_archive(s: Settings) -> Path:
    """Zip our pure-Python packages for the Python workers (zipimport; no venv is shipped)."""
    out = s.var_dir / "flink" / "tributary_py.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for pkg in PY_PACKAGES:
            for path in sorted((s.home / pkg).rglob("*.py")):
                zf.write(path, path.relative_to(s.home))
    return out


def job_jars(s: Settings) -> list[Path]:
    flink_jars = s.jars_dir / "flink"
    connector = sorted(flink_jars.glob("flink-sql-connector-kafka-*.jar"))
    udfs = flink_jars / "tributary-flink-udfs.jar"
    missing = [str(p) for p in ([*connector[:1], udfs] if connector else [flink_jars / "flink-sql-connector-kafka-*.jar", udfs]) if not Path(p).exists()]
    if missing:
        raise StartError(f"flink job: missing jars {missing}; run `make setup`")
    # flink-python lives in opt/ of the distribution, not lib/: ship it with the job so the
    # cluster can run the Python operators (ClassNotFound ...PythonGroupWindowAggregate otherwise).
    python_jar = sorted((flink_home(s) / "opt").glob("flink-python-*.jar"))
    return [connector[-1], udfs, *python_jar[-1:]]


def running_jobs(s: Settings) -> dict[str, str]:
    """name -> job id of jobs that are RUNNING (or starting) on the cluster."""
    overview = rest_get(s, "/jobs/overview") or {}
    active = {"RUNNING", "CREATED", "INITIALIZING", "RESTARTING"}
    return {j["name"]: j["jid"] for j in overview.get("jobs", []) if j.get("state") in active}


def submit(s: Settings, job: str, name: str, args: list[str], timeout: float = 240, savepoint: str | None = None) -> str:
    """Submit ``flink_jobs/<job>.py`` detached unless a job of that name already runs; return its id.

    ``savepoint``: start from this savepoint (a job upgrade keeps its window state)."""
    existing = running_jobs(s).get(name)
    if existing:
        return existing
    job_jars(s)  # present (they reach the cluster through its lib/, see adapters.local.flink.prepare_lib)
    py = str(flink_python(s))
    argv = [
        "bash", str(flink_home(s) / "bin" / "flink"), "run", "-d", *(["-s", savepoint] if savepoint else []),
        "-m", f"{s.flink_host}:{s.flink_rest_port}",
        "-py", str(s.home / "flink_jobs" / f"{job}.py"),
        "-pyfs", str(python_archive(s)),
        "-pyexec", py, "-pyclientexec", py,
        "--job-name", name, *args,
    ]  # fmt: skip
    log = s.log_dir / f"submit-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, env={**_os_env(), **flink_env(s), "PYTHONPATH": str(s.home)}, cwd=s.home, timeout=timeout)  # noqa: S603
    text = log.read_text(errors="replace")
    if proc.returncode != 0 or "JobID" not in text:
        tail = "\n".join(text.splitlines()[-25:])
        raise StartError(f"flink job {name}: submission failed (log: {log})\n{tail}")
    jid = text.rsplit("JobID", 1)[1].split()[0].strip()
    if savepoint:
        # `flink run -d` prints the JobID before the JobManager restores anything: a savepoint
        # that does not map onto the new job (changed operator uids, no --allowNonRestoredState)
        # fails the job afterwards. An upgrade must either restore its state or fail here.
        import time

        want = savepoint.rstrip("/").rsplit("/", 1)[-1]
        deadline = time.monotonic() + timeout
        while True:
            restored = ((rest_get(s, f"/jobs/{jid}/checkpoints") or {}).get("latest") or {}).get("restored") or {}
            if restored.get("is_savepoint") and str(restored.get("external_path", "")).rstrip("/").endswith(want):
                break
            if (rest_get(s, f"/jobs/{jid}") or {}).get("state") in ("FAILED", "CANCELED", "FINISHED"):
                entries = ((rest_get(s, f"/jobs/{jid}/exceptions") or {}).get("exceptionHistory") or {}).get("entries") or [{}]
                cause = str(entries[0].get("stacktrace", ""))[:1500]
                raise StartError(f"flink job {name} ({jid}): did not start from savepoint {savepoint}\n{cause}")
            if time.monotonic() > deadline:
                raise StartError(f"flink job {name} ({jid}): not restored from savepoint {savepoint} after {timeout:.0f} s (restored: {restored or None})")
            time.sleep(1)
    return jid


def cancel(s: Settings, name: str, wait_s: float = 60) -> bool:
    """Cancel the job and wait until it has ended, so its task slots are free again."""
    import time

    jid = running_jobs(s).get(name)
    if not jid:
        return False
    try:
        httpx.patch(f"{s.flink_rest_url}/jobs/{jid}?mode=cancel", timeout=10)
    except httpx.HTTPError:
        return False
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and (rest_get(s, f"/jobs/{jid}") or {}).get("state") not in ("CANCELED", "FAILED", "FINISHED", None):
        time.sleep(0.5)
    return True


def tasks_running(s: Settings, name: str) -> bool:
    """True once every task of the job is deployed and running (the job itself reports RUNNING
    while its tasks still wait for free slots)."""
    jid = running_jobs(s).get(name)
    detail = rest_get(s, f"/jobs/{jid}") if jid else None
    return bool(detail and detail.get("vertices") and all(v.get("status") == "RUNNING" for v in detail["vertices"]))


def job_state(s: Settings, name: str) -> str | None:
    overview = rest_get(s, "/jobs/overview") or {}
    mine = sorted((j for j in overview.get("jobs", []) if j.get("name") == name), key=lambda j: j.get("start-time", 0))
    return mine[-1]["state"] if mine else None  # the newest attempt (an upgraded job reuses its name)


def _os_env() -> dict[str, str]:
    import os

    return dict(os.environ)


LABEL_JOB = "tributary-labels"


def label_job_args(s: Settings) -> list[str]:
    """Flags of ``flink_jobs/label_job.py`` for these settings (topics, windows, ids per prefix)."""
    t = s.topics
    return [
        "--bootstrap", s.kafka_bootstrap, "--events-topic", t.events, "--examples-topic", t.examples,
        "--metrics-topic", t.metrics, "--group-id", f"{s.topic_prefix}tributary-labels",
        "--transactional-id-prefix", f"{s.topic_prefix}tributary-labels",
        "--attribution-window-ms", str(s.attribution_window_ms), "--out-of-orderness-ms", str(s.out_of_orderness_ms),
        "--idle-timeout-ms", str(s.idle_timeout_ms), "--count-window-seconds", str(s.window_seconds),
    ]  # fmt: skip


def submit_label_job(s: Settings, name: str = LABEL_JOB, timeout: float = 240) -> str:
    """Submit the label join (events.v1 -> examples.v1) unless it already runs; return its job id."""
    return submit(s, "label_job", name, label_job_args(s), timeout=timeout)


def stop_with_savepoint(s: Settings, name: str, timeout: float = 120) -> str:
    """Stop the job gracefully, taking a savepoint; return the savepoint's path."""
    import time

    jid = running_jobs(s).get(name)
    if not jid:
        raise StartError(f"flink job {name}: not running")
    target = f"file://{s.var_dir / 'flink' / 'savepoints'}"
    trigger = httpx.post(f"{s.flink_rest_url}/jobs/{jid}/stop", json={"targetDirectory": target, "drain": False}, timeout=10)
    trigger.raise_for_status()
    request_id = trigger.json()["request-id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = rest_get(s, f"/jobs/{jid}/savepoints/{request_id}") or {}
        if status.get("status", {}).get("id") == "COMPLETED":
            op = status.get("operation", {})
            if "location" not in op:
                raise StartError(f"flink job {name}: savepoint failed: {str(op.get('failure-cause'))[:500]}")
            # Return only once the old job has ended: a resubmission under the same name must
            # not find it still "running" (submit() would hand back the old job's id).
            while time.monotonic() < deadline and (rest_get(s, f"/jobs/{jid}") or {}).get("state") not in ("FINISHED", "CANCELED", "FAILED"):
                time.sleep(0.5)
            return op["location"]
        time.sleep(1)
    raise StartError(f"flink job {name}: savepoint not done after {timeout:.0f} s")
