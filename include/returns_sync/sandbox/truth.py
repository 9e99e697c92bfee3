"""What a correct pipeline must conclude about the returns a scenario created.

`Sandbox.seed_day` and `receive_packages` fill a `SeedTruth`; tests and benchmarks check
"nothing lost, nothing doubled" against it, and the admin API serves it as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ReturnTruth:
    """What a correct pipeline must conclude about one Loop return."""

    return_id: str
    state: str
    label_status: str | None
    eligible: bool
    unmappable: str | None
    expected_units: dict[str, int]
    consumer_return_id: int | None = None
    discrepancy: str | None = None
    received: list[tuple[str, int, int]] = field(default_factory=list)
    expected_verdict: str | None = None
    expected_reasons: list[str] = field(default_factory=list)

    @property
    def needs_rma(self) -> bool:
        """Eligible and mappable: exactly one Whiplash consumer return must exist for it."""
        return self.eligible and self.unmappable is None


@dataclass
class SeedTruth:
    """The expected outcome for every Loop return the sandbox created, by Loop return id."""

    returns: dict[str, ReturnTruth] = field(default_factory=dict)

    def eligible_ids(self) -> list[str]:
        return [rid for rid, t in self.returns.items() if t.eligible]

    def rma_ids(self) -> list[str]:
        """Loop return ids that must end with exactly one RMA."""
        return [rid for rid, t in self.returns.items() if t.needs_rma]

    def unmappable(self) -> dict[str, str]:
        """Eligible returns that cannot be mapped, with their expected reason code."""
        return {
            rid: t.unmappable
            for rid, t in self.returns.items()
            if t.eligible and t.unmappable is not None
        }

    def verdicts(self) -> dict[str, str]:
        return {rid: t.expected_verdict for rid, t in self.returns.items() if t.expected_verdict}

    def to_dict(self) -> dict[str, Any]:
        return {
            "returns": {rid: asdict(t) for rid, t in self.returns.items()},
            "eligible": self.eligible_ids(),
            "needs_rma": self.rma_ids(),
            "unmappable": self.unmappable(),
            "verdicts": self.verdicts(),
        }
