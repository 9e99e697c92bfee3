"""Shared plumbing of the store's parts: transactions, the clock, the merchant, input checks.

Every public write goes through `_write()`: one short transaction that, on SQLite, holds the
write lock from its first statement (see `engine.py`). Reads use `_read()`.

A store is scoped to one merchant (`merchant`, "default" unless made by `for_merchant`): every
part filters its reads and stamps its writes with `self._merchant`, so no query of one merchant
can see or touch another merchant's rows. The few cross-merchant reads say so in their name.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Self, TypeVar

from sqlalchemy import ColumnElement, Connection, Engine, Executable, RowMapping, Table
from sqlalchemy.dialects import postgresql, sqlite

from include.returns_sync.state.engine import WRITE_OPTION
from include.returns_sync.state.records import DEFAULT_MERCHANT, require_merchant

T = TypeVar("T")
Clock = Callable[[], datetime]

#: Bound parameters per IN (...) list; far below SQLite's and PostgreSQL's limits.
IN_CHUNK = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoreBase:
    """Engine, clock, merchant and transaction helpers used by every part of `StateStore`."""

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._clock: Clock = clock or utc_now
        self._is_postgres = engine.dialect.name == "postgresql"
        self._merchant = DEFAULT_MERCHANT
        #: (dag_id, run_id) of the Airflow run writing through this store (see `for_run`)
        self._run: tuple[str, str] | None = None

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def merchant(self) -> str:
        """The merchant whose rows this store reads and writes ("default" for a plain store)."""
        return self._merchant

    def for_merchant(self, merchant_id: str) -> Self:
        """This store scoped to `merchant_id`: same engine, pool and clock, other rows.

        Cheap (a shallow copy, no connection, no query), so callers make one per use. The
        scoped store shares the engine: `dispose()` on either closes the pool of both. Raises a
        ValueError for an id that is not `[a-z0-9_]{1,40}`.
        """
        scoped = copy.copy(self)
        scoped._merchant = require_merchant(merchant_id)
        return scoped

    def for_run(self, dag_id: str, run_id: str) -> Self:
        """This store stamping its writes with the Airflow run that makes them (the views
        link each step of a return to that run). Cheap, like `for_merchant`; keeps the merchant.
        """
        stamped = copy.copy(self)
        stamped._run = (require_text(dag_id, "dag_id"), require_text(run_id, "run_id"))
        return stamped

    @property
    def run_dag_id(self) -> str | None:
        """The DAG id of the run this store is stamped with (None: not stamped)."""
        return self._run[0] if self._run else None

    @property
    def run_id(self) -> str | None:
        """The run id this store is stamped with (None: not stamped)."""
        return self._run[1] if self._run else None

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError(f"the store's clock must return aware datetimes; got {now!r}")
        return now.astimezone(UTC)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn

    def _scope(self, table: Table) -> ColumnElement[bool]:
        """The WHERE clause that keeps a query to this store's merchant's rows of `table`."""
        return table.c.merchant == self._merchant

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """INSERT with the dialect's ON CONFLICT support (both spell it the same way)."""
        return postgresql.insert(table) if self._is_postgres else sqlite.insert(table)


def first_row(conn: Connection, statement: Executable) -> RowMapping | None:
    """The first row a (RETURNING) statement yields, or None when it touched nothing."""
    return conn.execute(statement).mappings().first()


def chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def require_text(value: object, field: str) -> str:
    """A non-empty string, or a ValueError naming the field."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string; got {value!r}")
    return value


def require_int(value: object, field: str) -> int:
    """An integer id (bool excluded), or a ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an integer; got {value!r}")
    return value


def text_ids(values: Iterable[str], field: str) -> list[str]:
    """Distinct, validated string ids in first-seen order."""
    if isinstance(values, str):
        raise ValueError(f"{field} must be an iterable of ids, not a single string {values!r}")
    return list(dict.fromkeys(require_text(v, field) for v in values))


def int_ids(values: Iterable[int], field: str) -> list[int]:
    """Distinct, validated integer ids in first-seen order."""
    return list(dict.fromkeys(require_int(v, field) for v in values))


def require_duration(value: object, field: str) -> timedelta:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ValueError(f"{field} must be a non-negative timedelta; got {value!r}")
    return value


def require_aware(value: object, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{field} must be a timezone-aware datetime; got {value!r}")
    return value.astimezone(UTC)
