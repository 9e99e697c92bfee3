"""Wiring between Airflow tasks and the plain domain code: connections, store, settings.

This is the only module (besides hooks and DAG files) that knows about Airflow. Everything is
imported lazily inside functions so that parsing a DAG file stays cheap.

Settings (`RETURNS_SYNC_*` environment variables) are read by `settings.py` and listed in the
settings table of [docs/OPERATIONS.md](../../docs/OPERATIONS.md#settings); this module turns them
into what the domain code takes.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from include.returns_sync.settings import settings

log = logging.getLogger(__name__)

STATE_CONN_ID = "returns_sync_db"
LOOP_CONN_ID = "loop_default"
WHIPLASH_CONN_ID = "whiplash_default"


@dataclass(frozen=True)
class PollSettings:
    overlap: timedelta
    initial_lookback: timedelta
    batch_size: int
    max_unmappable: int
    loop_page_size: int


def poll_settings() -> PollSettings:
    config = settings()
    return PollSettings(
        overlap=timedelta(minutes=config.poll_overlap_minutes),
        initial_lookback=timedelta(hours=config.initial_lookback_hours),
        batch_size=config.batch_size,
        max_unmappable=config.max_unmappable,
        loop_page_size=config.loop_page_size,
    )


def planned_window(watermark_name: str, end: datetime) -> dict[str, str]:
    """A poll window `[watermark - overlap, end)` from a durable watermark, for XCom."""
    from include.returns_sync.domain.windows import poll_window

    settings = poll_settings()
    watermark = state_store().get_watermark(watermark_name)
    start, stop = poll_window(
        watermark=watermark,
        end=end,
        overlap=settings.overlap,
        initial_lookback=settings.initial_lookback,
    )
    log.info("Poll window %s -> %s (watermark %s = %s)", start, stop, watermark_name, watermark)
    return {"start": start.isoformat(), "end": stop.isoformat()}


def process_settle() -> timedelta:
    """How long an unconfirmed Loop Process waits before it is sent again."""
    return timedelta(minutes=settings().process_settle_minutes)


def rma_settings(dry_run: bool = False) -> Any:
    """RMA creation settings; `dry_run` comes from the run's `RunOptions`, never from here."""
    from include.returns_sync.domain.rma import RmaSettings

    return RmaSettings(
        warehouse_id=settings().warehouse_id,
        stale_claim_after=timedelta(minutes=settings().stale_claim_minutes),
        dry_run=dry_run,
    )


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


@lru_cache(maxsize=4)
def _store_for(url: str) -> Any:
    from include.returns_sync.state import StateStore

    store = StateStore.from_url(url)
    store.migrate()
    return store


def state_store() -> Any:
    """The state store behind connection `returns_sync_db`, migrated; SQLite by default."""
    target = state_store_target()
    if target is None:
        path = default_state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return _store_for(f"sqlite:///{path}")
    return _store_for(target)


def default_state_path() -> Path:
    """The SQLite file used when `returns_sync_db` is not defined."""
    return airflow_home() / "returns_sync" / "state.db"


def state_store_target() -> str | None:
    """The `returns_sync_db` connection as a URI or JSON string; None when it is not defined.

    An `AIRFLOW_CONN_RETURNS_SYNC_DB` variable is passed to the store as written (URI or JSON
    form), because Airflow's URI parser drops the path of `sqlite:////abs/path.db`. Nothing is
    opened or migrated here (the doctor reads the store without changing it).
    """
    raw = os.environ.get("AIRFLOW_CONN_" + STATE_CONN_ID.upper())
    if raw:
        return raw
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(STATE_CONN_ID)
    except AirflowNotFoundException:  # not defined: fall back to the embedded default
        return None
    fields = {
        "conn_type": conn.conn_type,
        "host": conn.host,
        "login": conn.login,
        "password": conn.password,
        "schema": conn.schema,
        "port": conn.port,
        "extra": conn.extra_dejson,
    }
    return json.dumps({k: v for k, v in fields.items() if v not in (None, "", {})})


def fernet_key() -> str | None:
    """Airflow's Fernet key, used to encrypt the rotated Whiplash refresh token at rest."""
    key = os.environ.get("AIRFLOW__CORE__FERNET_KEY")
    if key:
        return key
    try:
        from airflow.configuration import conf

        return conf.get("core", "fernet_key", fallback=None) or None
    except Exception:
        return None


def _client_options() -> dict[str, Any]:
    """Retry waits and HTTP timeout; tests and benchmarks shrink them through the environment."""
    from include.returns_sync.clients.policy import RetryPolicy

    config = settings()
    policy = RetryPolicy().scaled(config.retry_wait_scale)  # waits and the 429-storm budget alike
    return {"retry_policy": policy, "timeout": config.http_timeout}


def loop_hook() -> Any:
    from include.returns_sync.clients.loop import LoopHook

    return LoopHook(**_client_options())


def whiplash_hook() -> Any:
    from include.returns_sync.clients.whiplash import StateStoreTokenStore, WhiplashHook

    key = fernet_key()
    token_store = StateStoreTokenStore(state_store(), key) if key else None
    if token_store is None:
        log.warning(
            "No Fernet key configured: a rotated Whiplash refresh token cannot be persisted"
        )
    return WhiplashHook(token_store=token_store, **_client_options())
