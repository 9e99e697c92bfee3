"""Task bodies of `whiplash_receipts_to_loop`: wiring around `domain.receipts.run_receipts`.

Read the run's options, build the collaborators, run the flow, write the report; the receipt
policy itself lives in `domain/receipts.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include.returns_sync import runtime
from include.returns_sync.domain.receipts import RECEIPT_WATERMARK
from include.returns_sync.reports import write_report
from include.returns_sync.tasks.failures import fails_fast
from include.returns_sync.vocabulary import PROCESS_FAILED

if TYPE_CHECKING:
    from include.returns_sync.run_options import RunOptions

log = logging.getLogger(__name__)

__all__ = ["RECEIPT_WATERMARK", "plan", "plan_window", "reconcile_and_act", "run_with_inbox"]


def plan_window(data_interval_end: datetime) -> dict[str, str]:
    """The poll window `[watermark - overlap, data_interval_end)`, from the durable watermark."""
    return runtime.planned_window(RECEIPT_WATERMARK, data_interval_end)


@fails_fast
def plan(
    params: Mapping[str, Any], data_interval_end: datetime | None, *, webhook_only: bool
) -> dict[str, Any]:
    """`plan` of the receipts DAG: the run's `RunOptions` (XCom), settled once for its tasks.

    Given consumer return ids: only those. A run only webhooks started: the inbox alone.
    Otherwise the poll window from the watermark, plus the inbox.
    """
    from include.returns_sync.run_options import plan_run

    given = params.get("consumer_return_ids") or []
    try:
        ids = [str(int(i)) for i in given]
    except (TypeError, ValueError):
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"consumer_return_ids must be Whiplash consumer return ids (integers), got {given!r}"
        ) from None
    return plan_run(
        params,
        ids,
        webhook_only=webhook_only,
        poll_window=lambda: plan_window(data_interval_end or datetime.now(UTC)),
    )


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
    from include.returns_sync.state.records import InboxSource
    from include.returns_sync.webhooks import drain

    run = RunOptions.of(options)
    ids = [int(i) for i in run.ids]
    inbox = loop_events = None
    if run.inbox:
        if run.dry_run:
            ids = [int(i) for i in drain.peek(InboxSource.WHIPLASH).resource_ids]
        else:
            loop_events = drain.claim(InboxSource.LOOP_RETURN, f"{run_id}/reconcile_and_act")
            inbox = drain.claim(InboxSource.WHIPLASH, f"{run_id}/reconcile_and_act")
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
    """One run of the receipt flow; returns the summary that is also written to disk.

    `loop_events`: claimed Loop `return.closed` / `return.processing.failed` events by Loop
    return id; they settle our queued Processes before anything is acted on.
    """
    from include.returns_sync.domain.actions import ActionSettings
    from include.returns_sync.domain.receipts import ReceiptScope, ReceiptSettings, run_receipts
    from include.returns_sync.merchants import MERCHANTS_ENV_VAR, account_peers
    from include.returns_sync.reconcile.criteria import (
        CRITERIA_ENV_VAR,
        CriteriaError,
        load_criteria,
    )

    merchant = runtime.current_merchant()
    try:
        criteria = load_criteria(merchant.criteria)
    except CriteriaError as exc:  # configuration: fail now, without retries, and say the fix
        from airflow.sdk.exceptions import AirflowFailException

        where = (
            f"its `criteria` entry in {MERCHANTS_ENV_VAR}'s file"
            if merchant.criteria
            else CRITERIA_ENV_VAR
        )
        raise AirflowFailException(
            f"Invalid criteria of merchant {merchant.id!r}: {exc}. Fix the file (every option "
            f"is in docs/CRITERIA.md) or point {where} at a valid one."
        ) from exc
    store = runtime.state_store().for_run(dag_id, run_id)  # each step names its run
    actions = ActionSettings(dry_run=dry_run, process_settle=runtime.process_settle())
    scope = ReceiptScope(run_id, window, consumer_return_ids, loop_events or {})
    report = run_receipts(
        scope,
        whiplash=runtime.whiplash_hook(),
        loop=runtime.loop_hook(),
        store=store,
        settings=ReceiptSettings(criteria, actions, account_peers(merchant)),
    )
    summary = report.summary()
    folder = write_report(dag_id, run_id, summary, report.tables())
    summary["report_folder"] = str(folder)
    report.log(summary, str(folder))
    watermark = report.watermark()
    if watermark is not None:
        store.advance_watermark(RECEIPT_WATERMARK, watermark)
    return summary
