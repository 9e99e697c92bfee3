"""Task bodies of `loop_returns_to_whiplash` (and the RMA half of `loop_asn_backfill`).

Each function is what one Airflow task does; they take and return JSON-friendly values (XCom),
build hooks and the store through `runtime`, and leave the decisions to `domain.rma`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include.returns_sync import runtime
from include.returns_sync.reports import format_counts, write_report
from include.returns_sync.tasks.failures import fails_fast
from include.returns_sync.vocabulary import SyncStatus

if TYPE_CHECKING:
    from include.returns_sync.run_options import RunOptions

log = logging.getLogger(__name__)

POLL_WATERMARK = "loop_returns_to_whiplash.updated_at"


def plan_window(data_interval_end: datetime) -> dict[str, str]:
    """The poll window `[watermark - overlap, data_interval_end)`, from the durable watermark."""
    return runtime.planned_window(POLL_WATERMARK, data_interval_end)


@fails_fast
def plan(
    params: Mapping[str, Any], data_interval_end: datetime | None, *, webhook_only: bool
) -> dict[str, Any]:
    """`plan` of the RMA DAG: the run's `RunOptions` (XCom), settled once for all its tasks.

    Given ids: only those (no window, no inbox). A run only webhooks started: the inbox alone.
    Otherwise the poll window from the watermark, plus the inbox.
    """
    from include.returns_sync.run_options import plan_run

    ids = [str(i).strip() for i in params.get("return_ids") or [] if str(i).strip()]
    return plan_run(
        params,
        ids,
        webhook_only=webhook_only,
        poll_window=lambda: plan_window(data_interval_end or datetime.now(UTC)),
    )


@fails_fast
def collect_batches(
    window: dict[str, str] | None,
    explicit_ids: Sequence[str] = (),
    include_retries: bool = True,
) -> list[dict[str, Any]]:
    """Candidate Loop returns, split into batches for mapped creation tasks.

    Listed returns travel whole (the detailed list already carries line items: no extra Loop
    call per return). Explicit ids (webhooks, manual runs) and earlier unmappable returns travel
    as ids and are read one by one in the creation task.
    """
    settings = runtime.poll_settings()
    returns: list[dict[str, Any]] = []
    if window is not None:
        loop = runtime.loop_hook()
        start, end = datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])
        malformed: list[dict[str, Any]] = []  # travel as listed; create_rmas reports each one
        returns = [
            r.model_dump(mode="json")
            for r in loop.list_returns(
                start=start,
                end=end,
                filter_field="updated_at",
                state="open",
                page_size=settings.loop_page_size,
                on_invalid=lambda raw, _error: malformed.append(_as_record(raw)),
            )
        ]
        returns += malformed
    listed = {str(r.get("id")) for r in returns}
    ids = [str(i) for i in explicit_ids]
    if include_retries:
        ids += runtime.state_store().retry_candidates(limit=settings.batch_size * 5)
    ids = [i for i in dict.fromkeys(ids) if i not in listed]
    size = settings.batch_size
    batches: list[dict[str, Any]] = [
        {"returns": returns[i : i + size], "ids": []} for i in range(0, len(returns), size)
    ]
    batches += [{"returns": [], "ids": ids[i : i + size]} for i in range(0, len(ids), size)]
    log.info(
        "%d listed returns and %d returns by id, in %d batches",
        len(returns),
        len(ids),
        len(batches),
    )
    return batches or [{"returns": [], "ids": []}]


@fails_fast
def collect_with_inbox(
    options: RunOptions | Mapping[str, Any], *, claimer: str
) -> list[dict[str, Any]]:
    """`collect` of the RMA DAG: the window's and given returns, plus waiting Loop webhooks.

    A live run claims the inbox last, so a failure before it leaves the webhook events waiting
    for a retry; they are marked done by `create_batch` once their batch was handled. A dry run
    reads the waiting events without claiming them: it reports them, a live run takes them.
    """
    from include.returns_sync.run_options import RunOptions
    from include.returns_sync.state.records import InboxSource
    from include.returns_sync.webhooks import drain

    run = RunOptions.of(options)
    batches = collect_batches(run.window, run.ids, include_retries=run.window is not None)
    if not run.inbox:
        return batches
    source = InboxSource.LOOP
    inbox = drain.peek(source) if run.dry_run else drain.claim(source, claimer)
    settings = runtime.poll_settings()
    listed = drain.prefetch_loop_returns(
        inbox, runtime.loop_hook(), page_size=settings.loop_page_size
    )
    return drain.merge_into_batches(batches, inbox, settings.batch_size, listed)


@fails_fast
def create_batch(
    batch: dict[str, Any], options: RunOptions | Mapping[str, Any]
) -> list[dict[str, Any]]:
    """`create_rmas` of the RMA and backfill DAGs: one batch, then its webhook events are done
    (a dry run leaves them waiting)."""
    from include.returns_sync.run_options import RunOptions
    from include.returns_sync.webhooks import drain

    run = RunOptions.of(options)
    source = "webhook" if batch.get(drain.INBOX_KEY) else run.source
    rows = create_rmas(batch, source=source, dry_run=run.dry_run)
    if not run.dry_run:
        drain.finish(batch.get(drain.INBOX_KEY))
    return rows


@fails_fast
def create_rmas(batch: dict[str, Any], source: str, dry_run: bool = False) -> list[dict[str, Any]]:
    """Create or adopt the RMA of every eligible return in one batch; one result per return."""
    from include.returns_sync.domain.rma import fetch_by_ids, record_not_found, sync_returns
    from include.returns_sync.models import LoopReturn

    store = _for_this_run(runtime.state_store())
    settings = runtime.rma_settings(dry_run=dry_run)
    returns, problems, malformed = [], [], []
    for raw in batch.get("returns", []):
        try:
            returns.append(LoopReturn.model_validate(raw))
        except ValueError as exc:  # one malformed return must not sink the batch
            malformed.append(_invalid(raw, exc))
    # Recorded (so later runs retry them by id) when they name a Loop return id; else reported.
    problems += [r for r in malformed if not r.loop_return_id.isdigit()]
    missing = [r for r in malformed if r.loop_return_id.isdigit()]
    if batch.get("ids"):
        loop = runtime.loop_hook()
        found, not_read = fetch_by_ids(loop, batch["ids"])
        returns += _with_labels(found, batch, store, loop)
        missing += not_read
    problems += record_not_found(store, missing, source=source, settings=settings)
    report = sync_returns(
        returns,
        whiplash=runtime.whiplash_hook(),
        store=store,
        settings=settings,
        source=source,
    )
    report.results.extend(problems)
    return [r.to_row() for r in report.results]


def _for_this_run(store: Any) -> Any:
    """The store stamping its writes with the running Airflow task's DAG run (the operator
    views link each RMA step to it); unchanged outside a task (tests calling this directly)."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
        return store.for_run(context["dag"].dag_id, context["run_id"])
    except (ImportError, RuntimeError, KeyError, AttributeError):
        return store


def _with_labels(returns: list[Any], batch: dict[str, Any], store: Any, loop: Any) -> list[Any]:
    """Returns read by id, each with its label (Return Details may carry none): from the
    detailed list, else the webhook event that announced it, else our records
    (`domain.labels`)."""
    from include.returns_sync.domain.eligibility import needs_label
    from include.returns_sync.domain.labels import announced_label, fill_labels
    from include.returns_sync.webhooks.drain import INBOX_KEY

    wanted = [r.id for r in returns if needs_label(r)]
    if not wanted:
        return returns
    announced: dict[str, Any] = {}
    events = store.inbox_get(batch.get(INBOX_KEY) or []) if batch.get(INBOX_KEY) else {}
    for event in sorted(events.values(), key=lambda e: e.id):  # the latest event wins
        label = announced_label(event.payload) if event.resource_id in wanted else None
        if label is not None:
            announced[str(event.resource_id)] = label
    recorded = {rid: rec.label_status for rid, rec in store.get_sync_records(wanted).items()}
    return fill_labels(
        returns,
        loop=loop,
        announced=announced,
        recorded=recorded,
        page_size=runtime.poll_settings().loop_page_size,
    )


def _as_record(raw: Any) -> dict[str, Any]:
    """A listed element that is not even an object still travels (and is reported) as one."""
    return raw if isinstance(raw, dict) else {"id": None, "element": repr(raw)[:200]}


def _invalid(raw: dict[str, Any], exc: ValueError) -> Any:
    """The report row of a Loop return whose JSON did not validate: which fields, and why."""
    from pydantic import ValidationError

    from include.returns_sync.domain.mapping import UnmappableReason
    from include.returns_sync.domain.rma import UNMAPPABLE, RmaResult

    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'record'}: {issue['msg']}"
            for issue in exc.errors()[:3]
        )
    else:
        problems = str(exc).splitlines()[0]
    raw_id = raw.get("id")
    return RmaResult(
        loop_return_id=str(raw_id).strip() if raw_id not in (None, "") else "?",
        outcome=UNMAPPABLE,
        reason_code=str(UnmappableReason.INVALID_LOOP_DATA),
        detail=f"Loop sent a return that does not validate ({problems})"[:300],
    )


@fails_fast
def report(
    options: RunOptions | Mapping[str, Any],
    results: Iterable[list[dict[str, Any]]],
    *,
    dag_id: str,
    run_id: str,
) -> dict[str, Any]:
    """`report` of the RMA and backfill DAGs: `finalize` as the run's options say."""
    from include.returns_sync.run_options import RunOptions

    run = RunOptions.of(options)
    return finalize(
        dag_id=dag_id,
        run_id=run_id,
        window=run.window,
        results=results,
        advance_watermark=run.advances_watermark,
        backfill=run.source == "backfill",
        dry_run=run.dry_run,
    )


def finalize(
    *,
    dag_id: str,
    run_id: str,
    window: dict[str, str] | None,
    results: Iterable[list[dict[str, Any]]],
    advance_watermark: bool,
    backfill: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Write the run report, log the counts, advance the watermark, fail if too much is stuck.

    For a backfill the report also carries its coverage: each RMA it had to create is a miss of
    the primary flow, with how long after its label it was caught (`misses.csv`).
    """
    from include.returns_sync.domain.rma import RmaReport, RmaResult

    # Index the mapped results instead of iterating: Airflow's lazy XCom sequence ends an
    # iteration by asking for one item too many, which logs an "XCom not found" error.
    if isinstance(results, Sequence):
        results = [list(results[i]) for i in range(len(results))]
    else:
        results = [list(batch) for batch in results]
    report = RmaReport()
    for batch in results:
        for row in batch:
            report.add(RmaResult.from_row(row))
    summary = report.summary()
    summary["window"] = window
    summary["dry_run"] = dry_run
    store = runtime.state_store()
    stuck = store.sync_status_counts().get(SyncStatus.UNMAPPABLE, 0)
    summary["unmappable_in_store"] = stuck
    rows = sorted(
        ({k: v for k, v in row.items()} for batch in results for row in batch),
        key=lambda row: (row["outcome"], row["loop_return_id"]),
    )
    tables: dict[str, list[dict[str, Any]]] = {"returns": rows}
    if backfill:
        found = coverage(results, datetime.now(UTC))
        summary["missed_by_primary_flow"] = found["missed_by_primary_flow"]
        tables["misses"] = found["misses"]
    folder = write_report(dag_id, run_id, summary, tables)
    log.info("RMA run report (%s):\n%s", folder, format_counts("outcome", summary["counts"]))
    if summary["reasons"]:
        log.warning(
            "Returns not synced, by reason:\n%s", format_counts("reason", summary["reasons"])
        )
    if advance_watermark and window is not None:
        store.advance_watermark(POLL_WATERMARK, datetime.fromisoformat(window["end"]))
    limit = runtime.poll_settings().max_unmappable
    if limit and stuck > limit:
        raise RuntimeError(
            f"{stuck} Loop returns are unmappable (limit RETURNS_SYNC_MAX_UNMAPPABLE={limit}); "
            f"see {folder / 'returns.csv'} for the reasons"
        )
    return summary


def coverage(results: Iterable[list[dict[str, Any]]], caught_at: datetime) -> dict[str, Any]:
    """Backfill coverage: every RMA the backfill had to create is a miss of the primary flow.

    The delay is measured from the label's last update (`label_updated_at`: the moment it went
    `pre_transit` or later) to now; Loop keeps no separate `pre_transit` timestamp.
    """
    from include.returns_sync.domain.rma import CREATED, RmaResult

    misses = []
    for batch in results:
        for row in batch:
            result = RmaResult.from_row(row)
            if result.outcome != CREATED:
                continue
            since = result.label_updated_at
            delay = (caught_at - since).total_seconds() / 3600 if since else None
            misses.append(
                {
                    "loop_return_id": result.loop_return_id,
                    "whiplash_return_id": result.whiplash_return_id,
                    "label_status": result.label_status,
                    "label_updated_at": since.isoformat() if since else None,
                    "hours_after_label": round(delay, 2) if delay is not None else None,
                }
            )
    for miss in misses:
        log.warning(
            "Backfill caught Loop return %s that the primary flow missed (%s h after its label)",
            miss["loop_return_id"],
            miss["hours_after_label"],
        )
    return {"missed_by_primary_flow": len(misses), "misses": misses}
