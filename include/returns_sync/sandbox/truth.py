"""What a correct pipeline must conclude about the returns a scenario created.

`Sandbox.seed_day` and `receive_packages` fill a `SeedTruth`; tests and benchmarks check
"nothing lost, nothing doubled" against it, and the admin API serves it as JSON.

Per merchant (a sandbox serving several): every return says whose it is (`merchant`) and under
which Whiplash customer its RMA must be filed (`whiplash_customer_id`). What a correct pipeline
concludes for merchant M is `truth.for_merchant(M)`: exactly one RMA, filed under M's customer,
for each of M's `rma_ids()`; M's unmappable returns reported by M's runs; M's verdicts acted on
in M's shop only. No return of M ever gets an RMA, a decision or an action in another
merchant's runs, and `misfiled(consumer_returns)` lists the RMAs that break the customer rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    merchant: str = "default"
    whiplash_customer_id: int | None = None

    @property
    def needs_rma(self) -> bool:
        """Eligible and mappable: exactly one Whiplash consumer return must exist for it."""
        return self.eligible and self.unmappable is None


@dataclass
class SeedTruth:
    """The expected outcome for every Loop return the sandbox created, by Loop return id."""

    returns: dict[str, ReturnTruth] = field(default_factory=dict)
    #: Whiplash consumer returns nobody's pipeline created (`Sandbox.seed_unknown_return`),
    #: by id -> the merchant whose runs must report them, once, as UNKNOWN_RETURN (and act on
    #: nothing): the merchant whose Whiplash customer the return belongs to.
    unknown: dict[int, str] = field(default_factory=dict)

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

    def merchants(self) -> list[str]:
        """The merchants that have returns here, in order of their first return."""
        owners = [t.merchant for t in self.returns.values()] + list(self.unknown.values())
        return list(dict.fromkeys(owners))

    def for_merchant(self, merchant: str) -> SeedTruth:
        """One merchant's part: the same `ReturnTruth` objects (later scenario steps such as
        `receive_packages` show through), only that merchant's returns."""
        return SeedTruth(
            {rid: t for rid, t in self.returns.items() if t.merchant == merchant},
            {cr: m for cr, m in self.unknown.items() if m == merchant},
        )

    def misfiled(self, consumer_returns: Iterable[Mapping[str, Any]]) -> list[int]:
        """Ids of consumer returns (rendered, as Whiplash lists them) that carry a known Loop
        return id but sit under another Whiplash customer than that return's merchant."""
        wrong = []
        for rma in consumer_returns:
            originator = rma.get("originator") or {}
            truth = self.returns.get(str(originator.get("original_id") or rma.get("reference")))
            if truth is None or truth.whiplash_customer_id is None:
                continue
            if rma.get("customer_id") != truth.whiplash_customer_id:
                wrong.append(int(rma["id"]))
        return wrong

    def to_dict(self) -> dict[str, Any]:
        """Everything, plus the same summary per merchant under "merchants"."""
        return {
            **self._summary(),
            "returns": {rid: asdict(t) for rid, t in self.returns.items()},
            "merchants": {m: self.for_merchant(m)._summary() for m in self.merchants()},
        }

    def _summary(self) -> dict[str, Any]:
        return {
            "eligible": self.eligible_ids(),
            "needs_rma": self.rma_ids(),
            "unmappable": self.unmappable(),
            "verdicts": self.verdicts(),
            "unknown_returns": {str(cr): m for cr, m in self.unknown.items()},
        }
