"""Airflow plugin: the returns-sync webhook endpoints inside the Airflow API server.

Serves `POST /returns-sync/webhooks/loop`, `POST /returns-sync/webhooks/loop/<merchant id>` (one
Loop shop per merchant) and `POST /returns-sync/webhooks/whiplash` (one per deployment, routed
to each event's merchant); see `include/returns_sync/webhooks/app.py` and docs/WEBHOOKS.md. The API server applies no Airflow
authentication to plugin apps; the endpoints check the vendors' HMAC signatures themselves.

Airflow imports plugins in every component, task processes included, so this module stays
light: the FastAPI app (and everything it imports) is built on the first request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.returns_sync.lazy_app import LazyApp

URL_PREFIX = "/returns-sync"


class ReturnsSyncWebhooksPlugin(AirflowPlugin):
    """Mounts the webhook app under `/returns-sync` in the Airflow API server."""

    name = "returns_sync_webhooks"
    fastapi_apps = [
        {
            "app": LazyApp("include.returns_sync.webhooks.app:create_app"),
            "url_prefix": URL_PREFIX,
            "name": "returns-sync webhooks",
        }
    ]
