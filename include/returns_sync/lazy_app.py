"""An ASGI app built on its first request, for the Airflow plugins.

Airflow imports plugins in every component, task processes included; the plugins' FastAPI apps
(webhooks, Returns views) import FastAPI, SQLAlchemy and the state store. Mounting a `LazyApp`
instead keeps a plugin's import to this module: the real app is built, once, when the API
server routes the first request to it.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any


class LazyApp:
    """Builds the app `factory` ("package.module:function") on the first request."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        with self._lock:
            if self._app is None:
                module, _, function = self.factory.partition(":")
                self._app = getattr(importlib.import_module(module), function)()
            return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app or self._build()
        await app(scope, receive, send)
