"""Airflow plugin: the Returns views (issue 14) inside the Airflow UI.

* "Returns" in Airflow's navigation: an external view of our own pages (Search, Queues, Trend),
  served by `include/returns_sync/views/app.py` at `/returns-sync-ui` in the API server.
* A "Returns sync" tab on every DAG run page (destination `dag_run`); on a run of a DAG that
  is not ours the tab says so.

The pages are same-origin with Airflow's UI, so the browser sends Airflow's `_token` session
cookie with every request; the app resolves it with Airflow's `get_user` (logged out: 401)
and asks the auth manager which merchants' DAGs the user may read. Its own mount point, not the
webhooks' `/returns-sync`: Starlette sends a request to the first mount whose prefix matches.

Like the webhook plugin, this module stays light (Airflow imports plugins in every component):
the app is built on its first request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.returns_sync.lazy_app import LazyApp

URL_PREFIX = "/returns-sync-ui"  # views/app.py MOUNT


class ReturnsSyncViewsPlugin(AirflowPlugin):
    """Mounts the views app and adds the navigation entry and the DAG-run tab."""

    name = "returns_sync_views"
    fastapi_apps = [
        {
            "app": LazyApp("include.returns_sync.views.app:create_app"),
            "url_prefix": URL_PREFIX,
            "name": "returns-sync views",
        }
    ]
    external_views = [
        {
            "name": "Returns",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "returns",
            "nav_top_level": True,
        },
        {
            "name": "Returns sync",
            "href": URL_PREFIX + "/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "returns-sync-run",
        },
    ]
