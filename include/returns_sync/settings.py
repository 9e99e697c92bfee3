"""Every `RETURNS_SYNC_*` setting of a deployment, read and checked in one place.

The variables, their defaults and what they do are listed once, in the settings table of
[docs/OPERATIONS.md](../../docs/OPERATIONS.md#settings) (a test keeps that table and this module
in step). The rest of the code reads `settings().<field>`, never `os.environ`; the deployment's
dry run reaches the tasks only through `run_options.RunOptions`.

Each variable is checked when it is read, not all at once: a bad value fails what uses it, with
an error that names the variable and the value, and nothing else. So a typo in a task's setting
(`RETURNS_SYNC_DRY_RUN=shadow`) fails that DAG's first task with an alert, while the DAG files,
which read their schedules at parse time, keep parsing. `Settings.problems()` checks them all.

An empty variable counts as unset. `settings()` follows the environment: a changed environment
(a test's `monkeypatch.setenv`) is seen by the next call; each variable of one environment is
parsed once.

Imported by the DAG files at parse time, so it imports nothing heavy (no Airflow, no pandas).
`RETURNS_SYNC_SANDBOX_STRICT` is not here: it configures the vendor simulators, which are test
tooling (`sandbox/strict.py`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

PREFIX = "RETURNS_SYNC_"

T = TypeVar("T")


class SettingsError(ValueError):
    """A `RETURNS_SYNC_*` variable holds a value it cannot take; the message names both."""


class _Refused(ValueError):
    """Raised by a parser with what the value must be; `Variable.read` adds name and value."""


class Variable(Generic[T]):
    """One `RETURNS_SYNC_*` variable: its name, default and parser (which checks the value).

    A read-only attribute of `Settings`: reading it parses the variable (once per `Settings`).
    """

    def __init__(self, name: str, default: T, parse: Callable[[str], T]) -> None:
        self.name = name
        self.default = default
        self.parse = parse
        self.attr = ""

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    def read(self, environ: Mapping[str, str]) -> T:
        """The value in `environ`: the default when unset or empty, else the parsed value."""
        raw = environ.get(self.name, "").strip()
        if not raw:
            return self.default
        try:
            return self.parse(raw)
        except _Refused as exc:
            raise SettingsError(
                f"environment variable {self.name} must be {exc} (got {raw!r})"
            ) from None

    @overload
    def __get__(self, settings: None, owner: type) -> Variable[T]: ...

    @overload
    def __get__(self, settings: Settings, owner: type) -> T: ...

    def __get__(self, settings: Settings | None, owner: type) -> Variable[T] | T:
        if settings is None:
            return self
        parsed = settings._parsed
        if self.name not in parsed:
            parsed[self.name] = self.read(settings._environ)
        value: T = parsed[self.name]
        return value

    def __set__(self, settings: Settings, value: object) -> None:
        raise AttributeError(f"settings are read-only ({self.name} comes from the environment)")


# ----------------------------------------------------------------------------------- parsers


def whole(minimum: int, zero: int | None = None) -> Callable[[str], int]:
    """A whole number >= `minimum`; 0 stands for `zero` where given."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise _Refused(f"a whole number >= {minimum}") from None
        if value < minimum:
            raise _Refused(f"a whole number >= {minimum}")
        return zero if value == 0 and zero is not None else value

    return parse


def clamped(
    lowest: int, highest: int | None = None, zero: int | None = None
) -> Callable[[str], int]:
    """Any whole number, 0 standing for `zero` (where given), then brought into
    `[lowest, highest]`: settings that have always been read that way keep their meaning."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise _Refused("a whole number") from None
        if value == 0 and zero is not None:
            value = zero
        value = max(lowest, value)
        return value if highest is None else min(highest, value)

    return parse


def number(zero: float | None = None) -> Callable[[str], float]:
    """A finite number >= 0; 0 stands for `zero` where given."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise _Refused("a number >= 0") from None
        if not math.isfinite(value) or value < 0:
            raise _Refused("a finite number >= 0")
        return zero if value == 0 and zero is not None else value

    return parse


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def boolean(raw: str) -> bool:
    """true/1/yes/on or false/0/no/off, in any case; anything else is refused (a typo must not
    silently pick either side)."""
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise _Refused("true or false")


def cron(raw: str) -> str:
    """A cron expression (5 to 7 fields) or an Airflow preset such as `@daily`; Airflow checks
    the fields themselves when it parses the DAG."""
    if raw.startswith("@") or 5 <= len(raw.split()) <= 7:
        return raw
    raise _Refused("a cron expression such as '0 2 * * *' or a preset such as '@daily'")


def path(raw: str) -> Path:
    return Path(raw)


def text(raw: str) -> str:
    return raw


# ---------------------------------------------------------------------------------- settings


class Settings:
    """The deployment's settings, from one environment. Read-only; each attribute is typed.

    `Settings.from_env()` reads the process environment; `Settings.from_env({...})` a mapping
    (tests). The meaning of each is in docs/OPERATIONS.md's settings table. Each attribute is a
    `Variable` parsed when first read, rather than a field filled at construction, so that a
    bad value fails only what reads it (see the module docstring).
    """

    # which merchants, their schedules and task defaults (read by the DAG files at parse time)
    merchants: Variable[Path | None] = Variable("RETURNS_SYNC_MERCHANTS", None, path)
    rma_schedule_minutes = Variable("RETURNS_SYNC_RMA_SCHEDULE_MINUTES", 5, whole(1))
    receipts_schedule_minutes = Variable("RETURNS_SYNC_RECEIPTS_SCHEDULE_MINUTES", 15, whole(1))
    backfill_cron = Variable("RETURNS_SYNC_BACKFILL_CRON", "0 2 * * *", cron)
    retry_delay_seconds = Variable("RETURNS_SYNC_RETRY_DELAY_SECONDS", 30, whole(0))
    webhook_poll_seconds = Variable("RETURNS_SYNC_WEBHOOK_POLL_SECONDS", 1.0, number(zero=1.0))

    # what a run reads
    poll_overlap_minutes = Variable("RETURNS_SYNC_POLL_OVERLAP_MINUTES", 30, clamped(0))
    initial_lookback_hours = Variable("RETURNS_SYNC_INITIAL_LOOKBACK_HOURS", 24, whole(0, zero=24))
    backfill_overlap_hours = Variable("RETURNS_SYNC_BACKFILL_OVERLAP_HOURS", 6, whole(0))
    batch_size = Variable("RETURNS_SYNC_BATCH_SIZE", 100, clamped(1, zero=100))
    loop_page_size = Variable("RETURNS_SYNC_LOOP_PAGE_SIZE", 750, clamped(1, 750, zero=750))
    inbox_claim_limit = Variable("RETURNS_SYNC_INBOX_CLAIM_LIMIT", 500, clamped(1, zero=500))
    inbox_stale_minutes = Variable("RETURNS_SYNC_INBOX_STALE_MINUTES", 10, clamped(1))

    # what a run does
    dry_run = Variable("RETURNS_SYNC_DRY_RUN", False, boolean)
    warehouse_id: Variable[int | None] = Variable("RETURNS_SYNC_WAREHOUSE_ID", None, whole(0))
    max_unmappable = Variable("RETURNS_SYNC_MAX_UNMAPPABLE", 50, whole(0))
    stale_claim_minutes = Variable("RETURNS_SYNC_STALE_CLAIM_MINUTES", 15, clamped(0))
    process_settle_minutes = Variable("RETURNS_SYNC_PROCESS_SETTLE_MINUTES", 30.0, number())
    criteria: Variable[Path | None] = Variable("RETURNS_SYNC_CRITERIA", None, path)
    reports_dir: Variable[Path | None] = Variable("RETURNS_SYNC_REPORTS_DIR", None, path)

    # talking to the vendors
    api_pool_slots = Variable("RETURNS_SYNC_API_POOL_SLOTS", 2, whole(1))
    http_timeout = Variable("RETURNS_SYNC_HTTP_TIMEOUT", 30.0, number(zero=30.0))
    retry_wait_scale = Variable("RETURNS_SYNC_RETRY_WAIT_SCALE", 1.0, number(zero=1.0))

    # command-line tools
    migrations_db: Variable[str | None] = Variable("RETURNS_SYNC_DB", None, text)

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = {k: v for k, v in environ.items() if k.startswith(PREFIX)}
        self._parsed: dict[str, Any] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """The settings in `environ` (the process environment by default)."""
        return cls(environ)

    @classmethod
    def variables(cls) -> tuple[Variable[Any], ...]:
        """Every variable, in the order of the class body."""
        return tuple(v for v in vars(cls).values() if isinstance(v, Variable))

    def problems(self) -> list[str]:
        """One message per variable that holds a value it cannot take (empty: all readable)."""
        found = []
        for variable in self.variables():
            try:
                variable.read(self._environ)
            except SettingsError as exc:
                found.append(str(exc))
        return found

    def __repr__(self) -> str:
        # Names only: a value may hold a secret (the migrations URL's password).
        return f"Settings(set: {', '.join(sorted(self._environ)) or 'none'})"


def settings() -> Settings:
    """The settings of the process environment as it is now (each variable parsed once)."""
    # Only our variables are read (a handful of lookups): scanning and decoding the whole
    # environment on every call cost hooks about 0.4 ms per request.
    environ = os.environ
    snapshot = tuple((name, environ[name]) for name in _variable_names() if name in environ)
    return _settings_of(snapshot)


@lru_cache(maxsize=1)
def _variable_names() -> tuple[str, ...]:
    return tuple(variable.name for variable in Settings.variables())


@lru_cache(maxsize=16)
def _settings_of(snapshot: tuple[tuple[str, str], ...]) -> Settings:
    return Settings(dict(snapshot))
