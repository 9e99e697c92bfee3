"""Airflow plugin: the returns-sync webhook endpoints inside the Airflow API server.

Serves `POST /returns-sync/webhooks/loop`, `POST /returns-sync/webhooks/loop/<merchant id>` (one
Loop shop per merchant) and `POST /returns-sync/webhooks/whiplash` (one per deployment, routed
to each event's merchant); see `include/returns_sync/webhooks/app.py` and docs/WEBHOOKS.md. The API server applies no Airflow
authentication to plugin apps; the endpoints check the vendors' HMAC signatures themselves.

Airflow imports plugins in every component, task processes included, so this module stays
light: the FastAPI app (and everything it imports) is built on the first request.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/returns-sync"


class LazyWebhookApp:
    """An ASGI app that builds the real webhook app when the first request arrives."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        with self._lock:
            if self._app is None:
                from include.returns_sync.webhooks.app import create_app

                self._app = create_app()
            return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app or self._build()
        await app(scope, receive, send)


class ReturnsSyncWebhooksPlugin(AirflowPlugin):
    """Mounts the webhook app under `/returns-sync` in the Airflow API server."""

    name = "returns_sync_webhooks"
    fastapi_apps = [
        {"app": LazyWebhookApp(), "url_prefix": URL_PREFIX, "name": "returns-sync webhooks"}
    ]
