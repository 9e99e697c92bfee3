"""Task bodies of `whiplash_receipts_to_loop`: find final receipts, reconcile, act on Loop.

One decision per Whiplash consumer return, recorded before anything is sent; the first decision
stands. A decided return whose Loop action did not complete (a crash, a 5xx, no answer) is
picked up again by later runs and finished from the recorded decision, not recomputed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from include.returns_sync import runtime
from include.returns_sync.reports import format_counts, write_report
from include.returns_sync.tasks.failures import fails_fast

if TYPE_CHECKING:
    from include.returns_sync.run_options import RunOptions

log = logging.getLogger(__name__)

RECEIPT_WATERMARK = "whiplash_receipts_to_loop.updated_at"
#: Reason codes of receipts that could not be read this run: reported, decided by a later run.
INVALID_WHIPLASH_DATA = "INVALID_WHIPLASH_DATA"
INVALID_LOOP_DATA = "INVALID_LOOP_DATA"
LOOP_UNAVAILABLE = "LOOP_UNAVAILABLE"
#: A Process Loop accepted ("queued") but then failed to carry out, or never confirmed.
PROCESS_FAILED = "PROCESS_FAILED"


def plan_window(data_interval_end: datetime) -> dict[str, str]:
    """The poll window `[watermark - overlap, data_interval_end)`, from the durable watermark."""
    return runtime.planned_window(RECEIPT_WATERMARK, data_interval_end)


def plan(
    params: Mapping[str, Any], data_interval_end: datetime | None, *, webhook_only: bool
) -> dict[str, Any]:
    """`plan` of the receipts DAG: the run's `RunOptions` (XCom), settled once for its tasks.

    Given consumer return ids: only those. A run only webhooks started: the inbox alone.
    Otherwise the poll window from the watermark, plus the inbox.
    """
    from include.returns_sync.run_options import settle_or_fail

    given = params.get("consumer_return_ids") or []
    try:
        ids = [str(int(i)) for i in given]
    except (TypeError, ValueError):
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"consumer_return_ids must be Whiplash consumer return ids (integers), got {given!r}"
        ) from None
    if ids:
        return settle_or_fail(params, source="manual", ids=ids)
    if webhook_only:
        return settle_or_fail(params, source="webhook", inbox=True)
    window = plan_window(data_interval_end or datetime.now(UTC))
    return settle_or_fail(params, source="poll", window=window, inbox=True)


@fails_fast
def run_with_inbox(
    *, dag_id: str, run_id: str, options: RunOptions | Mapping[str, Any]
) -> dict[str, Any]:
    """`reconcile_and_act` of the DAG: given ids, or the window plus waiting webhooks.

    A live run claims the inbox (Whiplash receipts, and Loop's `return.closed` /
    `return.processing.failed` events that settle queued Processes) and marks its events done
    only after the run's work succeeded, so a failed run leaves them for the next one. A dry run
    reads the waiting receipt events without claiming them: it decides and reports them, a live
    run takes them.

    A Process Loop failed to carry out (`PROCESS_FAILED`) fails the task after the report is
    written and the events are done (no retries: repeating the run changes nothing), so the
    failure alert pages the operator; later runs report it without failing again.
    """
    from include.returns_sync.run_options import RunOptions
    from include.returns_sync.webhooks import drain

    run = RunOptions.of(options)
    ids = [int(i) for i in run.ids]
    inbox = loop_events = None
    if run.inbox:
        if run.dry_run:
            ids = [int(i) for i in drain.peek("whiplash").resource_ids]
        else:
            loop_events = drain.claim("loop_return", f"{run_id}/reconcile_and_act")
            inbox = drain.claim("whiplash", f"{run_id}/reconcile_and_act")
            ids = [int(i) for i in inbox.resource_ids]
    summary = reconcile_and_act(
        dag_id=dag_id,
        run_id=run_id,
        window=run.window,
        consumer_return_ids=ids,
        dry_run=run.dry_run,
        loop_events=loop_events.payloads if loop_events else None,
    )
    drain.finish(
        [*(inbox.event_ids if inbox else []), *(loop_events.event_ids if loop_events else [])]
    )
    _alert_on_failed_processing(summary)
    return summary


def _alert_on_failed_processing(summary: dict[str, Any]) -> None:
    failed = summary.get("process_failed") or []
    if not failed:
        return
    from airflow.sdk.exceptions import AirflowFailException

    shown = ", ".join(failed[:20]) + (f" and {len(failed) - 20} more" if len(failed) > 20 else "")
    raise AirflowFailException(
        f"{PROCESS_FAILED}: Loop did not process {len(failed)} return(s) we asked it to "
        f"process: {shown}. They are not recorded as done and will not be sent again; check "
        f"them in Loop admin (run report: {summary.get('report_folder')})."
    )


@fails_fast
def reconcile_and_act(
    *,
    dag_id: str,
    run_id: str,
    window: dict[str, str] | None,
    consumer_return_ids: Sequence[int] = (),
    dry_run: bool = False,
    loop_events: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The whole receipt flow for one run; returns the summary that is also written to disk.

    `loop_events`: claimed Loop `return.closed` / `return.processing.failed` events by Loop
    return id; they settle our queued Processes before anything is acted on.
    """
    from include.returns_sync.domain.actions import ActionSettings, act
    from include.returns_sync.reconcile.criteria import (
        CRITERIA_ENV_VAR,
        CriteriaError,
        load_criteria,
    )
    from include.returns_sync.reconcile.engine import reconcile
    from include.returns_sync.reconcile.frames import (
        ReturnContext,
        context_frame,
        expected_frame,
        received_frame,
    )

    try:
        criteria = load_criteria()
    except CriteriaError as exc:  # configuration: fail now, without retries, and say the fix
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"Invalid merchant criteria: {exc}. Fix the file (every option is in "
            f"docs/CRITERIA.md) or point {CRITERIA_ENV_VAR} at a valid one."
        ) from exc
    store = runtime.state_store()
    whiplash = runtime.whiplash_hook()
    loop = runtime.loop_hook()
    vendor_error = runtime.vendor_error()
    from include.returns_sync.clients.errors import LoopActionRejected
    from include.returns_sync.domain.rma import unreadable_record

    # Receipts whose Whiplash or Loop data cannot be read: each is reported with its reason and
    # left undecided; the watermark stops before it, so a later run decides it.
    unreadable: list[dict[str, Any]] = []

    def invalid_receipt(raw: Any, error: Exception) -> None:
        unreadable.append(_unreadable_receipt(raw, error))

    # 1. candidates: final receipts changed in the window and/or the given ids (webhook events
    #    claimed by a scheduled run come as ids next to its window), plus unfinished ones
    candidates = []
    if consumer_return_ids:
        candidates = list(
            whiplash.list_consumer_returns(
                ids=list(consumer_return_ids), on_invalid=invalid_receipt
            )
        )
    if window is not None:
        since = datetime.fromisoformat(window["start"])
        seen = {cr.id for cr in candidates}
        candidates += [
            cr
            for cr in whiplash.list_consumer_returns(
                updated_since=since, statuses=criteria.final_statuses, on_invalid=invalid_receipt
            )
            if cr.id not in seen
        ]
    final = [cr for cr in candidates if criteria.is_final(cr.status)]
    ids = [cr.id for cr in final]
    decisions = store.get_decisions(ids)
    records = store.find_by_whiplash_id(ids)

    # 2. every return with no decision yet: read its Loop return once, reconcile the batch
    undecided = [cr for cr in final if cr.id not in decisions]
    loop_returns: dict[int, Any] = {}
    contexts = []
    readable = []
    unavailable: Exception | None = None
    for cr in undecided:
        record = records.get(cr.id)
        loop_id = record.loop_return_id if record else cr.loop_return_id
        current = None
        if loop_id:
            try:
                current = loop.get_return(loop_id)
            except ValueError:  # not a Loop return id at all (a reference someone typed)
                current = None
            except vendor_error as exc:
                if getattr(exc, "status", None) != 404:
                    # Still failing after the client's retries (a 429 burst, an outage), or an
                    # answer about this return alone that cannot be read: decide it later.
                    if getattr(exc, "transient", False):
                        unavailable, reason = exc, LOOP_UNAVAILABLE
                    elif unreadable_record(exc):
                        reason = INVALID_LOOP_DATA
                    else:
                        raise
                    unreadable.append(_unreadable_loop_return(cr, loop_id, exc, reason))
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
        raise unavailable  # Loop failed for every one of them: fail the task (retry, alert)
    result = reconcile(
        expected_frame((wid, r) for wid, r in loop_returns.items()),
        received_frame(readable),
        context_frame(contexts),
        criteria,
    )
    verdict_rows = cast(list[dict[str, Any]], result.verdicts.to_dict("records"))
    for row in verdict_rows:
        if dry_run:
            continue
        store.record_decision(
            int(row["whiplash_return_id"]),
            verdict=str(row["verdict"]),
            reason_codes=list(row["reason_codes"]),
            loop_return_id=row["loop_return_id"],
            note=row["note"],
            run_id=run_id,
        )

    if criteria.dispositions.enabled and not dry_run:  # optional: plan with the decision
        from include.returns_sync.tasks.dispositions import plan_dispositions

        plan_dispositions(store, verdict_rows, loop_returns, result.lines, criteria)

    # 3. act on every decided return whose action is not yet done (new and unfinished alike)
    to_act = {
        int(r["whiplash_return_id"]): (r["loop_return_id"], str(r["verdict"]), r["note"])
        for r in verdict_rows
        if str(r["verdict"]) in ("process", "flag")
    }
    # Decisions of earlier runs whose Loop action did not finish (a crash, no answer) are
    # carried on whatever this run's window is: the recorded decision stands.
    earlier = {**store.unfinished_decisions(), **decisions}
    for wid, decision in earlier.items():
        if str(decision.verdict) in ("process", "flag") and decision.loop_return_id:
            to_act[wid] = (decision.loop_return_id, str(decision.verdict), decision.note)
    settings = ActionSettings(dry_run=dry_run, process_settle=runtime.process_settle())
    outcomes = []
    # Loop's word on queued Processes first: a failed one is never re-sent, a closed one is done.
    settled = _settle_from_events(store, loop_events or {})
    settled_ids = {outcome.loop_return_id for outcome in settled}
    wid_by_loop_id = {lid: wid for wid, (lid, _, _) in to_act.items()}
    for outcome in settled:
        outcomes.append(
            {"whiplash_return_id": wid_by_loop_id.get(outcome.loop_return_id), **outcome.__dict__}
        )
    done = store.get_actions([lid for lid, _, _ in to_act.values()])
    for wid, (loop_id, verdict, note) in sorted(to_act.items()):
        if loop_id in settled_ids:
            continue
        recorded = done.get(loop_id, {})
        needed = ("process",) if verdict == "process" else ("flag", "note")
        if all(str(getattr(recorded.get(a), "status", "")) == "sent" for a in needed):
            continue
        try:
            current = loop_returns.get(wid) or loop.get_return(loop_id)
            outcome = act(
                loop,
                store,
                current,
                verdict,
                note,
                settings,
                rejected=LoopActionRejected,
                vendor_error=vendor_error,
            )
        except vendor_error as exc:  # reading it or its notes failed: leave it for the next run
            if getattr(exc, "status", None) in (401, 403):
                raise  # the credentials are wrong: fail the task, alert
            log.warning("Could not act on Loop return %s: %s", loop_id, exc)
            continue
        outcomes.append({"whiplash_return_id": wid, **outcome.__dict__})
    # Process is asynchronous: re-check the returns Loop just queued (closed = done now;
    # otherwise a later run, or Loop's return.closed webhook, confirms them).
    _recheck_queued(loop, store, outcomes, vendor_error)

    # 4. optional: the planned dispositions of every return whose Process/Flag is done
    dispositions = []
    if criteria.dispositions.enabled and not dry_run:
        from include.returns_sync.tasks.dispositions import send_dispositions

        dispositions = send_dispositions(loop, store, LoopActionRejected, vendor_error)
        outcomes.extend(dispositions)

    summary = {
        "window": window,
        "candidates": len(candidates),
        "final": len(final),
        "already_decided": len(decisions),
        "dry_run": dry_run,
        **result.summary(),
        "actions": _count(o["outcome"] for o in outcomes if o["verdict"] != "disposition"),
        "dispositions": _count(o["outcome"] for o in dispositions),
        "loop_return_ids": _buckets(verdict_rows),
        "unreadable": _unreadable_buckets(unreadable),
        "failed_actions": _failed_actions(outcomes),
        # found failed in this run (alerted once); earlier ones stay in failed_actions
        "process_failed": sorted(
            {
                str(o["loop_return_id"])
                for o in outcomes
                if o.get("vendor_code") == PROCESS_FAILED and not o.get("repeat")
            }
        ),
    }
    lines = cast(list[dict[str, Any]], result.lines.astype({"sku": "str"}).to_dict("records"))
    folder = write_report(
        dag_id,
        run_id,
        summary,
        {
            "lines": lines,
            "verdicts": verdict_rows,
            "actions": outcomes,
            "unreadable": [
                {k: v for k, v in row.items() if k != "updated_at"} for row in unreadable
            ],
        },
    )
    summary["report_folder"] = str(folder)
    log.info("Receipt run report (%s):\n%s", folder, format_counts("verdict", summary["verdicts"]))
    for code, loop_ids in summary["failed_actions"].items():
        log.warning("Loop actions failed, %s: %s", code, ", ".join(loop_ids))
    reasons = {k: v for k, v in summary["reason_codes"].items() if v}
    if reasons:
        log.warning("Flag/skip reasons:\n%s", format_counts("reason", reasons))
    if summary["actions"]:
        log.info("Loop actions:\n%s", format_counts("action outcome", summary["actions"]))
    for row in unreadable:
        log.warning(
            "Receipt %s (Loop return %s) not decided, %s: %s",
            row["whiplash_return_id"],
            row["loop_return_id"],
            row["reason_code"],
            row["detail"],
        )
    if window is not None and not dry_run:
        watermark = _watermark_after(datetime.fromisoformat(window["end"]), unreadable)
        if watermark is not None:
            store.advance_watermark(RECEIPT_WATERMARK, watermark)
    return summary


def _settle_from_events(store: Any, loop_events: dict[str, list[dict[str, Any]]]) -> list[Any]:
    """Settle our queued Processes from Loop's `return.closed` / `return.processing.failed`."""
    from include.returns_sync.domain.actions import PROCESS, process_failed, settle_process

    settled = []
    actions = store.get_actions(list(loop_events)) if loop_events else {}
    for loop_id, events in sorted(loop_events.items()):
        previous = actions.get(loop_id, {}).get(PROCESS)
        triggers = {str(event.get("trigger")) for event in events}
        outcome = None
        if "return.closed" in triggers:  # closed wins: it is the later, final word
            outcome = settle_process(store, loop_id, "closed", previous)
        elif "return.processing.failed" in triggers:
            message = next((e.get("message") for e in events if e.get("message")), None)
            outcome = process_failed(store, loop_id, previous, message)
        if outcome is None:
            log.info("Loop %s for return %s: no Process of ours to settle", triggers, loop_id)
            continue
        log.info("Loop return %s: Process %s (webhook)", loop_id, outcome.outcome)
        settled.append(outcome)
    return settled


def _recheck_queued(
    loop: Any, store: Any, outcomes: list[dict[str, Any]], vendor_error: type[Exception]
) -> None:
    """Re-read each return whose Process Loop queued in this run; confirm the closed ones."""
    from include.returns_sync.domain.actions import PROCESS, settle_process

    queued = [o for o in outcomes if o["verdict"] == PROCESS and o["outcome"] == "queued"]
    for row in queued:
        loop_id = str(row["loop_return_id"])
        try:
            state = loop.get_return(loop_id).state
        except vendor_error as exc:  # a later run re-reads it
            if getattr(exc, "status", None) in (401, 403):
                raise
            log.warning("Could not re-check Loop return %s after Process: %s", loop_id, exc)
            continue
        previous = store.actions_for(loop_id).get(PROCESS)
        settled = settle_process(store, loop_id, state, previous)
        if settled is not None:
            row.update(settled.__dict__)


def _failed_actions(outcomes: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Loop return ids of every failed action this run, by vendor code (PROCESS_FAILED, ...)."""
    buckets: dict[str, set[str]] = {}
    for row in outcomes:
        if row.get("outcome") == "failed":
            code = str(row.get("vendor_code") or "-")
            buckets.setdefault(code, set()).add(str(row["loop_return_id"]))
    return {code: sorted(ids) for code, ids in sorted(buckets.items())}


def _unreadable_receipt(raw: Any, error: Exception) -> dict[str, Any]:
    """A listed consumer return whose JSON does not validate, as far as its JSON tells."""
    fields = raw if isinstance(raw, dict) else {}
    originator = fields.get("originator") if isinstance(fields.get("originator"), dict) else {}
    loop_id = (originator or {}).get("original_id") or fields.get("reference")
    return {
        "whiplash_return_id": fields.get("id"),
        "loop_return_id": str(loop_id) if loop_id not in (None, "") else None,
        "reason_code": INVALID_WHIPLASH_DATA,
        "detail": getattr(error, "message", str(error)),
        "updated_at": _parse_time(fields.get("updated_at")),
    }


def _unreadable_loop_return(cr: Any, loop_id: str, error: Exception, reason: str) -> dict[str, Any]:
    """A final receipt whose Loop return could not be read (no answer, an HTML page, a malformed
    record)."""
    return {
        "whiplash_return_id": cr.id,
        "loop_return_id": loop_id,
        "reason_code": reason,
        "detail": getattr(error, "message", str(error)),
        "updated_at": cr.updated_at,
    }


def _parse_time(value: Any) -> datetime | None:
    from include.returns_sync.models._base import _to_utc

    try:
        return _to_utc(value)
    except ValueError:
        return None


def _watermark_after(window_end: datetime, unreadable: list[dict[str, Any]]) -> datetime | None:
    """How far the watermark may move: never past a receipt left undecided (None: not at all)."""
    stamps = [row["updated_at"] for row in unreadable]
    if any(stamp is None for stamp in stamps):
        return None
    return min([window_end, *stamps])


def _unreadable_buckets(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    buckets: dict[str, list[str]] = {}
    for row in rows:
        buckets.setdefault(row["reason_code"], []).append(str(row["whiplash_return_id"]))
    return {k: sorted(v) for k, v in sorted(buckets.items())}


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def _buckets(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    buckets: dict[str, list[str]] = {}
    for row in rows:
        codes = "|".join(row["reason_codes"]) or "-"
        buckets.setdefault(f"{row['verdict']}:{codes}", []).append(str(row["loop_return_id"]))
    return {k: sorted(v) for k, v in sorted(buckets.items())}
