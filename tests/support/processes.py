"""Long-running child processes for the end-to-end tests, each in its own process group.

Airflow components fork (Celery pool workers, task supervisors, uvicorn workers), so stopping
only the parent would leave orphans. Every process here starts a new session; `stop_all`
signals the whole group, waits, then kills what is left. Airflow's task supervisor puts each
task process into a process group of its own, so the descendants are also tracked one by one
(`tree`) and killed with their group. `stop` ends one component the same way (SIGTERM, then
SIGKILL), `kill` SIGKILLs one component with everything it started (no chance to clean up),
`restart` starts it again. Output goes to one log file per process start, whose tail is shown
when something dies or a wait times out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")


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
    """One started process: its name, how it was started, its handle and log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = Path()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tree(self) -> list[psutil.Process]:
        """The process and every live descendant, in whatever process group they moved to."""
        return tree(self.popen.pid)


class ProcessGroup:
    """Starts named processes and guarantees they all stop (use as a context manager).

    `children` are the processes running now, one per name; `retired` those that were killed
    (their logs stay readable, and `leftovers` still checks them).
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.retired: list[Child] = []
        self._descendants: dict[int, psutil.Process] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Child:
        if any(child.name == name for child in self.children):
            raise ValueError(f"{name} is already running")
        started = sum(child.name == name for child in self.retired)
        log = self.log_dir / (f"{name}.log" if not started else f"{name}.{started + 1}.log")
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
        child = Child(name, popen, log, tuple(argv), dict(env), cwd)
        self.children.append(child)
        return child

    def child(self, name: str) -> Child:
        """The running process called `name`."""
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(f"no running process called {name!r}")

    def kill(self, name: str) -> list[int]:
        """SIGKILL `name`'s process group and every descendant; the pids that were killed.

        Everything is stopped (SIGSTOP) first, so nothing can fork or hand work over between
        listing the processes and killing them; then all of it is killed at once.
        """
        child = self.child(name)
        members = _freeze(child)
        _signal_group(child.popen.pid, signal.SIGKILL)
        for pgid in {_pgid(process) for process in members} - {None, child.popen.pid}:
            if pgid is not None:
                _signal_group(pgid, signal.SIGKILL)
        for process in members:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(members, timeout=10)
        self._retire(child)
        return [process.pid for process in members]

    def stop(self, name: str, grace: float = 20.0) -> None:
        """SIGTERM `name`'s process group, wait up to `grace`, then SIGKILL what is left of it.

        Its descendants in other process groups are left to `stop_all`, which kills them if
        they are still running then.
        """
        child = self.child(name)
        self._descendants.update((p.pid, p) for p in child.tree()[1:])
        _signal_group(child.popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.popen.wait(timeout=grace)
        _signal_group(child.popen.pid, signal.SIGKILL)  # stragglers in the group
        self._retire(child)

    def _retire(self, child: Child) -> None:
        child.popen.wait(timeout=10)
        self.children.remove(child)
        self.retired.append(child)

    def restart(self, name: str) -> Child:
        """Start the last process called `name` again, the same way (after `kill` or `stop`)."""
        last = next(c for c in reversed([*self.retired, *self.children]) if c.name == name)
        return self.start(name, last.argv, last.env, last.cwd)

    def assert_alive(self) -> None:
        """Fail with the dead process's log when any child exited on its own."""
        for child in self.children:
            if not child.alive():
                raise AssertionError(
                    f"{child.name} exited with code {child.popen.returncode}; "
                    f"last lines of {child.log}:\n{tail(child.log)}"
                )

    def wait_for(
        self, what: str, ready: Callable[[], T], timeout: float, interval: float = 0.5
    ) -> T:
        """Poll `ready` until it returns something true, and return that.

        Fails early when a child dies, and after `timeout` with the tail of every child's log.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_alive()
            if value := ready():
                return value
            time.sleep(interval)
        logs = "\n".join(f"--- {c.name}\n{tail(c.log, 15)}" for c in self.children)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")

    def stop_all(self, grace: float = 20.0) -> None:
        """SIGTERM every process group (newest first), then SIGKILL what outlives `grace`."""
        for child in self.children:
            self._descendants.update((p.pid, p) for p in child.tree()[1:])
        for child in reversed(self.children):
            _signal_group(child.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for child in [*self.retired, *self.children]:
            # The group can outlive its leader (a forked task still running): kill it too.
            if child.popen.poll() is None or group_members(child.popen.pid):
                _signal_group(child.popen.pid, signal.SIGKILL)
            if child.popen.poll() is None:
                child.popen.wait(timeout=10)
        # Task processes in groups of their own, reparented when their supervisor died.
        stragglers = [p for p in self._descendants.values() if _running(p)]
        for process in stragglers:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(stragglers, timeout=10)

    def leftovers(self) -> dict[int, list[int]]:
        """Process group -> live members, over everything ever started here (empty = clean)."""
        found: dict[int, list[int]] = {}
        for child in [*self.retired, *self.children]:
            if members := group_members(child.popen.pid):
                found[child.popen.pid] = members
        for pid, process in self._descendants.items():
            if _running(process):
                found.setdefault(pid, []).append(pid)
        return found

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def tree(pid: int) -> list[psutil.Process]:
    """Process `pid` and its live descendants ([] when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _freeze(child: Child) -> list[psutil.Process]:
    """SIGSTOP the child's group and every descendant until no new one appears; all of them."""
    frozen: dict[int, psutil.Process] = {}
    _signal_group(child.popen.pid, signal.SIGSTOP)
    while True:
        fresh = [p for p in child.tree() if p.pid not in frozen]
        if not fresh:
            return list(frozen.values())
        for process in fresh:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGSTOP)
            frozen[process.pid] = process


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
