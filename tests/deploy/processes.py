"""Long-running child processes for the end-to-end tests, each in its own process group.

Airflow components fork (Celery pool workers, task supervisors, uvicorn workers), so stopping
only the parent would leave orphans. Every process here starts a new session; `stop_all`
signals the whole group, waits, then kills what is left. Output goes to one log file per
process, whose tail is shown when something dies or a wait times out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Child:
    """One started process: its name, handle and log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class ProcessGroup:
    """Starts named processes and guarantees they all stop (use as a context manager)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Child:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches its children
            )
        child = Child(name, popen, log)
        self.children.append(child)
        return child

    def assert_alive(self) -> None:
        """Fail with the dead process's log when any child exited on its own."""
        for child in self.children:
            if not child.alive():
                raise AssertionError(
                    f"{child.name} exited with code {child.popen.returncode}; "
                    f"last lines of {child.log}:\n{tail(child.log)}"
                )

    def wait_for(
        self, what: str, ready: Callable[[], bool], timeout: float, interval: float = 0.5
    ) -> None:
        """Poll `ready` until it is true; fail early if a child dies, or after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_alive()
            if ready():
                return
            time.sleep(interval)
        logs = "\n".join(f"--- {c.name}\n{tail(c.log, 15)}" for c in self.children)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")

    def stop_all(self, grace: float = 20.0) -> None:
        """SIGTERM every process group (newest first), then SIGKILL what outlives `grace`."""
        for child in reversed(self.children):
            _signal_group(child.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for child in self.children:
            # The group can outlive its leader (a forked task still running): kill it too.
            if child.popen.poll() is None or group_members(child.popen.pid):
                _signal_group(child.popen.pid, signal.SIGKILL)
            if child.popen.poll() is None:
                child.popen.wait(timeout=10)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def group_members(pgid: int) -> list[int]:
    """Live process ids in process group `pgid` (from /proc), to prove nothing was left."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        # fields after the command: state, ppid, pgrp, ...; zombies are already dead
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members
