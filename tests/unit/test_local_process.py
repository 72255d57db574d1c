"""Local process management: by recorded pid only, clear errors naming the part and its log."""

from __future__ import annotations

import socket
import sys

import pytest

from adapters.local.parts import Part
from adapters.local.process import ManagedProcess, StartError
from adapters.local.stack import start_part


def _proc(tmp_path, argv, marker="sleep-marker"):
    return ManagedProcess("demo", argv, tmp_path / "run", tmp_path / "log", marker=marker)


def test_start_stop_by_recorded_pid(tmp_path):
    p = _proc(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)", "sleep-marker"])
    pid = p.start()
    assert p.is_running() and p.pid() == pid
    assert p.start() == pid  # idempotent
    assert p.stop(timeout=5)
    assert not p.is_running() and not p.pid_file.exists()
    assert not p.stop()


def test_a_reused_pid_of_another_program_is_never_signalled(tmp_path):
    p = _proc(tmp_path, [sys.executable, "-c", "pass"])
    p.run_dir.mkdir(parents=True)
    import os

    p.pid_file.write_text(str(os.getpid()))  # this pytest process: alive, but not ours
    assert p.pid() is None and not p.is_running()
    assert not p.stop()


def test_port_taken_names_the_part_and_its_log(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        part = Part("demo", _proc(tmp_path, [sys.executable, "-c", "pass"]), "url", (port,))
        with pytest.raises(StartError, match=rf"demo: port {port} is already taken.*demo.log"):
            start_part(part)


def test_a_process_that_dies_at_start_reports_its_log_tail(tmp_path):
    class Flaky(Part):
        def healthy(self):
            return False

    proc = _proc(tmp_path, [sys.executable, "-c", "print('boom: bad config'); raise SystemExit(3)"], marker="python")
    with pytest.raises(StartError, match=r"(?s)demo: exited.*demo.log.*boom: bad config"):
        start_part(Flaky("demo", proc, "url", ()))


_STUBBORN_CHILD = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(120)
"""


def _wait_for_pid_file(path, timeout=10.0) -> int:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError("child never started")


def _alive(pid: int) -> bool:
    from adapters.local.process import _pid_alive

    return _pid_alive(pid)


def test_stop_also_removes_children_that_ignore_sigterm(tmp_path):
    """Like Flink's Python workers: the leader exits on SIGTERM, its child does not."""
    child_file = tmp_path / "child.pid"
    p = _proc(tmp_path, [sys.executable, "-c", _STUBBORN_CHILD, str(child_file), "sleep-marker"])
    p.start()
    child = _wait_for_pid_file(child_file)
    assert _alive(child)
    assert p.stop(timeout=5)
    assert not _alive(child)


def test_stop_after_kill9_removes_the_crashed_process_children(tmp_path):
    child_file = tmp_path / "child.pid"
    p = _proc(tmp_path, [sys.executable, "-c", _STUBBORN_CHILD, str(child_file), "sleep-marker"])
    p.start()
    child = _wait_for_pid_file(child_file)
    p.kill9()  # a crash: the child is left running, as Flink's Python workers were
    import time

    time.sleep(0.3)
    assert _alive(child) and not p.is_running()
    child_file.unlink()
    p.start()  # restarted, a new process group
    second = _wait_for_pid_file(child_file)
    assert p.stop(timeout=5)
    assert not _alive(child) and not _alive(second)
