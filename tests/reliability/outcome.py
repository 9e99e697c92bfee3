"""The end state of the DAG runs measured against the sandbox's truth (reliability tests).

The DAGs themselves run through the shared in-process harness (`tests.support.dag_harness`:
`Pipeline`, `DagResult`); `check_outcome` compares what they left in Whiplash, Loop and the
state store with `SeedTruth`: RMAs, Loop actions, decisions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.support.dag_harness import rmas_by_loop_id

ACTIONS = ("process", "flag", "note")
#: What the reliability tests add to the harness's environment: unmappable returns are
#: reported, never a reason to fail the run.
RELIABILITY_ENV = {"RETURNS_SYNC_MAX_UNMAPPABLE": "0"}


def loop_calls(sandbox: Any, skipped: set[str] | None = None) -> dict[str, Counter[str]]:
    """Per Loop return: how many calls of each action Loop accepted (`ok`) and refused."""
    accepted: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for entry in sandbox.loop.actions():
        if entry["return_id"] in (skipped or set()):
            continue
        key = f"{entry['return_id']}:{entry['action']}"
        (accepted if entry["ok"] else refused)[key] += 1
    return {"accepted": accepted, "refused": refused}


@dataclass
class Outcome:
    """The end state measured against the sandbox's truth; every list should be empty."""

    returns: int = 0
    need_rma: int = 0
    final_receipts: int = 0
    rma_missing: list[str] = field(default_factory=list)
    rma_unrecorded: list[str] = field(default_factory=list)
    rma_duplicated: list[str] = field(default_factory=list)
    rma_unwanted: list[str] = field(default_factory=list)
    receipt_unfinished: list[str] = field(default_factory=list)
    wrong_verdicts: list[str] = field(default_factory=list)
    double_effects: list[str] = field(default_factory=list)
    actions_on_not_open: list[str] = field(default_factory=list)
    flags_without_note: list[str] = field(default_factory=list)
    reflagged: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return len(self.rma_missing) + len(self.rma_unrecorded) + len(self.receipt_unfinished)

    @property
    def duplicates(self) -> int:
        return len(self.rma_duplicated) + len(self.double_effects)

    def problems(self) -> dict[str, list[str]]:
        names = (
            "rma_missing",
            "rma_unrecorded",
            "rma_duplicated",
            "rma_unwanted",
            "receipt_unfinished",
            "wrong_verdicts",
            "double_effects",
            "actions_on_not_open",
            "flags_without_note",
        )
        return {name: getattr(self, name)[:10] for name in names if getattr(self, name)}


def check_outcome(sandbox: Any, store: Any, ignore: Iterable[str] = ()) -> Outcome:
    """Compare Whiplash, Loop and the state store with what a correct pipeline must reach.

    * every return that needs an RMA has exactly one, recorded in the state store; no other
      Loop return has one;
    * every final receipt has the expected decision (verdict and reason codes) and its Loop
      action done exactly once: one accepted Process, or a Flag with exactly one note;
    * a Loop return that was not open when its package arrived was never acted on, and no Loop
      call was refused.

    A flag sent again after its first answer was lost counts in `reflagged`, not as a double
    effect: Loop's Flag sets a marker, so a repeat changes nothing (see docs/RELIABILITY.md).
    Loop returns in `ignore` (a test changed what they should become) are left out.
    """
    skipped = set(ignore)
    truth = {rid: fact for rid, fact in sandbox.truth.returns.items() if rid not in skipped}
    outcome = Outcome(returns=len(truth))
    rmas = rmas_by_loop_id(sandbox)
    need = [rid for rid, fact in truth.items() if fact.needs_rma]
    outcome.need_rma = len(need)
    records = store.get_sync_records(need)
    for rid in need:
        if rmas[rid] == 0:
            outcome.rma_missing.append(rid)
        record = records.get(rid)
        if record is None or str(record.status) not in ("created", "adopted"):
            outcome.rma_unrecorded.append(rid)
    outcome.rma_duplicated = sorted(
        rid for rid, count in rmas.items() if count > 1 and rid not in skipped
    )
    outcome.rma_unwanted = sorted(rid for rid in rmas if rid in truth and not truth[rid].needs_rma)

    calls = loop_calls(sandbox, skipped)
    accepted, refused = calls["accepted"], calls["refused"]
    finals = {rid: fact for rid, fact in truth.items() if fact.expected_verdict}
    outcome.final_receipts = len(finals)
    decisions = store.get_decisions([f.consumer_return_id for f in finals.values()])
    for rid, fact in finals.items():
        decision = decisions.get(fact.consumer_return_id)
        process, flag = accepted[f"{rid}:process"], accepted[f"{rid}:flag"]
        notes = len(sandbox.loop.notes_for(rid))
        if decision is None:
            outcome.receipt_unfinished.append(rid)
            continue
        reasons = sorted(str(code) for code in decision.reason_codes)
        if str(decision.verdict) != fact.expected_verdict or reasons != expected_reasons(fact):
            outcome.wrong_verdicts.append(f"{rid}: {decision.verdict} {reasons}")
        if fact.expected_verdict == "skip":
            if process or flag or notes or sum(refused[f"{rid}:{a}"] for a in ACTIONS):
                outcome.actions_on_not_open.append(rid)
            continue
        wanted = (1, 0, 0) if fact.expected_verdict == "process" else (0, 1, 1)
        done = (min(process, 1), min(flag, 1), min(notes, 1))
        if done != wanted:
            outcome.receipt_unfinished.append(f"{rid}: process {process} flag {flag} notes {notes}")
        if process > 1 or notes > 1:
            outcome.double_effects.append(f"{rid}: process {process} notes {notes}")
        if flag > 1:
            outcome.reflagged.append(rid)
        if flag and not notes:
            outcome.flags_without_note.append(rid)
    for key, count in refused.items():
        if count:
            outcome.actions_on_not_open.append(f"refused {key} x{count}")
    return outcome


def expected_reasons(fact: Any) -> list[str]:
    """The reason codes the default criteria give, sorted.

    The sandbox's truth names the discrepancy it planned (a "missing" receipt: MISSING_ITEMS);
    when the package then held no unit at all (a one-unit return, that unit missing) the
    criteria also say NOTHING_RECEIVED, which the truth leaves out.
    """
    reasons = set(fact.expected_reasons)
    received = sum(good + damaged for _, good, damaged in fact.received)
    if fact.expected_verdict == "flag" and received == 0:
        reasons.add("NOTHING_RECEIVED")
    return sorted(reasons)
