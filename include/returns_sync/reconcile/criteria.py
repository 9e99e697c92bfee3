"""Merchant criteria for receipt reconciliation: a versioned YAML file, validated at load.

Which receipts are processed and which are flagged is the merchant's policy, not our code, so it
lives in `include/criteria.yaml` (shipped defaults, see docs/CRITERIA.md) and can be replaced
per deployment through `RETURNS_SYNC_CRITERIA`. A bad file must stop the pipeline before it
acts on Loop, with a message that names the file, the key and what is wrong with it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from include.returns_sync.domain.dispositions import Dispositions
from include.returns_sync.domain.sku import BLANK_SKU, normalise_sku
from include.returns_sync.settings import Settings, settings
from include.returns_sync.strict_yaml import StrictLoader, yaml_problem

#: The criteria file format this release reads.
CURRENT_VERSION = 1
#: Environment variable that points at a deployment's own criteria file.
CRITERIA_ENV_VAR = Settings.criteria.name
#: The defaults shipped with the project (include/criteria.yaml).
SHIPPED_CRITERIA = Path(__file__).resolve().parents[2] / "criteria.yaml"

FlagOrProcess = Literal["flag", "process"]
FlagOrIgnore = Literal["flag", "ignore"]


class CriteriaError(ValueError):
    """The criteria file is missing, unreadable or invalid; the message says where and why."""


class Criteria(BaseModel):
    """What the merchant wants done with a final receipt. Defaults are PRODUCT.md 2.2's.

    `on_*` options choose whether a condition flags the return for a human or is accepted;
    `value_threshold` sends expensive returns to a human whatever arrived; `sku_aliases` maps
    alternative SKUs (normalised) onto the canonical SKU they stand for; `final_statuses` are
    the Whiplash consumer-return statuses at which a receipt is complete.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = CURRENT_VERSION
    on_damaged: FlagOrProcess = "flag"
    on_shortfall: FlagOrProcess = "flag"
    on_overage: FlagOrIgnore = "flag"
    on_unexpected_sku: FlagOrIgnore = "flag"
    value_threshold: Decimal | None = None
    final_statuses: tuple[int, ...] = (300,)
    sku_aliases: dict[str, str] = Field(default_factory=dict)
    dispositions: Dispositions = Field(default_factory=Dispositions)

    @field_validator("version", mode="before")
    @classmethod
    def _supported_version(cls, value: object) -> int:
        if isinstance(value, bool) or value != CURRENT_VERSION:
            raise ValueError(
                f"unsupported criteria version {value!r} (this release reads version "
                f"{CURRENT_VERSION})"
            )
        return CURRENT_VERSION

    @field_validator("value_threshold", mode="before")
    @classmethod
    def _money_or_null(cls, value: object) -> Decimal | None:
        if value is None:
            return None
        problem = f"must be a non-negative amount or null (got {value!r})"
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
            raise ValueError(problem)
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(problem) from None
        if not amount.is_finite() or amount < 0:
            raise ValueError(problem)
        return amount

    @field_validator("final_statuses", mode="before")
    @classmethod
    def _status_codes(cls, value: object) -> tuple[int, ...]:
        problem = f"must be a non-empty list of Whiplash status codes, e.g. [300] (got {value!r})"
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(problem)
        statuses: list[int] = []
        for status in value:
            if isinstance(status, bool) or not isinstance(status, int) or status <= 0:
                raise ValueError(f"{status!r} is not a Whiplash status code (a positive integer)")
            if status not in statuses:
                statuses.append(status)
        return tuple(statuses)

    @field_validator("sku_aliases", mode="before")
    @classmethod
    def _alias_table(cls, value: object) -> dict[str, str]:
        """Normalise both sides; reject blanks, conflicts and chains so look-up is one step."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError(f"must be a mapping of alias SKU -> canonical SKU (got {value!r})")
        table: dict[str, str] = {}
        written: dict[str, object] = {}
        for alias, canonical in value.items():
            for side in (alias, canonical):
                if not isinstance(side, (str, int)) or isinstance(side, bool):
                    raise ValueError(f"{side!r} is not a SKU (use text)")
            key, target = normalise_sku(alias), normalise_sku(canonical)
            if BLANK_SKU in (key, target):
                raise ValueError(f"{alias!r}: {canonical!r}: a SKU cannot be blank")
            if key == target:
                raise ValueError(f"{alias!r} is mapped onto itself")
            if key in table and table[key] != target:
                raise ValueError(
                    f"{alias!r} and {written[key]!r} are the same SKU but map to different "
                    f"canonical SKUs ({target!r} vs {table[key]!r})"
                )
            table[key] = target
            written[key] = alias
        for key, target in table.items():
            if target in table:
                raise ValueError(
                    f"{written[key]!r} maps to {target!r}, which is itself an alias of "
                    f"{table[target]!r}; map {written[key]!r} straight to {table[target]!r}"
                )
        return table

    def is_final(self, status: int | None) -> bool:
        """Whether a Whiplash receipt at `status` is complete enough to reconcile."""
        return status is not None and status in self.final_statuses


def criteria_path(path: str | Path | None = None) -> Path:
    """Resolve which criteria file applies: the argument, then the environment, then ours."""
    if path is not None and str(path).strip():
        return Path(path)
    return settings().criteria or SHIPPED_CRITERIA


def load_criteria(path: str | Path | None = None) -> Criteria:
    """Read and validate the criteria file (None -> $RETURNS_SYNC_CRITERIA -> shipped file)."""
    source = criteria_path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CriteriaError(f"{source}: criteria file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CriteriaError(f"{source}: cannot read criteria file ({exc})") from exc
    return parse_criteria(text, source=str(source))


def parse_criteria(text: str, source: str = "<criteria>") -> Criteria:
    """Validate criteria given as YAML text; `source` names the file in error messages."""
    try:
        document = yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise CriteriaError(f"{source}: not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(document, dict):
        raise CriteriaError(
            f"{source}: must be a mapping of criteria options (got {type(document).__name__})"
        )
    if "version" not in document:
        raise CriteriaError(
            f"{source}: version: required key is missing (this release reads version "
            f"{CURRENT_VERSION})"
        )
    try:
        return Criteria.model_validate(document)
    except ValidationError as exc:
        problems = [f"{source}: {_describe(error)}" for error in exc.errors()]
        raise CriteriaError("\n".join(problems)) from None


def _describe(error: Any) -> str:
    """Turn one pydantic error into '<key>: <problem>' in words an operator can act on."""
    location = _location(error["loc"])
    kind = error["type"]
    model: type[BaseModel] = Criteria
    for part in error["loc"][:-1]:  # the model that holds the key (criteria or a section)
        annotation = model.model_fields[str(part)].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    if kind == "extra_forbidden":
        allowed = ", ".join(model.model_fields)
        return f"{location}: unknown key (allowed keys: {allowed})"
    if kind == "missing":
        return f"{location}: required key is missing"
    if kind == "literal_error":
        field = model.model_fields[str(error["loc"][-1])]
        choices = ", ".join(str(choice) for choice in get_args(field.annotation))
        return f"{location}: must be one of {choices} (got {error['input']!r})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}"


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "criteria"
