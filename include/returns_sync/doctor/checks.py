"""What one preflight check concludes (`CheckResult`), and the helpers every check shares.

A check states an assumption the pipeline makes (PRODUCT.md section 6), what the vendor or the
deployment actually did, and what the pipeline will do about it. Its status says whether going
live is safe:

| status | meaning | blocks going live |
| --- | --- | --- |
| `ok` | the assumption holds | no |
| `warn` | the harsher reading holds (or something is sub-optimal); the pipeline copes | no |
| `blocking` | the pipeline would lose, double or never run work: fix it first | yes |
| `inconclusive` | the check ran but could not decide (e.g. a filter test on an empty account) | no |
| `skipped` | the check does not apply here, or would need a write (the doctor never writes) | no |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    BLOCKING = "blocking"
    INCONCLUSIVE = "inconclusive"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    """One row of the doctor's report.

    `name` is stable (`loop.details_labels`, `whiplash.filter.id_gt`, `airflow.pool.loop_api`)
    so scripts can pick rows out of `--json`; `details` carries the machine-readable facts behind
    `observed` (page sizes, scopes, ids tried). Never put a secret in any field.
    """

    name: str
    assumption: str
    observed: str
    consequence: str
    status: Status
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return self.status is Status.BLOCKING

    @property
    def group(self) -> str:
        """`loop`, `whiplash` or `airflow`: the first part of the name."""
        return self.name.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "status": self.status.value,
            "assumption": self.assumption,
            "observed": self.observed,
            "consequence": self.consequence,
            "details": dict(self.details),
        }


class RowMaker(Protocol):
    """Builds one check's row from what was observed."""

    def __call__(
        self,
        observed: str,
        consequence: str,
        status: Status,
        details: Mapping[str, Any] | None = None,
    ) -> CheckResult: ...


def check(name: str, assumption: str) -> RowMaker:
    """A small factory so each check names its row and assumption once."""

    def result(
        observed: str, consequence: str, status: Status, details: Mapping[str, Any] | None = None
    ) -> CheckResult:
        return CheckResult(name, assumption, observed, consequence, status, dict(details or {}))

    return result


def exit_code(results: list[CheckResult]) -> int:
    """0 only when no check is blocking."""
    return 1 if any(result.blocking for result in results) else 0


def describe_error(error: BaseException) -> str:
    """A one-line, secret-free description of a failure (vendor errors never carry secrets)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
