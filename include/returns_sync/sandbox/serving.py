"""Serve an ASGI app with uvicorn on 127.0.0.1 in a background thread (tests, demo, CLI)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from include.returns_sync.sandbox.asgi import ASGIApp


class RunningServer:
    """A uvicorn server running in a daemon thread; `stop()` shuts it down and joins."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, host: str, port: int):
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request_stop(self) -> None:
        """Ask the server to exit without waiting (to stop several servers in parallel)."""
        self._server.should_exit = True

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=timeout)


def serve_in_thread(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 10.0
) -> RunningServer:
    """Serve `app` on host:port (0 = an ephemeral port) and return once it accepts connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot serve the sandbox on {host}:{port}: {exc}") from exc
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host=host,
        port=bound_port,
        log_level="critical",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"sandbox server on {host}:{bound_port} did not start")
        time.sleep(0.005)
    return RunningServer(server, thread, host, bound_port)
