"""A worker process that dies between "created in Whiplash" and "recorded" (SIGKILL).

`kill_after_create` runs the real task body `tasks.rma.create_rmas` in a child process (spawn:
a fresh interpreter, connections from the inherited environment). Its state store is patched so
that recording the first RMA announces itself in a marker file and then hangs; the parent
kills the child with SIGKILL at that moment. What is left is exactly what a worker killed by the
OOM killer or a node failure leaves: an RMA in Whiplash, a creation claim without its Whiplash
id in the state store, and no chance to clean up.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _create_then_hang(loop_return_ids: list[str], marker: str) -> None:
    from include.returns_sync import runtime
    from include.returns_sync.tasks import rma

    store = runtime.state_store()

    def hang_instead_of_recording(loop_return_id: str, *args: Any, **kwargs: Any) -> Any:
        Path(marker).write_text(loop_return_id)
        time.sleep(3600)  # killed here: the RMA exists in Whiplash, our record does not

    store.record_created = hang_instead_of_recording
    rma.create_rmas({"returns": [], "ids": loop_return_ids}, source="poll")


def kill_after_create(loop_return_ids: Sequence[str], workdir: Path, timeout: float = 120) -> str:
    """Run a creation task on these returns and SIGKILL it after its first Whiplash create.

    Returns the Loop return id whose RMA was created but never recorded.
    """
    marker = workdir / "created-not-recorded"
    marker.unlink(missing_ok=True)
    context = multiprocessing.get_context("spawn")
    worker = context.Process(
        target=_create_then_hang, args=(list(loop_return_ids), str(marker)), daemon=True
    )
    worker.start()
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists() or not marker.read_text():
            if not worker.is_alive():
                raise RuntimeError(f"the worker exited ({worker.exitcode}) before creating")
            if time.monotonic() > deadline:
                raise TimeoutError("the worker created no RMA in time")
            time.sleep(0.05)
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        assert worker.exitcode == -signal.SIGKILL, worker.exitcode
        return marker.read_text()
    finally:
        if worker.is_alive():
            worker.kill()
            worker.join(10)
