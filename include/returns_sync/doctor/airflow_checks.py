"""The Airflow side of going live: connections, the API pools, the state store's revision.

Connections resolve like the tasks resolve them (`BaseHook.get_connection`: environment
variables, secrets backends, the metadata database). Pools are read from Airflow's metadata
database, and only when one is configured and reachable from here; otherwise the doctor is not
running inside a deployment and says "skipped". A task assigned to a missing pool is never
scheduled (Airflow only logs a warning), so a missing pool blocks going live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.returns_sync.doctor.checks import (
    CheckResult,
    RowMaker,
    Status,
    check,
    describe_error,
)

#: What too few slots cost, per pool (the shared limiter binds the rate, pools concurrency).
SHORT_POOL_COST = {
    "loop_api": "a merchant's Loop tasks can wait for another merchant's slot",
    "whiplash_api": "fewer Whiplash tasks run at once than RETURNS_SYNC_API_POOL_SLOTS says",
}


@dataclass(frozen=True)
class ResolvedConnection:
    """What the doctor needs from a connection: the object and every secret to redact."""

    conn_id: str
    connection: Any
    secrets: tuple[str, ...]


def _secrets_of(connection: Any) -> tuple[str, ...]:
    values = [connection.password]
    extra = connection.extra_dejson if isinstance(connection.extra_dejson, dict) else {}
    for key in ("refresh_token", "webhook_secret", "client_secret"):
        value = extra.get(key)
        values.extend(value if isinstance(value, list) else [value])
    return tuple(str(v) for v in values if v)


def vendor_connection(
    conn_id: str, required: tuple[str, ...], purpose: str
) -> tuple[CheckResult, ResolvedConnection | None]:
    """Resolve a vendor connection; missing connection or fields block."""
    from airflow.sdk import BaseHook

    row = check(
        f"airflow.connection.{conn_id}",
        f"Connection {conn_id} resolves ({purpose}).",
    )
    try:
        connection = BaseHook.get_connection(conn_id)
    except Exception as error:
        return row(
            describe_error(error),
            f"every task that calls this vendor fails: define {conn_id} (docs/OPERATIONS.md, "
            "Connections)",
            Status.BLOCKING,
        ), None
    resolved = ResolvedConnection(conn_id, connection, _secrets_of(connection))
    missing = [name for name in required if not getattr(connection, name, None)]
    if missing:
        return row(
            f"defined (type {connection.conn_type}) but {' and '.join(missing)} empty",
            f"every call to this vendor fails: fill in {', '.join(missing)}",
            Status.BLOCKING,
        ), resolved
    host = connection.host or "the default host"
    extra = connection.extra_dejson if isinstance(connection.extra_dejson, dict) else {}
    grant = ""
    if conn_id.startswith("whiplash"):
        grant = (
            ", refresh-token grant" if extra.get("refresh_token") else ", client-credentials grant"
        )
    return row(
        f"defined (type {connection.conn_type}, host {host}{grant})", "none", Status.OK
    ), resolved


def state_connection() -> CheckResult:
    """`returns_sync_db` resolves (or is absent, and the default SQLite file is used)."""
    from include.returns_sync import runtime
    from include.returns_sync.state import parse_connection
    from include.returns_sync.state.url import describe

    row = check(
        "airflow.connection.returns_sync_db",
        "Connection returns_sync_db resolves (the state store; PostgreSQL in production).",
    )
    try:
        target = runtime.state_store_target()
        if target is None:
            return row(
                f"not defined: the default SQLite file {runtime.default_state_path()}",
                "fine on one machine; workers on several hosts would each keep their own "
                "state (RMAs created twice): define returns_sync_db (PostgreSQL)",
                Status.WARN,
            )
        url = parse_connection(target)
    except Exception as error:
        return row(
            describe_error(error),
            "every task fails at start-up: fix returns_sync_db",
            Status.BLOCKING,
        )
    return row(f"defined ({describe(url)})", "none", Status.OK)


@dataclass(frozen=True)
class StateStoreState:
    """The state store row and, when it is at the code's revision, the store itself."""

    result: CheckResult
    store: Any = None


def state_store() -> StateStoreState:
    """The store's revision against the code's, read without creating or migrating anything."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from include.returns_sync import runtime
    from include.returns_sync.state import StateStore, parse_connection
    from include.returns_sync.state.migration import alembic_config, head_revision

    row = check(
        "airflow.state_store",
        "The state store (returns_sync_db) is reachable and at this code's schema revision.",
    )
    upgrade = "python -m include.returns_sync.deploy.state_db upgrade"
    try:
        target = runtime.state_store_target()
        if target is None:
            path = runtime.default_state_path()
            defined = f"returns_sync_db not defined: default SQLite {path}"
            if not path.exists():
                return StateStoreState(
                    row(
                        f"{defined}, not created yet",
                        f"the first task creates and migrates it; for several workers on "
                        f"different hosts define returns_sync_db (PostgreSQL) and run {upgrade}",
                        Status.WARN,
                    )
                )
            target = f"sqlite:///{path}"
        url = parse_connection(target)
        sqlite_file = url.database if url.get_backend_name() == "sqlite" else None
        if sqlite_file and not Path(sqlite_file).exists():
            return StateStoreState(
                row(
                    f"SQLite file {sqlite_file} does not exist yet",
                    f"the first task creates and migrates it; or run {upgrade} now",
                    Status.WARN,
                )
            )
        store = StateStore.from_url(url)
        current = store.revision()
    except Exception as error:
        return StateStoreState(
            row(
                f"unreachable: {describe_error(error)}",
                "every task fails at start-up: fix returns_sync_db or the database",
                Status.BLOCKING,
            )
        )
    head = head_revision()
    facts = {"url": store.url, "revision": current, "head": head}
    where = store.url
    if current == head:
        return StateStoreState(row(f"{where} at {head}", "none", Status.OK, facts), store)
    if current is None:
        return StateStoreState(
            row(
                f"{where} has no tables yet (code at {head})",
                f"the first task migrates it; run {upgrade} to do it up front, loudly",
                Status.WARN,
                facts,
            ),
            store,
        )
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(current) is not None
    except CommandError:
        known = False
    if known:
        return StateStoreState(
            row(
                f"{where} at {current}, code at {head}",
                f"the first task migrates it; run {upgrade} to do it up front, loudly",
                Status.WARN,
                facts,
            ),
            store,
        )
    return StateStoreState(
        row(
            f"{where} at {current}, which this code does not know (newer code migrated it)",
            "this code must not run against a newer schema: deploy the release that matches",
            Status.BLOCKING,
            facts,
        )
    )


def metadata_database_problem() -> str | None:
    """Why Airflow's metadata database cannot be read from here; None when it can."""
    try:
        from airflow.configuration import conf
        from sqlalchemy.engine import make_url

        raw = conf.get("database", "sql_alchemy_conn", fallback="") or ""
        if not raw:
            return "no Airflow metadata database is configured"
        url = make_url(raw)
        sqlite = url.get_backend_name() == "sqlite"
        if sqlite and (not url.database or not Path(url.database).exists()):
            return f"no Airflow metadata database at {url.database or '(memory)'}"
        return None
    except Exception as error:
        return describe_error(error)


def pool_rows(
    expected: Mapping[str, int], descriptions: Mapping[str, str] | None = None
) -> list[CheckResult]:
    """One row per API pool: exists, with at least its expected slots (`deploy/pools.py`)."""
    from include.returns_sync.deploy.pools import POOLS

    described = POOLS if descriptions is None else descriptions
    problem = metadata_database_problem()
    rows: list[CheckResult] = []
    for name, slots in expected.items():
        row = check(
            f"airflow.pool.{name}",
            f"Pool {name} exists with at least {slots} slot(s) (include/returns_sync/deploy/"
            "pools.py), so API tasks are scheduled and no merchant waits for another's slot.",
        )
        if problem is not None:
            rows.append(
                row(
                    f"not inside an Airflow deployment ({problem})",
                    "run the doctor where Airflow's metadata database is reachable to check "
                    "the pools",
                    Status.SKIPPED,
                )
            )
            continue
        rows.append(_pool_row(row, name, described.get(name, name), slots))
    return rows


def _pool_row(row: RowMaker, name: str, description: str, expected: int) -> CheckResult:
    try:
        from airflow.models import Pool

        pool = Pool.get_pool(name)
    except Exception as error:
        return row(
            f"the metadata database could not be read: {describe_error(error)}",
            "check the pools with `airflow pools list`",
            Status.SKIPPED,
        )
    create = f'airflow pools set {name} {expected} "{description}"'
    if pool is None:
        return row(
            "missing",
            f"tasks in this pool are never scheduled (Airflow only logs a warning): {create}",
            Status.BLOCKING,
            {"slots": None, "expected": expected},
        )
    slots = int(pool.slots)
    facts = {"slots": slots, "expected": expected}
    if slots < 1:
        return row(
            f"{slots} slots",
            f"tasks in this pool are never scheduled: {create}",
            Status.BLOCKING,
            facts,
        )
    if slots < expected:
        return row(
            f"{slots} slots, expected at least {expected}",
            f"{SHORT_POOL_COST.get(name, 'API tasks queue for a slot')}: {create}",
            Status.WARN,
            facts,
        )
    return row(f"{slots} slots", "none", Status.OK, facts)
