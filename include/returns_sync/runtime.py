"""Wiring between Airflow tasks and the plain domain code: connections, store, settings.

This is the only module (besides hooks and DAG files) that knows about Airflow. Everything is
imported lazily inside functions so that parsing a DAG file stays cheap.

Settings come from environment variables so one image can serve several deployments:

| variable | default | meaning |
| --- | --- | --- |
| `RETURNS_SYNC_POLL_OVERLAP_MINUTES` | 30 | poll window starts this long before the watermark |
| `RETURNS_SYNC_INITIAL_LOOKBACK_HOURS` | 24 | first poll (no watermark yet) looks back this far |
| `RETURNS_SYNC_BATCH_SIZE` | 100 | Loop returns per mapped creation task |
| `RETURNS_SYNC_WAREHOUSE_ID` | unset | Whiplash warehouse for every RMA (else the order's) |
| `RETURNS_SYNC_MAX_UNMAPPABLE` | 50 | a run fails (alerting fires) when more returns than this are unmappable |
| `RETURNS_SYNC_STALE_CLAIM_MINUTES` | 15 | a creation claim older than this is taken over |
| `RETURNS_SYNC_DRY_RUN` | false | shadow mode: read and decide, write nothing (read only by `run_options`) |
| `RETURNS_SYNC_LOOP_PAGE_SIZE` | 750 | page size of Loop's detailed returns list (max 750) |
| `RETURNS_SYNC_HTTP_TIMEOUT` | 30 | seconds per vendor HTTP request |
| `RETURNS_SYNC_RETRY_WAIT_SCALE` | 1 | multiplies every retry wait (tests use 0.01) |
| `RETURNS_SYNC_PROCESS_SETTLE_MINUTES` | 30 | an unconfirmed Loop Process is re-sent only after this long (PRODUCT.md 2.4) |
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

log = logging.getLogger(__name__)

STATE_CONN_ID = "returns_sync_db"
LOOP_CONN_ID = "loop_default"
WHIPLASH_CONN_ID = "whiplash_default"


def env_int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer (got {raw!r})") from exc


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"environment variable {name} must be true or false (got {raw!r})")


@dataclass(frozen=True)
class PollSettings:
    overlap: timedelta
    initial_lookback: timedelta
    batch_size: int
    max_unmappable: int
    loop_page_size: int


def poll_settings() -> PollSettings:
    return PollSettings(
        overlap=timedelta(minutes=_minutes("RETURNS_SYNC_POLL_OVERLAP_MINUTES", 30)),
        initial_lookback=timedelta(hours=env_int("RETURNS_SYNC_INITIAL_LOOKBACK_HOURS", 24) or 24),
        batch_size=max(1, env_int("RETURNS_SYNC_BATCH_SIZE", 100) or 100),
        max_unmappable=env_int("RETURNS_SYNC_MAX_UNMAPPABLE", 50) or 0,
        loop_page_size=min(750, max(1, env_int("RETURNS_SYNC_LOOP_PAGE_SIZE", 750) or 750)),
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


def _minutes(name: str, default: int) -> int:
    value = env_int(name, default)
    return default if value is None else max(0, value)


DEFAULT_PROCESS_SETTLE_MINUTES = 30.0


def process_settle() -> timedelta:
    """`RETURNS_SYNC_PROCESS_SETTLE_MINUTES` (default 30; fractions allowed, never negative)."""
    name = "RETURNS_SYNC_PROCESS_SETTLE_MINUTES"
    raw = os.environ.get(name, "").strip()
    if not raw:
        return timedelta(minutes=DEFAULT_PROCESS_SETTLE_MINUTES)
    try:
        minutes = float(raw)
    except ValueError as exc:
        raise ValueError(
            f"environment variable {name} must be a number of minutes (got {raw!r})"
        ) from exc
    if minutes != minutes or minutes < 0:
        raise ValueError(f"environment variable {name} must be >= 0 minutes (got {raw!r})")
    return timedelta(minutes=minutes)


def rma_settings(dry_run: bool = False) -> Any:
    """RMA creation settings; `dry_run` comes from the run's `RunOptions`, never from here."""
    from include.returns_sync.domain.rma import RmaSettings

    return RmaSettings(
        warehouse_id=env_int("RETURNS_SYNC_WAREHOUSE_ID", None),
        stale_claim_after=timedelta(minutes=_minutes("RETURNS_SYNC_STALE_CLAIM_MINUTES", 15)),
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

    scale = float(os.environ.get("RETURNS_SYNC_RETRY_WAIT_SCALE", "1") or 1)
    policy = RetryPolicy().scaled(scale)  # waits and the 429-storm budget alike
    timeout = float(os.environ.get("RETURNS_SYNC_HTTP_TIMEOUT", "30") or 30)
    return {"retry_policy": policy, "timeout": timeout}


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
