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
        if _pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.5)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill9(self) -> None:
        """SIGKILL only the process itself (fault-injection tests)."""
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
