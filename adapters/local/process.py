"""Start, watch and stop one local process by the pid we recorded, and nothing else."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class StartError(RuntimeError):
    """A part of the stack could not start; the message names the part and its log file."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                state, _ppid, pgrp = f.read().rsplit(") ", 1)[1].split()[:3]
        except (OSError, ValueError, IndexError):
            continue
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry))
    return members


def _kill_group(pgid: int, grace: float) -> None:
    """SIGKILL what is left of a process group we started, after ``grace`` seconds to exit."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_members(pgid):
        time.sleep(0.1)
    if _group_members(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and _group_members(pgid):
            time.sleep(0.05)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class ManagedProcess:
    """One long-running process of the stack, tracked by a pid file under ``var/run``.

    ``marker`` (or one of several) must appear in the process's command line; a pid file whose
    pid was reused by an unrelated process is therefore never signalled.
    """

    name: str
    argv: list[str]
    run_dir: Path
    log_dir: Path
    marker: str | tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        markers = (self.marker,) if isinstance(self.marker, str) else self.marker
        cmdline = _cmdline(pid)
        if _pid_alive(pid) and any(m in cmdline for m in markers):
            return pid
        return None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self) -> int:
        existing = self.pid()
        if existing:
            return existing
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with open(self.log_file, "ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(  # noqa: S603 - argv built by us, no shell
                    self.argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.cwd,
                    env=env,
                    start_new_session=True,  # its own process group: we stop it and its children together
                )
            except OSError as exc:
                raise StartError(f"{self.name}: could not run {self.argv[0]!r}: {exc} (log: {self.log_file})") from exc
        self.pid_file.write_text(str(proc.pid))
        # Between fork and exec /proc/<pid>/cmdline is still the parent's: wait for the exec, so
        # the marker check (is_running, stop) sees the program itself.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None and self.pid() is None:
            time.sleep(0.02)
        return proc.pid

    def exited_early(self) -> bool:
        """True when the pid file exists but its process is gone (it crashed at start)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return False
        return not _pid_alive(pid)

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM the process group, then SIGKILL after ``timeout``. True if it was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        # Children may outlive the leader: Flink's Python workers (beam_boot) survive a SIGTERM
        # and were left behind, ~190 MB each, once their TaskManager had exited.
        _kill_group(pid, grace=0.0 if _pid_alive(pid) else 2.0)
        for orphaned in self._orphaned_groups():
            _kill_group(orphaned, grace=0.0)
        self._orphans_file.unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill9(self) -> None:
        """SIGKILL only the process itself (fault-injection tests). Its children are left running,
        as after a real crash; the next :meth:`stop` removes them."""
        pid = self.pid()
        if pid:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self._orphans_file, "a") as f:
                f.write(f"{pid}\n")
            os.kill(pid, signal.SIGKILL)

    @property
    def _orphans_file(self) -> Path:
        return self.run_dir / f"{self.name}.orphaned-groups"

    def _orphaned_groups(self) -> list[int]:
        try:
            return [int(line) for line in self._orphans_file.read_text().split()]
        except (OSError, ValueError):
            return []

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
