"""Wiring between Airflow tasks and the plain domain code: connections, store, settings.

This is the only module (besides hooks and DAG files) that knows about Airflow. Everything is
imported lazily inside functions so that parsing a DAG file stays cheap.

Everything here is for the *current merchant* (`current_merchant()`): the merchant set by
`use_merchant(id)` (tests, the webhook app, the doctor), else the merchant of the running
Airflow task's DAG (`loop_returns_to_whiplash__acme` -> `acme`), else `default`. The store is
scoped to that merchant (`StateStore.for_merchant`), the hooks use its connections and its
Whiplash customer id, and its criteria file and warehouse apply. A task therefore cannot reach
another merchant's records by accident: it would have to name that merchant.

Settings (`RETURNS_SYNC_*` environment variables) are read by `settings.py` and listed in the
settings table of [docs/OPERATIONS.md](../../docs/OPERATIONS.md#settings); this module turns them
into what the domain code takes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from include.returns_sync.merchants import (
    DEFAULT_MERCHANT_ID,
    Merchant,
    get_merchant,
    merchant_for_dag_id,
)
from include.returns_sync.settings import settings

log = logging.getLogger(__name__)

STATE_CONN_ID = "returns_sync_db"
LOOP_CONN_ID = "loop_default"
WHIPLASH_CONN_ID = "whiplash_default"

_MERCHANT: ContextVar[str | None] = ContextVar("returns_sync_merchant", default=None)


# ------------------------------------------------------------------------------- merchant


def current_merchant() -> Merchant:
    """The merchant this code works for: `use_merchant`, else the running task's DAG, else
    `default`. A merchant no longer in the merchants file raises `UnknownMerchantError` (its
    DAG's runs fail with that message instead of acting under another merchant's name)."""
    return get_merchant(current_merchant_id())


def current_merchant_id() -> str:
    """The id of `current_merchant()`, without reading the merchants file."""
    return _MERCHANT.get() or _task_merchant_id() or DEFAULT_MERCHANT_ID


def _task_merchant_id() -> str | None:
    """The merchant of the Airflow task running in this process, if any."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
    except RuntimeError:  # not inside a task
        return None
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or getattr(context.get("ti"), "dag_id", None)
    return merchant_for_dag_id(dag_id) if dag_id else None


@contextmanager
def use_merchant(merchant_id: str) -> Iterator[Merchant]:
    """Work for `merchant_id` inside the block (checked against the merchants file)."""
    merchant = get_merchant(merchant_id)
    token = _MERCHANT.set(merchant.id)
    try:
        yield merchant
    finally:
        _MERCHANT.reset(token)


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

    merchant = current_merchant()
    warehouse = merchant.warehouse_id
    return RmaSettings(
        warehouse_id=warehouse if warehouse is not None else settings().warehouse_id,
        stale_claim_after=timedelta(minutes=settings().stale_claim_minutes),
        dry_run=dry_run,
    )


def criteria_path() -> str | None:
    """The current merchant's criteria file; None: `RETURNS_SYNC_CRITERIA`, else the shipped
    `include/criteria.yaml` (`reconcile.criteria.criteria_path`)."""
    return current_merchant().criteria


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


@lru_cache(maxsize=4)
def _store_for(url: str) -> Any:
    from include.returns_sync.state import StateStore

    store = StateStore.from_url(url)
    store.migrate()
    return store


@lru_cache(maxsize=256)
def _scoped_store(url: str, merchant_id: str) -> Any:
    return _store_for(url).for_merchant(merchant_id)


def _store_url() -> str:
    target = state_store_target()
    if target is None:
        path = default_state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    return target


def shared_state_store() -> Any:
    """The whole state store (every merchant), for what spans merchants: routing a webhook to
    its merchant, the triggerer's signal. Everything else uses `state_store()`."""
    return _store_for(_store_url())


def state_store() -> Any:
    """The state store behind connection `returns_sync_db`, migrated (SQLite by default),
    scoped to the current merchant: every read and write is that merchant's."""
    merchant_id = current_merchant().id
    if merchant_id == DEFAULT_MERCHANT_ID:  # the unscoped store is the default merchant's
        return shared_state_store()
    return _scoped_store(_store_url(), merchant_id)


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


def rate_limiter() -> Any:
    """The vendor rate limiter shared by every process of the deployment: send slots reserved
    in the state store, keyed by vendor account (so the unscoped store: an account's limit is
    shared by all its merchants)."""
    from include.returns_sync.clients.limiter import SharedLimiter

    return SharedLimiter(shared_state_store())


def loop_hook() -> Any:
    """A Loop hook on the current merchant's Loop connection (its own shop and API key)."""
    from include.returns_sync.clients.loop import LoopHook

    merchant = current_merchant()
    return LoopHook(conn_id=merchant.loop_conn_id, limiter=rate_limiter(), **_client_options())


def whiplash_hook() -> Any:
    """A Whiplash hook on the current merchant's account, sending its customer id."""
    from include.returns_sync.clients.whiplash import StateStoreTokenStore, WhiplashHook

    merchant = current_merchant()
    key = fernet_key()
    # Tokens belong to the Whiplash account, not to a merchant: the unscoped store holds them.
    token_store = StateStoreTokenStore(shared_state_store(), key) if key else None
    if token_store is None:
        log.warning(
            "No Fernet key configured: a rotated Whiplash refresh token cannot be persisted"
        )
    return WhiplashHook(
        conn_id=merchant.whiplash_conn_id,
        customer_id=merchant.whiplash_customer_id,
        limiter=rate_limiter(),
        token_store=token_store,
        **_client_options(),
    )
