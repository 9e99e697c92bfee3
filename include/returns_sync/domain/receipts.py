"""The receipt flow: find final Whiplash receipts, reconcile them, act on Loop.

One decision per Whiplash consumer return, recorded before anything is sent; the first decision
stands. A decided return whose Loop action did not complete (a crash, a 5xx, no answer) is
picked up again by later runs and finished from the recorded decision, not recomputed.

`run_receipts` reads top to bottom, one step per run:
1. *Candidates*: final receipts changed in the window and/or the given ids.
2. *Decide*: every candidate with no decision yet has its Loop return read once; the batch is
   reconciled under the merchant's criteria and each verdict recorded (and, optionally, each
   unit's disposition planned with it). A receipt whose Whiplash or Loop data cannot be read is
   reported with its reason and left undecided, for a later run.
3. *Settle*: Loop's `return.closed` / `return.processing.failed` webhooks settle our queued
   Processes before anything is acted on (a failed one is never re-sent).
4. *Act*: every decided return whose Loop action is not done, new and unfinished alike
   (`domain.actions`: exactly once); then the returns Loop just queued are re-read (Process is
   asynchronous: closed = done now).
5. *Dispositions* (optional): the planned ones whose Process/Flag is done.

Collaborators are injected (the Whiplash and Loop hooks, the state store), as in `domain.rma`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from include.returns_sync.clients.errors import VendorError
from include.returns_sync.domain.actions import (
    ActionOutcome,
    ActionSettings,
    LoopActions,
    act,
    process_failed,
    settle_process,
)
from include.returns_sync.domain.dispositions import (
    DispositionClient,
    DispositionStore,
    plan_and_record,
    plan_dispositions,
    send_waiting_dispositions,
)
from include.returns_sync.domain.rma import is_auth_failure, unreadable_record
from include.returns_sync.models import ConsumerReturn, LoopReturn
from include.returns_sync.models._base import _to_utc
from include.returns_sync.reconcile.criteria import Criteria
from include.returns_sync.reconcile.engine import Reconciliation, reconcile
from include.returns_sync.reconcile.frames import (
    ReturnContext,
    context_frame,
    expected_frame,
    received_frame,
)
from include.returns_sync.reports import format_counts
from include.returns_sync.vocabulary import (
    ACTED_ON,
    PROCESS_FAILED,
    ActionKind,
    ActionStatus,
    UnreadableReason,
    Verdict,
)
from include.returns_sync.vocabulary import ActionOutcomeKind as Outcome

if TYPE_CHECKING:
    from include.returns_sync.state.records import Decision, LoopAction, SyncRecord

log = logging.getLogger(__name__)

#: The durable watermark of the receipt poll.
RECEIPT_WATERMARK = "whiplash_receipts_to_loop.updated_at"
#: Loop webhook topics that settle a queued Process of ours.
RETURN_CLOSED = "return.closed"
PROCESSING_FAILED = "return.processing.failed"


# --- what the flow needs from its collaborators (duck-typed; the real ones live elsewhere) ---
class WhiplashReceipts(Protocol):
    def list_consumer_returns(
        self,
        *,
        updated_since: datetime | None = None,
        statuses: Sequence[int] | None = None,
        ids: Sequence[int] | None = None,
        on_invalid: Callable[[Any, VendorError], None] | None = None,
    ) -> Iterable[ConsumerReturn]: ...


class LoopReceipts(LoopActions, DispositionClient, Protocol):
    def get_return(self, return_id: str) -> LoopReturn: ...


class ReceiptStore(DispositionStore, Protocol):
    def get_decisions(self, whiplash_return_ids: Iterable[int]) -> Mapping[int, Decision]: ...
    def find_by_whiplash_id(
        self, whiplash_return_ids: Iterable[int]
    ) -> Mapping[int, SyncRecord]: ...
    def record_decision(
        self,
        whiplash_return_id: int,
        *,
        verdict: Verdict,
        reason_codes: Iterable[str] = (),
        loop_return_id: str | None = None,
        note: str | None = None,
        detail: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> tuple[Decision, bool]: ...
    def unfinished_decisions(self) -> Mapping[int, Decision]: ...
    def get_actions(
        self, loop_return_ids: Iterable[str]
    ) -> Mapping[str, Mapping[ActionKind, LoopAction]]: ...
    def actions_for(self, loop_return_id: str) -> Mapping[ActionKind, LoopAction]: ...
    def advance_watermark(self, name: str, value: datetime) -> datetime: ...
    def merchant_of_whiplash_return(self, whiplash_return_id: int) -> str | None: ...


@dataclass(frozen=True)
class ReceiptSettings:
    """The merchant's criteria and how to act on Loop (`actions.dry_run`: decide, send nothing)."""

    criteria: Criteria
    actions: ActionSettings = field(default_factory=ActionSettings)
    #: The other merchants of this merchant's Whiplash account (their RMAs are not ours).
    account_peers: frozenset[str] = frozenset()

    @property
    def dry_run(self) -> bool:
        return self.actions.dry_run


@dataclass(frozen=True)
class ReceiptScope:
    """What one run looks at.

    `window`: the poll window (`start`/`end`, ISO) or None; `consumer_return_ids`: given ids
    (manual runs, webhooks); `loop_events`: claimed Loop `return.closed` /
    `return.processing.failed` events by Loop return id.
    """

    run_id: str
    window: Mapping[str, str] | None = None
    consumer_return_ids: Sequence[int] = ()
    loop_events: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Undecided:
    """A final receipt left undecided this run (reported; a later run decides it)."""

    whiplash_return_id: int | None
    loop_return_id: str | None
    reason_code: UnreadableReason
    detail: str
    #: Its `updated_at` in Whiplash (None: unknown); the watermark never moves past it.
    updated_at: datetime | None

    @classmethod
    def from_listing(cls, raw: Any, error: VendorError) -> Undecided:
        """A listed consumer return whose JSON does not validate, as far as its JSON tells."""
        fields = raw if isinstance(raw, dict) else {}
        originator = fields.get("originator") if isinstance(fields.get("originator"), dict) else {}
        loop_id = (originator or {}).get("original_id") or fields.get("reference")
        return cls(
            whiplash_return_id=fields.get("id"),
            loop_return_id=str(loop_id) if loop_id not in (None, "") else None,
            reason_code=UnreadableReason.INVALID_WHIPLASH_DATA,
            detail=error.message,
            updated_at=_parse_time(fields.get("updated_at")),
        )

    @classmethod
    def from_loop_failure(
        cls, receipt: ConsumerReturn, loop_id: str, error: VendorError, reason: UnreadableReason
    ) -> Undecided:
        """A final receipt whose Loop return could not be read (no answer, an HTML page, a
        malformed record)."""
        return cls(receipt.id, loop_id, reason, error.message, receipt.updated_at)

    def to_row(self) -> dict[str, Any]:
        """The report's row (without `updated_at`)."""
        return {
            "whiplash_return_id": self.whiplash_return_id,
            "loop_return_id": self.loop_return_id,
            "reason_code": str(self.reason_code),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ToAct:
    """A recorded process/flag decision, carried to Loop."""

    loop_return_id: str
    verdict: Verdict
    note: str | None


@dataclass
class ReceiptReport:
    """Everything one run did; `summary()` is what the logs, the report and XCom show."""

    scope: ReceiptScope
    dry_run: bool
    candidates: int = 0
    final: int = 0
    already_decided: int = 0
    reconciliation: Reconciliation | None = None
    undecided: list[Undecided] = field(default_factory=list)
    #: One row per Loop action outcome (process/flag), `whiplash_return_id` first.
    actions: list[dict[str, Any]] = field(default_factory=list)
    dispositions: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly counts and ids (summary.json, XCom)."""
        result = self._reconciliation()
        verdict_rows = result.verdict_rows()
        return {
            "window": dict(self.scope.window) if self.scope.window is not None else None,
            "candidates": self.candidates,
            "final": self.final,
            "already_decided": self.already_decided,
            "dry_run": self.dry_run,
            **result.summary(),
            "actions": _count(row["outcome"] for row in self.actions),
            "dispositions": _count(row["outcome"] for row in self.dispositions),
            "loop_return_ids": _verdict_buckets(verdict_rows),
            "unreadable": _unreadable_buckets(self.undecided),
            "failed_actions": _failed_actions([*self.actions, *self.dispositions]),
            # found failed in this run (alerted once); earlier ones stay in failed_actions
            "process_failed": self.process_failed(),
        }

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """The run report's CSV tables."""
        result = self._reconciliation()
        return {
            "lines": result.line_rows(),
            "verdicts": result.verdict_rows(),
            "actions": [*self.actions, *self.dispositions],
            "unreadable": [row.to_row() for row in self.undecided],
        }

    def log(self, summary: Mapping[str, Any], folder: str) -> None:
        """What the task log shows of the run (its `summary()`, written to `folder`)."""
        log.info(
            "Receipt run report (%s):\n%s", folder, format_counts("verdict", summary["verdicts"])
        )
        for code, loop_ids in summary["failed_actions"].items():
            log.warning("Loop actions failed, %s: %s", code, ", ".join(loop_ids))
        reasons = {k: v for k, v in summary["reason_codes"].items() if v}
        if reasons:
            log.warning("Flag/skip reasons:\n%s", format_counts("reason", reasons))
        if summary["actions"]:
            log.info("Loop actions:\n%s", format_counts("action outcome", summary["actions"]))
        if summary["dispositions"]:
            log.info("Dispositions:\n%s", format_counts("outcome", summary["dispositions"]))
        for row in self.undecided:
            log.warning(
                "Receipt %s (Loop return %s) not decided, %s: %s",
                row.whiplash_return_id,
                row.loop_return_id,
                row.reason_code,
                row.detail,
            )

    def process_failed(self) -> list[str]:
        """Loop return ids whose Process Loop failed to carry out, found in this run."""
        return sorted(
            {
                str(row["loop_return_id"])
                for row in self.actions
                if row.get("vendor_code") == PROCESS_FAILED and not row.get("repeat")
            }
        )

    def watermark(self) -> datetime | None:
        """How far the receipt watermark may move: to the window's end, never past a receipt
        left undecided; None: not at all (a dry run, no window, an undecided receipt of
        unknown time)."""
        if self.scope.window is None or self.dry_run:
            return None
        stamps = [row.updated_at for row in self.undecided]
        if any(stamp is None for stamp in stamps):
            return None
        window_end = datetime.fromisoformat(self.scope.window["end"])
        return min([window_end, *(stamp for stamp in stamps if stamp is not None)])

    def _reconciliation(self) -> Reconciliation:
        if self.reconciliation is None:
            raise ValueError("the run has not reconciled yet")
        return self.reconciliation


def run_receipts(
    scope: ReceiptScope,
    *,
    whiplash: WhiplashReceipts,
    loop: LoopReceipts,
    store: ReceiptStore,
    settings: ReceiptSettings,
) -> ReceiptReport:
    """The whole receipt flow for one run (see the module docstring); returns its report.

    A refusal of our credentials propagates (the task fails and alerts); so does Loop failing
    for every undecided receipt (the task retries). Failures about one return are reported.
    """
    criteria = settings.criteria
    report = ReceiptReport(scope=scope, dry_run=settings.dry_run)

    # 1. candidates
    def invalid_receipt(raw: Any, error: VendorError) -> None:
        report.undecided.append(Undecided.from_listing(raw, error))

    candidates = _candidates(whiplash, scope, criteria, invalid_receipt)
    candidates = _not_peers(store, candidates, settings.account_peers)
    final = [cr for cr in candidates if criteria.is_final(cr.status)]
    ids = [cr.id for cr in final]
    decisions = store.get_decisions(ids)
    report.candidates, report.final, report.already_decided = (
        len(candidates),
        len(final),
        len(decisions),
    )

    # 2. decide every return with no decision yet, from its Loop return read once
    undecided = [cr for cr in final if cr.id not in decisions]
    loop_returns, contexts, readable = _read_loop_returns(
        loop, undecided, store.find_by_whiplash_id(ids), report
    )
    result = reconcile(
        expected_frame(loop_returns.items()),
        received_frame(readable),
        context_frame(contexts),
        criteria,
    )
    report.reconciliation = result
    to_act = _record_decisions(store, result, loop_returns, scope.run_id, settings)

    # Decisions of earlier runs whose Loop action did not finish (a crash, no answer) are
    # carried on whatever this run's window is: the recorded decision stands.
    for wid, decision in {**store.unfinished_decisions(), **decisions}.items():
        if decision.verdict in ACTED_ON and decision.loop_return_id:
            to_act[wid] = ToAct(decision.loop_return_id, decision.verdict, decision.note)

    # 3. Loop's word on queued Processes first: a failed one is never re-sent
    wid_by_loop_id = {item.loop_return_id: wid for wid, item in to_act.items()}
    settled = _settle_from_events(store, scope.loop_events)
    for outcome in settled:
        report.actions.append(_row(wid_by_loop_id.get(outcome.loop_return_id), outcome))

    # 4. act on every decided return whose action is not yet done
    settled_ids = {outcome.loop_return_id for outcome in settled}
    done = store.get_actions([item.loop_return_id for item in to_act.values()])
    for wid, item in sorted(to_act.items()):
        if item.loop_return_id in settled_ids or _already_sent(item, done):
            continue
        try:
            current = loop_returns.get(wid) or loop.get_return(item.loop_return_id)
            outcome = act(loop, store, current, item.verdict, item.note, settings.actions)
        except VendorError as exc:  # reading it or its notes failed: leave it for the next run
            if is_auth_failure(exc):
                raise  # the credentials are wrong: fail the task, alert
            log.warning("Could not act on Loop return %s: %s", item.loop_return_id, exc)
            continue
        report.actions.append(_row(wid, outcome))
    _recheck_queued(loop, store, report.actions)

    # 5. optional: the planned dispositions of every return whose Process/Flag is done
    if criteria.dispositions.enabled and not settings.dry_run:
        dispositions = send_waiting_dispositions(loop, store)
        report.dispositions = [_row(None, outcome) for outcome in dispositions]
    return report


def _candidates(
    whiplash: WhiplashReceipts,
    scope: ReceiptScope,
    criteria: Criteria,
    on_invalid: Callable[[Any, VendorError], None],
) -> list[ConsumerReturn]:
    """Receipts of the given ids, then those changed in the window (webhook events claimed by
    a scheduled run come as ids next to its window)."""
    candidates: list[ConsumerReturn] = []
    if scope.consumer_return_ids:
        candidates = list(
            whiplash.list_consumer_returns(
                ids=list(scope.consumer_return_ids), on_invalid=on_invalid
            )
        )
    if scope.window is not None:
        since = datetime.fromisoformat(scope.window["start"])
        seen = {cr.id for cr in candidates}
        candidates += [
            cr
            for cr in whiplash.list_consumer_returns(
                updated_since=since, statuses=criteria.final_statuses, on_invalid=on_invalid
            )
            if cr.id not in seen
        ]
    return candidates


def _not_peers(
    store: ReceiptStore, candidates: list[ConsumerReturn], peers: frozenset[str]
) -> list[ConsumerReturn]:
    """The candidates that are not the RMA of another merchant of the same Whiplash account.

    Merchants sharing a Whiplash account each read it as their own customer (`X-Customer-ID`),
    so a peer's consumer return should never be listed here; if one is (a read Whiplash does
    not scope by customer), the peer reconciles it, and this merchant must neither report it as
    `UNKNOWN_RETURN` (reporting it twice) nor look at it further. A return no merchant created
    stays: it is reported once, by the merchant whose customer or account it came in on. No
    peers (a merchant alone on its account): nothing to check, no query.
    """
    if not peers:
        return candidates
    kept = []
    for cr in candidates:
        owner = store.merchant_of_whiplash_return(cr.id)
        if owner in peers:
            log.info("Skipping Whiplash return %s: an RMA of merchant %s", cr.id, owner)
        else:
            kept.append(cr)
    return kept


def _read_loop_returns(
    loop: LoopReceipts,
    receipts: Sequence[ConsumerReturn],
    records: Mapping[int, SyncRecord],
    report: ReceiptReport,
) -> tuple[dict[int, LoopReturn], list[ReturnContext], list[ConsumerReturn]]:
    """Each receipt's Loop return, read once: (Loop returns by receipt, contexts, readable).

    A receipt whose Loop return cannot be read (still failing after the client's retries, or an
    answer about it alone that cannot be read) is reported undecided; when Loop failed for
    every one of them, that failure propagates (the task retries, alerts).
    """
    loop_returns: dict[int, LoopReturn] = {}
    contexts: list[ReturnContext] = []
    readable: list[ConsumerReturn] = []
    unavailable: VendorError | None = None
    for cr in receipts:
        record = records.get(cr.id)
        loop_id = record.loop_return_id if record else cr.loop_return_id
        current = None
        if loop_id:
            try:
                current = loop.get_return(loop_id)
            except ValueError:  # not a Loop return id at all (a reference someone typed)
                current = None
            except VendorError as exc:
                if exc.status != 404:
                    if exc.transient:  # a 429 burst, an outage: decide it later
                        unavailable, reason = exc, UnreadableReason.LOOP_UNAVAILABLE
                    elif unreadable_record(exc):
                        reason = UnreadableReason.INVALID_LOOP_DATA
                    else:
                        raise
                    report.undecided.append(Undecided.from_loop_failure(cr, loop_id, exc, reason))
                    continue
        readable.append(cr)
        if current is not None:
            loop_returns[cr.id] = current
        contexts.append(
            ReturnContext(
                whiplash_return_id=cr.id,
                loop_return_id=loop_id,
                loop_state=current.state if current is not None else None,
                known=record is not None,
            )
        )
    if unavailable is not None and not readable:
        raise unavailable
    return loop_returns, contexts, readable


def _record_decisions(
    store: ReceiptStore,
    result: Reconciliation,
    loop_returns: Mapping[int, LoopReturn],
    run_id: str,
    settings: ReceiptSettings,
) -> dict[int, ToAct]:
    """Record each new verdict (and plan its dispositions); return the ones to act on.

    A dry run records nothing, but still reports what it would do.
    """
    to_act: dict[int, ToAct] = {}
    lines = receipt_lines(result) if not settings.dry_run else {}
    for row in result.verdict_rows():
        wid, verdict = int(row["whiplash_return_id"]), Verdict(str(row["verdict"]))
        if not settings.dry_run:
            store.record_decision(
                wid,
                verdict=verdict,
                reason_codes=list(row["reason_codes"]),
                loop_return_id=row["loop_return_id"],
                note=row["note"],
                detail={"lines": lines.get(wid, [])},
                run_id=run_id,
            )
        if verdict in ACTED_ON:
            to_act[wid] = ToAct(row["loop_return_id"], verdict, row["note"])
    options = settings.criteria.dispositions
    if options.enabled and not settings.dry_run:  # planned with the decision: its lines are here
        acted = {wid: item.loop_return_id for wid, item in to_act.items() if item.loop_return_id}
        received = result.received_units(acted)
        for wid, loop_id in acted.items():
            if wid in loop_returns:
                items = plan_dispositions(
                    loop_returns[wid],
                    received.get(wid, {}),
                    options,
                    settings.criteria.sku_aliases,
                )
                plan_and_record(store, loop_id, items)
    return to_act


#: The unit columns of a receipt line kept with its decision (the operator views show them).
LINE_UNITS = ("expected", "good", "damaged", "missing", "extra")


def receipt_lines(result: Reconciliation) -> dict[int, list[dict[str, Any]]]:
    """Each return's receipt lines per SKU (expected / good / damaged / missing / extra, and
    whether Loop expected the SKU at all), as stored in its decision's `detail["lines"]`."""
    lines: dict[int, list[dict[str, Any]]] = {}
    for line in result.line_rows():
        units = {name: int(line[name]) for name in LINE_UNITS}
        entry = {"sku": str(line["sku"]), **units, "unexpected": bool(line["unexpected"])}
        lines.setdefault(int(line["whiplash_return_id"]), []).append(entry)
    return lines


def _already_sent(item: ToAct, done: Mapping[str, Mapping[ActionKind, LoopAction]]) -> bool:
    """Every call of this verdict is recorded `sent`: nothing to read or do."""
    recorded = done.get(item.loop_return_id, {})
    needed = (
        (ActionKind.PROCESS,)
        if item.verdict == Verdict.PROCESS
        else (ActionKind.FLAG, ActionKind.NOTE)
    )
    return all(
        (action := recorded.get(kind)) is not None and action.status == ActionStatus.SENT
        for kind in needed
    )


def _settle_from_events(
    store: ReceiptStore, loop_events: Mapping[str, Sequence[Mapping[str, Any]]]
) -> list[ActionOutcome]:
    """Settle our queued Processes from Loop's `return.closed` / `return.processing.failed`."""
    settled = []
    actions = store.get_actions(list(loop_events)) if loop_events else {}
    for loop_id, events in sorted(loop_events.items()):
        previous = actions.get(loop_id, {}).get(ActionKind.PROCESS)
        triggers = {str(event.get("trigger")) for event in events}
        outcome = None
        if RETURN_CLOSED in triggers:  # closed wins: it is the later, final word
            outcome = settle_process(store, loop_id, "closed", previous)
        elif PROCESSING_FAILED in triggers:
            message = next((e.get("message") for e in events if e.get("message")), None)
            outcome = process_failed(store, loop_id, previous, message)
        if outcome is None:
            log.info("Loop %s for return %s: no Process of ours to settle", triggers, loop_id)
            continue
        log.info("Loop return %s: Process %s (webhook)", loop_id, outcome.outcome)
        settled.append(outcome)
    return settled


def _recheck_queued(loop: LoopReceipts, store: ReceiptStore, rows: list[dict[str, Any]]) -> None:
    """Re-read each return whose Process Loop queued in this run; confirm the closed ones.

    Otherwise a later run, or Loop's `return.closed` webhook, confirms them.
    """
    queued = [
        row
        for row in rows
        if row["verdict"] == ActionKind.PROCESS and row["outcome"] == Outcome.QUEUED
    ]
    for row in queued:
        loop_id = str(row["loop_return_id"])
        try:
            state = loop.get_return(loop_id).state
        except VendorError as exc:  # a later run re-reads it
            if is_auth_failure(exc):
                raise
            log.warning("Could not re-check Loop return %s after Process: %s", loop_id, exc)
            continue
        previous = store.actions_for(loop_id).get(ActionKind.PROCESS)
        settled = settle_process(store, loop_id, state, previous)
        if settled is not None:
            row.update(settled.to_row())


def _row(whiplash_return_id: int | None, outcome: ActionOutcome) -> dict[str, Any]:
    return {"whiplash_return_id": whiplash_return_id, **outcome.to_row()}


def _parse_time(value: Any) -> datetime | None:
    try:
        return _to_utc(value)
    except ValueError:
        return None


def _failed_actions(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Loop return ids of every failed action this run, by vendor code (PROCESS_FAILED, ...)."""
    buckets: dict[str, set[str]] = {}
    for row in rows:
        if row.get("outcome") == Outcome.FAILED:
            code = str(row.get("vendor_code") or "-")
            buckets.setdefault(code, set()).add(str(row["loop_return_id"]))
    return {code: sorted(ids) for code, ids in sorted(buckets.items())}


def _unreadable_buckets(rows: Iterable[Undecided]) -> dict[str, list[str]]:
    buckets: dict[str, list[str]] = {}
    for row in rows:
        buckets.setdefault(str(row.reason_code), []).append(str(row.whiplash_return_id))
    return {k: sorted(v) for k, v in sorted(buckets.items())}


def _count(values: Iterator[Any] | Iterable[Any]) -> dict[str, int]:
    return dict(sorted(Counter(str(value) for value in values).items()))


def _verdict_buckets(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    buckets: dict[str, list[str]] = {}
    for row in rows:
        codes = "|".join(row["reason_codes"]) or "-"
        buckets.setdefault(f"{row['verdict']}:{codes}", []).append(str(row["loop_return_id"]))
    return {k: sorted(v) for k, v in sorted(buckets.items())}


__all__ = [
    "RECEIPT_WATERMARK",
    "LoopReceipts",
    "ReceiptReport",
    "ReceiptScope",
    "ReceiptSettings",
    "ReceiptStore",
    "Undecided",
    "WhiplashReceipts",
    "run_receipts",
]
