"""The merchants one deployment serves: the merchants file (`RETURNS_SYNC_MERCHANTS`), checked.

Without the variable there is one merchant, `default`, with today's DAG and connection ids
(PRODUCT.md section 3.1). With it, every entry of the YAML file is a merchant:

```yaml
merchants:
  - id: acme                         # [a-z0-9_]{1,40}
    loop_conn_id: loop_acme          # default loop_<id> (loop_default for id `default`)
    whiplash_conn_id: whiplash_default
    whiplash_customer_id: 4711       # required when merchants share a whiplash_conn_id
    criteria: criteria/acme.yaml     # optional; relative paths are relative to this file
    warehouse_id: 3                  # optional; default RETURNS_SYNC_WAREHOUSE_ID
    rma_every_minutes: 10            # optional cadences (default: the RETURNS_SYNC_* settings)
    receipts_every_minutes: 30
    backfill_at: "03:00"             # UTC; default RETURNS_SYNC_BACKFILL_CRON, staggered
```

Why entries are checked one by one: a typo in one merchant's entry must cost that merchant
only. `load_merchants` returns the good merchants and one `EntryProblem` per bad entry (naming
its position, its id and the key); the DAG files build the good ones and
`dags/returns_sync_merchants.py` turns the problems into one import error in the Airflow UI.
A file that cannot be read as a merchants file at all (missing, not YAML, no `merchants` list)
raises `MerchantsFileError`: that is one clear import error, and no merchant runs.

Decisions (docs/OPERATIONS.md#merchants):
- a repeated `id`, `loop_conn_id` (one Loop shop served twice would act twice on its returns)
  or (`whiplash_conn_id`, `whiplash_customer_id`) pair: the first entry wins, later ones are bad;
- merchants sharing a `whiplash_conn_id` must each name their `whiplash_customer_id`: without
  it a merchant would read every customer's returns in that account;
- cadences must fit a clock (divisors of 60 minutes, or whole hours dividing 24) so that each
  merchant's runs can be staggered on a fixed minute (`dag_defaults.py`).

Airflow-free and cheap (PyYAML + pydantic): the DAG files import it at parse time. The parsed
file is cached per (path, modification time, size), so an edit is seen by the next parse and a
task asking for its merchant does not re-read the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from include.returns_sync.settings import Settings, settings
from include.returns_sync.strict_yaml import StrictLoader, yaml_problem

DEFAULT_MERCHANT_ID = "default"
#: The variable that points at the merchants file.
MERCHANTS_ENV_VAR = Settings.merchants.name
ID_PATTERN = re.compile(r"[a-z0-9_]{1,40}")
#: Separates a DAG's base id from its merchant id (`loop_returns_to_whiplash__acme`).
DAG_ID_SEPARATOR = "__"
#: Cadences that fit a clock: a merchant's runs can then sit on fixed, staggered minutes.
CLOCK_MINUTES = frozenset(
    {m for m in range(1, 61) if 60 % m == 0} | {h * 60 for h in range(1, 25) if 24 % h == 0}
)
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


class MerchantsFileError(ValueError):
    """The merchants file cannot be used at all; the message names the file and the problem."""


class UnknownMerchantError(KeyError):
    """No configured merchant has this id."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0]) if self.args else "unknown merchant"


@dataclass(frozen=True)
class Merchant:
    """One merchant: its connections, its Whiplash customer, criteria, warehouse and cadence.

    `order` is the entry's position in the file: the first merchant of a Whiplash account
    reports the returns of that account that belong to no merchant (issue 13).
    """

    id: str
    loop_conn_id: str
    whiplash_conn_id: str = "whiplash_default"
    whiplash_customer_id: int | None = None
    criteria: str | None = None
    warehouse_id: int | None = None
    rma_every_minutes: int | None = None
    receipts_every_minutes: int | None = None
    backfill_at: str | None = None
    order: int = 0

    @classmethod
    def default(cls) -> Merchant:
        """The merchant of a deployment without a merchants file: today's connection ids."""
        return cls(id=DEFAULT_MERCHANT_ID, loop_conn_id=default_loop_conn_id(DEFAULT_MERCHANT_ID))

    @property
    def is_default(self) -> bool:
        return self.id == DEFAULT_MERCHANT_ID

    def dag_id(self, base: str) -> str:
        """`base` for the default merchant (its history stays), else `<base>__<id>`."""
        return base if self.is_default else f"{base}{DAG_ID_SEPARATOR}{self.id}"

    @property
    def tag(self) -> str:
        """The tag on each of its DAGs (filter the Airflow UI's DAG list by merchant)."""
        return f"merchant:{self.id}"


def default_loop_conn_id(merchant_id: str) -> str:
    return f"loop_{merchant_id}"


def merchant_for_dag_id(dag_id: str) -> str:
    """The merchant id of one of our DAG ids: `loop_returns_to_whiplash__acme` -> `acme`,
    a base id (no separator) -> `default`."""
    _, sep, merchant_id = dag_id.rpartition(DAG_ID_SEPARATOR)
    return merchant_id if sep and merchant_id else DEFAULT_MERCHANT_ID


@dataclass(frozen=True)
class EntryProblem:
    """Why one entry of the merchants file was left out (it costs that merchant only)."""

    index: int  # 1-based position in the `merchants` list
    merchant_id: str | None
    key: str | None
    message: str

    def __str__(self) -> str:
        who = f"entry {self.index}" + (f" (id {self.merchant_id!r})" if self.merchant_id else "")
        where = f", key {self.key!r}" if self.key else ""
        return f"{who}{where}: {self.message}"


@dataclass(frozen=True)
class MerchantsFile:
    """A parsed merchants file: the good merchants in file order and the bad entries."""

    path: Path | None
    merchants: tuple[Merchant, ...]
    problems: tuple[EntryProblem, ...] = field(default=())

    def describe_problems(self) -> str:
        """One line per bad entry, headed by the file (the import error's text)."""
        lines = [f"{self.path}: {len(self.problems)} merchant entries are ignored:"]
        return "\n".join(lines + [f"  - {problem}" for problem in self.problems])


class _Entry(BaseModel):
    """One entry as written; strict about every key (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str
    loop_conn_id: str | None = Field(default=None, min_length=1)
    whiplash_conn_id: str = Field(default="whiplash_default", min_length=1)
    whiplash_customer_id: int | None = Field(default=None, ge=1, strict=True)
    criteria: str | None = Field(default=None, min_length=1)
    warehouse_id: int | None = Field(default=None, ge=0, strict=True)
    rma_every_minutes: int | None = Field(default=None, strict=True)
    receipts_every_minutes: int | None = Field(default=None, strict=True)
    backfill_at: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_is_text(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("must be text matching [a-z0-9_]{1,40}")
        return value

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not ID_PATTERN.fullmatch(value):
            raise ValueError("must match [a-z0-9_]{1,40} (lower-case letters, digits, _)")
        if DAG_ID_SEPARATOR in value:
            raise ValueError(f"must not contain {DAG_ID_SEPARATOR!r} (it separates DAG ids)")
        return value

    @field_validator("rma_every_minutes", "receipts_every_minutes")
    @classmethod
    def _fits_a_clock(cls, value: int | None) -> int | None:
        if value is not None and value not in CLOCK_MINUTES:
            raise ValueError(
                "must be minutes that divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60) "
                "or whole hours that divide a day (120, 180, 240, 360, 480, 720, 1440)"
            )
        return value

    @field_validator("backfill_at", mode="before")
    @classmethod
    def _quoted_time(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(
            value, bool
        ):  # YAML 1.1 reads 3:30 as 210 (base 60)
            raise ValueError('must be a quoted UTC time of day, e.g. "03:30" (with the quotes)')
        return value

    @field_validator("backfill_at")
    @classmethod
    def _clock_time(cls, value: str | None) -> str | None:
        if value is not None and not _CLOCK.fullmatch(value):
            raise ValueError('must be a UTC time of day "HH:MM", e.g. "03:30"')
        return value


def parse_merchants(text: str, source: Path | None = None) -> MerchantsFile:
    """Check a merchants file given as YAML text; `source` names it (and anchors relative
    criteria paths). Bad entries become `problems`; a bad file raises `MerchantsFileError`."""
    name = str(source) if source is not None else "<merchants>"
    try:
        document = yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise MerchantsFileError(f"{name}: not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(document, dict) or "merchants" not in document:
        raise MerchantsFileError(f"{name}: must be a mapping with a 'merchants' list")
    unknown = sorted(str(key) for key in document if key != "merchants")
    if unknown:
        raise MerchantsFileError(f"{name}: unknown top-level keys {unknown} (only 'merchants')")
    entries = document["merchants"]
    if not isinstance(entries, list) or not entries:
        raise MerchantsFileError(f"{name}: 'merchants' must be a non-empty list of entries")
    base = source.parent if source is not None else None
    parsed: list[tuple[int, _Entry]] = []
    problems: list[EntryProblem] = []
    for index, raw in enumerate(entries, start=1):
        entry, problem = _check_entry(index, raw)
        if problem is not None:
            problems.append(problem)
        elif entry is not None:
            parsed.append((index, entry))
    good, clashes = _without_clashes(parsed)
    problems += clashes
    merchants = tuple(_merchant(entry, order, base) for order, (_, entry) in enumerate(good))
    return MerchantsFile(source, merchants, tuple(sorted(problems, key=lambda p: p.index)))


def _check_entry(index: int, raw: object) -> tuple[_Entry | None, EntryProblem | None]:
    if not isinstance(raw, dict):
        return None, EntryProblem(index, None, None, "must be a mapping of keys (id, ...)")
    raw_id = raw.get("id")
    merchant_id = raw_id if isinstance(raw_id, str) else None
    try:
        return _Entry.model_validate(raw), None
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or None
        message = _message(first)
        more = len(exc.errors()) - 1
        if more:
            others = ", ".join(".".join(str(p) for p in error["loc"]) for error in exc.errors()[1:])
            message += f" (and {more} more: {others})"
        return None, EntryProblem(index, merchant_id, key, message)


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        close = get_close_matches(str(error["loc"][-1]), list(_Entry.model_fields), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key ({hint}keys: " + ", ".join(_Entry.model_fields) + ")"
    if error["type"] == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{message} (got {error.get('input')!r})"


def _without_clashes(
    parsed: Sequence[tuple[int, _Entry]],
) -> tuple[list[tuple[int, _Entry]], list[EntryProblem]]:
    """Drop later entries that repeat an id, a Loop connection or a Whiplash customer, and
    every entry of a shared Whiplash account that does not name its customer."""
    good: list[tuple[int, _Entry]] = []
    problems: list[EntryProblem] = []
    first_of: dict[tuple[str, object], int] = {}
    for index, entry in parsed:
        keys = {
            "id": entry.id,
            "loop_conn_id": entry.loop_conn_id or _loop_conn_id(entry),
            "whiplash_customer_id": (entry.whiplash_conn_id, entry.whiplash_customer_id),
        }
        clash = None
        for key, value in keys.items():
            if key == "whiplash_customer_id" and entry.whiplash_customer_id is None:
                continue
            earlier = first_of.get((key, value))
            if earlier is not None:
                clash = EntryProblem(
                    index, entry.id, key, f"repeats entry {earlier}'s {key} {_shown(value)}"
                )
                break
        if clash is not None:
            problems.append(clash)
            continue
        for key, value in keys.items():
            first_of[(key, value)] = index
        good.append((index, entry))
    per_account: dict[str, int] = {}
    for _, entry in good:
        per_account[entry.whiplash_conn_id] = per_account.get(entry.whiplash_conn_id, 0) + 1
    kept = []
    for index, entry in good:
        if entry.whiplash_customer_id is None and per_account[entry.whiplash_conn_id] > 1:
            problems.append(
                EntryProblem(
                    index,
                    entry.id,
                    "whiplash_customer_id",
                    f"required: {per_account[entry.whiplash_conn_id]} merchants share "
                    f"whiplash_conn_id {entry.whiplash_conn_id!r}, and without its customer id "
                    "this merchant would read every customer's returns",
                )
            )
        else:
            kept.append((index, entry))
    return kept, problems


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return f"{value[1]!r} (in {value[0]!r})"
    return repr(value)


def _loop_conn_id(entry: _Entry) -> str:
    return default_loop_conn_id(entry.id)


def _merchant(entry: _Entry, order: int, base: Path | None) -> Merchant:
    criteria = entry.criteria
    if criteria is not None and base is not None and not Path(criteria).is_absolute():
        criteria = str(base / criteria)
    return Merchant(
        id=entry.id,
        loop_conn_id=entry.loop_conn_id or _loop_conn_id(entry),
        whiplash_conn_id=entry.whiplash_conn_id,
        whiplash_customer_id=entry.whiplash_customer_id,
        criteria=criteria,
        warehouse_id=entry.warehouse_id,
        rma_every_minutes=entry.rma_every_minutes,
        receipts_every_minutes=entry.receipts_every_minutes,
        backfill_at=entry.backfill_at,
        order=order,
    )


def load_merchants(path: Path | str | None = None) -> MerchantsFile:
    """The merchants file at `path` (None: `RETURNS_SYNC_MERCHANTS`); no file configured -> the
    single `default` merchant. Cached until the file changes."""
    source = Path(path) if path is not None else settings().merchants
    if source is None:
        return MerchantsFile(None, (Merchant.default(),))
    try:
        stat = source.stat()
    except OSError as exc:
        raise MerchantsFileError(
            f"{source}: cannot read the merchants file named by {MERCHANTS_ENV_VAR} ({exc})"
        ) from None
    return _parsed(str(source), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _parsed(source: str, mtime_ns: int, size: int) -> MerchantsFile:
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MerchantsFileError(f"{path}: cannot read the merchants file ({exc})") from None
    return parse_merchants(text, path)


def configured_merchants() -> list[Merchant]:
    """The deployment's good merchants in file order (no file: `[default]`).

    Raises `MerchantsFileError` when the file cannot be used at all."""
    return list(load_merchants().merchants)


def get_merchant(merchant_id: str) -> Merchant:
    """The configured merchant `merchant_id`; `UnknownMerchantError` (a `KeyError`) naming it
    and the file otherwise (a removed merchant's DAG, a mistyped `--merchant`)."""
    loaded = load_merchants()
    for merchant in loaded.merchants:
        if merchant.id == merchant_id:
            return merchant
    where = f"the merchants file {loaded.path}" if loaded.path else "this deployment"
    for problem in loaded.problems:
        if problem.merchant_id == merchant_id:
            raise UnknownMerchantError(
                f"merchant {merchant_id!r}: its entry in {where} is ignored: {problem}"
            )
    known = ", ".join(m.id for m in loaded.merchants[:20])
    raise UnknownMerchantError(
        f"merchant {merchant_id!r} is not configured in {where} (configured: {known})"
    )


def account_peers(merchant: Merchant) -> frozenset[str]:
    """The other configured merchants on `merchant`'s Whiplash account."""
    return frozenset(
        m.id
        for m in load_merchants().merchants
        if m.whiplash_conn_id == merchant.whiplash_conn_id and m.id != merchant.id
    )


def account_owner(whiplash_conn_id: str, customer_id: int | None = None) -> Merchant | None:
    """The merchant a Whiplash event of this account belongs to when no RMA of ours names it:
    the merchant of `customer_id`, else the first merchant listed for the account (it reports
    the account's returns that belong to no merchant, once); None when no merchant uses it."""
    listed = [m for m in load_merchants().merchants if m.whiplash_conn_id == whiplash_conn_id]
    if customer_id is not None:
        for merchant in listed:
            if merchant.whiplash_customer_id == customer_id:
                return merchant
    return min(listed, key=lambda m: m.order) if listed else None
