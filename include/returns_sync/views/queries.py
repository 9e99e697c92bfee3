"""The operator views' read model: search, a return's timeline, the queues, the trend, a run.

Airflow-free and read-only: every function takes the state store (or its SQLAlchemy engine)
and returns the frozen models of `views.models`. Each read is one or a few indexed queries
(revision 0008 adds the indexes), so the pages stay fast with millions of returns
(bench/bench_views.py).

Decisions written down here, as a demanding operator would expect them:
- **Search is exact**, case-insensitive, across merchants unless one is given: a Loop return id,
  an order name (with or without its leading `#`: Loop shows `#1001`, people type `1001`), a
  tracking number, or a Whiplash consumer return id (digits). No prefix or fuzzy matching.
- **Needs attention** never expires: unmappable/failed RMAs until an RMA exists, Process
  failures (`PROCESS_FAILED`) and refused Loop calls (any other `failed` action) until a person
  fixes them in Loop (they are final in the store). Oldest first.
- **Flagged** and **backfill misses** are history, not work items: the last `days` days
  (default 30), newest first; a miss's lateness is RMA time minus the label's shipping time.
- **Trend** days are UTC days; "RMAs" counts created and adopted RMAs by the trigger of the run
  that recorded them; "misses" are RMAs the backfill had to create; "processed" and "flagged"
  are verdicts recorded that day.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    RowMapping,
    Select,
    and_,
    func,
    literal,
    not_,
    select,
    true,
    union_all,
)

from include.returns_sync.state.schema import decisions, loop_actions, sync_records
from include.returns_sync.views.models import (
    ActionStep,
    DayTrend,
    Queue,
    QueueRow,
    Queues,
    ReceiptLine,
    ReceiptStep,
    ReturnRef,
    RmaStep,
    RunRef,
    RunReturn,
    RunSummary,
    SeenInLoop,
    Step,
    Timeline,
)
from include.returns_sync.vocabulary import (
    PROCESS_FAILED,
    ActionKind,
    ActionStatus,
    SyncStatus,
    Verdict,
)

s, d, a = sync_records, decisions, loop_actions

#: Our DAGs (without a merchant suffix) and the flow each runs; `<dag>__<merchant>` for others.
OUR_DAGS: Mapping[str, str] = {
    "loop_returns_to_whiplash": "rma",
    "loop_asn_backfill": "rma",
    "whiplash_receipts_to_loop": "receipts",
}
DEFAULT_MERCHANT = "default"
MAX_PAGE_SIZE = 500
_DONE = [SyncStatus.CREATED.value, SyncStatus.ADOPTED.value]
_ATTENTION = [SyncStatus.UNMAPPABLE.value, SyncStatus.FAILED.value]
_BIGINT_MAX = 2**63 - 1
#: Lateness buckets of backfill misses (upper bound in hours, label).
_LATE_BUCKETS = ((24, "under 24 h"), (48, "24-48 h"), (None, "over 48 h"))


class HasEngine(Protocol):
    @property
    def engine(self) -> Engine: ...


Source = Engine | HasEngine


def _engine(source: Source) -> Engine:
    return source if isinstance(source, Engine) else source.engine


def _now(now: datetime | None) -> datetime:
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError(f"now must be timezone-aware; got {moment!r}")
    return moment.astimezone(UTC)


def _merchant(table: Any, merchant: str | None) -> ColumnElement[bool]:
    return table.c.merchant == merchant if merchant is not None else true()


def _run(dag_id: str | None, run_id: str | None, trigger: str | None = None) -> RunRef:
    return RunRef(dag_id=dag_id, run_id=run_id, trigger=trigger)


def _codes(raw: str | None) -> list[str]:
    return [str(code) for code in json.loads(raw)] if raw else []


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds()


# -- search -----------------------------------------------------------------------------------


def search(
    source: Source, q: str, *, merchant: str | None = None, limit: int = 50
) -> list[ReturnRef]:
    """Returns whose Loop id, order name, tracking number or Whiplash id is exactly `q`
    (case-insensitive), across merchants unless `merchant` is given; at most `limit`."""
    key = (q or "").strip().lower()
    if not key:
        return []
    names = sorted({key, key.lstrip("#"), "#" + key.lstrip("#")} - {"", "#"})
    columns = (
        s.c.merchant,
        s.c.loop_return_id,
        s.c.whiplash_return_id,
        s.c.order_name,
        s.c.tracking_number,
        s.c.status,
    )
    branches: list[tuple[str, ColumnElement[bool]]] = [
        ("loop_return_id", func.lower(s.c.loop_return_id) == key),
        ("order_name", func.lower(s.c.order_name).in_(names)),
        ("tracking_number", func.lower(s.c.tracking_number) == key),
    ]
    if key.isdigit() and int(key) <= _BIGINT_MAX:
        branches.append(("whiplash_return_id", s.c.whiplash_return_id == int(key)))
    scope = _merchant(s, merchant)
    query = union_all(
        *(
            select(*columns, literal(name).label("matched_on")).where(cond, scope)
            for name, cond in branches
        )
    ).limit(limit * len(branches))
    found: dict[tuple[str, str], ReturnRef] = {}
    with _engine(source).connect() as conn:
        for row in conn.execute(query).mappings():
            ref = ReturnRef(**row)
            found.setdefault((ref.merchant, ref.loop_return_id), ref)
    return sorted(found.values(), key=lambda r: (r.merchant, r.loop_return_id))[:limit]


# -- timeline ---------------------------------------------------------------------------------


def timeline(source: Source, merchant: str, loop_return_id: str) -> Timeline | None:
    """Everything the store knows about one return of one merchant, None if nothing."""
    lid = str(loop_return_id).strip()
    with _engine(source).connect() as conn:
        record = (
            conn.execute(select(s).where(s.c.merchant == merchant, s.c.loop_return_id == lid))
            .mappings()
            .first()
        )
        verdicts = conn.execute(
            select(d)
            .where(d.c.merchant == merchant, d.c.loop_return_id == lid)
            .order_by(d.c.decided_at, d.c.whiplash_return_id)
        ).mappings()
        receipts = [_receipt(row) for row in verdicts]
        actions = [
            _action(row)
            for row in conn.execute(
                select(a)
                .where(a.c.merchant == merchant, a.c.loop_return_id == lid)
                .order_by(a.c.created_at, a.c.id)
            ).mappings()
        ]
    if record is None and not receipts and not actions:
        return None
    seen = rma = None
    if record is not None:
        seen = SeenInLoop(
            first_seen_at=record["first_seen_at"],
            label_status=record["label_status"],
            label_shipped_at=record["label_pre_transit_at"],
            first_trigger=record["source"],
        )
        rma = _rma(record)
    return Timeline(
        merchant=merchant,
        loop_return_id=lid,
        order_name=record["order_name"] if record is not None else None,
        tracking_number=record["tracking_number"] if record is not None else None,
        seen=seen,
        rma=rma,
        receipts=receipts,
        actions=actions,
        steps=_steps(seen, rma, receipts, actions),
    )


def _rma(row: RowMapping) -> RmaStep:
    done = row["status"] in _DONE
    run = (
        _run(row["rma_dag_id"], row["rma_run_id"], row["rma_trigger"])
        if done and (row["rma_run_id"] or row["rma_dag_id"])
        else _run(row["last_dag_id"], row["last_run_id"], row["last_trigger"])
    )
    return RmaStep(
        status=row["status"],
        whiplash_return_id=row["whiplash_return_id"],
        adopted=row["status"] == SyncStatus.ADOPTED.value,
        created_at=row["created_at"],
        attempts=row["attempts"],
        reason_code=row["reason_code"],
        reason_detail=row["reason_detail"],
        updated_at=row["updated_at"],
        run=run,
    )


def _receipt(row: RowMapping) -> ReceiptStep:
    detail = json.loads(row["detail"]) if row["detail"] else {}
    lines = detail.get("lines") if isinstance(detail, dict) else None
    return ReceiptStep(
        whiplash_return_id=row["whiplash_return_id"],
        verdict=row["verdict"],
        reason_codes=_codes(row["reason_codes"]),
        note=row["note"],
        decided_at=row["decided_at"],
        lines=[ReceiptLine(**line) for line in lines or []],
        run=_run(row["dag_id"], row["run_id"]),
    )


def _action(row: RowMapping) -> ActionStep:
    return ActionStep(
        action=row["action"],
        status=row["status"],
        vendor_code=row["vendor_code"],
        message=row["message"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        run=_run(row["dag_id"], row["run_id"]),
    )


def _steps(
    seen: SeenInLoop | None,
    rma: RmaStep | None,
    receipts: Iterable[ReceiptStep],
    actions: Iterable[ActionStep],
) -> list[Step]:
    steps: list[Step] = []
    if seen is not None:
        label = seen.label_status or "unknown"
        steps.append(
            Step(
                at=seen.first_seen_at,
                kind="seen",
                title=f"Seen in Loop (label {label})",
                status=seen.first_trigger,
            )
        )
    if rma is not None:
        if rma.status in _DONE:
            verb = "adopted" if rma.adopted else "created"
            title = f"RMA {verb}: Whiplash consumer return {rma.whiplash_return_id}"
        else:
            title = f"RMA not created: {rma.reason_code or rma.status}"
        steps.append(
            Step(
                at=rma.created_at or rma.updated_at,
                kind="rma",
                title=title,
                status=rma.status,
                run=rma.run,
            )
        )
    for receipt in receipts:
        reasons = ", ".join(receipt.reason_codes)
        title = f"Verdict {receipt.verdict}" + (f" ({reasons})" if reasons else "")
        steps.append(
            Step(
                at=receipt.decided_at,
                kind="verdict",
                title=title,
                status=receipt.verdict,
                run=receipt.run,
            )
        )
    for action in actions:
        code = f" ({action.vendor_code})" if action.vendor_code else ""
        steps.append(
            Step(
                at=action.updated_at,
                kind="action",
                title=f"Loop {action.action}{code}",
                status=action.status,
                run=action.run,
            )
        )
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(steps, key=lambda step: step.at or far)


# -- queues -----------------------------------------------------------------------------------


def queues(
    source: Source,
    merchant: str | None = None,
    *,
    page: int = 1,
    page_size: int = 50,
    days: int = 30,
    now: datetime | None = None,
) -> Queues:
    """Every queue with its count, oldest age, counts by reason and page `page` of its rows."""
    moment = _now(now)
    with _engine(source).connect() as conn:
        built = {
            name: queue(conn, name, merchant, page=page, page_size=page_size, days=days, now=moment)
            for name in QUEUES
        }
    return Queues(merchant=merchant, as_of=moment, days=days, **built)


def queue(
    source: Source | Connection,
    name: str,
    merchant: str | None = None,
    *,
    page: int = 1,
    page_size: int = 50,
    days: int = 30,
    now: datetime | None = None,
) -> Queue:
    """One queue (a name of `QUEUES`), page `page` (from 1) of `page_size` rows."""
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; one of {', '.join(QUEUES)}")
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page must be >= 1 and page_size 1..{MAX_PAGE_SIZE}")
    moment = _now(now)
    since = moment - timedelta(days=days)
    if isinstance(source, Connection):
        return _QUEUE_BUILDERS[name](source, merchant, page, page_size, since, moment)
    with _engine(source).connect() as conn:
        return _QUEUE_BUILDERS[name](conn, merchant, page, page_size, since, moment)


def _page(query: Select[Any], page: int, page_size: int) -> Select[Any]:
    return query.limit(page_size).offset((page - 1) * page_size)


def _age(moment: datetime, since: datetime | None) -> float | None:
    return _seconds(moment, since)


def _unmappable(
    conn: Connection, merchant: str | None, page: int, size: int, _since: datetime, now: datetime
) -> Queue:
    where = and_(s.c.status.in_(_ATTENTION), _merchant(s, merchant))
    counts = conn.execute(
        select(s.c.reason_code, func.count(), func.min(s.c.first_seen_at))
        .where(where)
        .group_by(s.c.reason_code)
    ).all()
    rows = conn.execute(
        _page(select(s).where(where).order_by(s.c.first_seen_at, s.c.loop_return_id), page, size)
    ).mappings()
    oldest = min((row[2] for row in counts), default=None)
    return Queue(
        name="unmappable",
        title="RMA not created (unmappable or failed)",
        count=sum(row[1] for row in counts),
        oldest_age_seconds=_age(now, oldest),
        by_reason={str(row[0] or "UNKNOWN"): int(row[1]) for row in counts},
        page=page,
        page_size=size,
        rows=[
            QueueRow(
                merchant=row["merchant"],
                loop_return_id=row["loop_return_id"],
                whiplash_return_id=row["whiplash_return_id"],
                order_name=row["order_name"],
                reason_codes=[row["reason_code"]] if row["reason_code"] else [],
                detail=row["reason_detail"],
                since=row["first_seen_at"],
                age_seconds=_seconds(now, row["first_seen_at"]) or 0.0,
                run=_run(row["last_dag_id"], row["last_run_id"], row["last_trigger"]),
            )
            for row in rows
        ],
    )


def _process_failed_filter() -> ColumnElement[bool]:
    return and_(a.c.action == ActionKind.PROCESS.value, a.c.vendor_code == PROCESS_FAILED)


def _failed_actions(
    conn: Connection,
    merchant: str | None,
    page: int,
    size: int,
    now: datetime,
    *,
    process_failed: bool,
) -> Queue:
    kind = _process_failed_filter()
    where = and_(
        a.c.status == ActionStatus.FAILED.value,
        kind if process_failed else not_(kind),
        _merchant(a, merchant),
    )
    counts = conn.execute(
        select(a.c.vendor_code, func.count(), func.min(a.c.updated_at))
        .where(where)
        .group_by(a.c.vendor_code)
    ).all()
    joined = a.outerjoin(
        s, and_(s.c.merchant == a.c.merchant, s.c.loop_return_id == a.c.loop_return_id)
    )
    rows = conn.execute(
        _page(
            select(a, s.c.whiplash_return_id, s.c.order_name)
            .select_from(joined)
            .where(where)
            .order_by(a.c.updated_at, a.c.id),
            page,
            size,
        )
    ).mappings()
    oldest = min((row[2] for row in counts), default=None)
    return Queue(
        name="process_failed" if process_failed else "action_refused",
        title="Loop could not process" if process_failed else "Loop refused an action",
        count=sum(row[1] for row in counts),
        oldest_age_seconds=_age(now, oldest),
        by_reason={str(row[0] or "UNKNOWN"): int(row[1]) for row in counts},
        page=page,
        page_size=size,
        rows=[
            QueueRow(
                merchant=row["merchant"],
                loop_return_id=row["loop_return_id"],
                whiplash_return_id=row["whiplash_return_id"],
                order_name=row["order_name"],
                reason_codes=[row["vendor_code"]] if row["vendor_code"] else [],
                detail=f"{row['action']}: {row['message'] or ''}".rstrip(": "),
                since=row["updated_at"],
                age_seconds=_seconds(now, row["updated_at"]) or 0.0,
                run=_run(row["dag_id"], row["run_id"]),
            )
            for row in rows
        ],
    )


def _process_failed(
    conn: Connection, merchant: str | None, page: int, size: int, _since: datetime, now: datetime
) -> Queue:
    return _failed_actions(conn, merchant, page, size, now, process_failed=True)


def _action_refused(
    conn: Connection, merchant: str | None, page: int, size: int, _since: datetime, now: datetime
) -> Queue:
    return _failed_actions(conn, merchant, page, size, now, process_failed=False)


def _flagged(
    conn: Connection, merchant: str | None, page: int, size: int, since: datetime, now: datetime
) -> Queue:
    where = and_(d.c.verdict == Verdict.FLAG.value, d.c.decided_at >= since, _merchant(d, merchant))
    by_reason: Counter[str] = Counter()
    count, oldest = 0, None
    for codes, n, first in conn.execute(
        select(d.c.reason_codes, func.count(), func.min(d.c.decided_at))
        .where(where)
        .group_by(d.c.reason_codes)
    ):
        count += int(n)
        oldest = first if oldest is None or first < oldest else oldest
        for code in _codes(codes):
            by_reason[code] += int(n)
    joined = d.outerjoin(
        s, and_(s.c.merchant == d.c.merchant, s.c.loop_return_id == d.c.loop_return_id)
    )
    rows = conn.execute(
        _page(
            select(d, s.c.order_name)
            .select_from(joined)
            .where(where)
            .order_by(d.c.decided_at.desc(), d.c.whiplash_return_id.desc()),
            page,
            size,
        )
    ).mappings()
    return Queue(
        name="flagged",
        title="Flagged for review",
        count=count,
        oldest_age_seconds=_age(now, oldest),
        by_reason=dict(sorted(by_reason.items())),
        page=page,
        page_size=size,
        rows=[
            QueueRow(
                merchant=row["merchant"],
                loop_return_id=row["loop_return_id"] or "",
                whiplash_return_id=row["whiplash_return_id"],
                order_name=row["order_name"],
                reason_codes=_codes(row["reason_codes"]),
                detail=row["note"],
                since=row["decided_at"],
                age_seconds=_seconds(now, row["decided_at"]) or 0.0,
                run=_run(row["dag_id"], row["run_id"]),
            )
            for row in rows
        ],
    )


def _late_bucket(late: float | None) -> str:
    if late is None:
        return "label time unknown"
    hours = late / 3600
    for bound, label in _LATE_BUCKETS:
        if bound is None or hours < bound:
            return label
    return _LATE_BUCKETS[-1][1]


def _misses_filter(merchant: str | None, since: datetime) -> ColumnElement[bool]:
    return and_(
        s.c.rma_trigger == "backfill",
        s.c.created_at >= since,
        s.c.status == SyncStatus.CREATED.value,
        _merchant(s, merchant),
    )


def _backfill_misses(
    conn: Connection, merchant: str | None, page: int, size: int, since: datetime, now: datetime
) -> Queue:
    where = _misses_filter(merchant, since)
    by_reason: Counter[str] = Counter()
    oldest = None
    for created, shipped in conn.execute(
        select(s.c.created_at, s.c.label_pre_transit_at).where(where)
    ):
        by_reason[_late_bucket(_seconds(created, shipped))] += 1
        oldest = created if oldest is None or created < oldest else oldest
    rows = conn.execute(
        _page(
            select(s).where(where).order_by(s.c.created_at.desc(), s.c.loop_return_id),
            page,
            size,
        )
    ).mappings()
    return Queue(
        name="backfill_misses",
        title="Caught by the backfill (missed by the primary flow)",
        count=sum(by_reason.values()),
        oldest_age_seconds=_age(now, oldest),
        by_reason=dict(sorted(by_reason.items())),
        page=page,
        page_size=size,
        rows=[
            QueueRow(
                merchant=row["merchant"],
                loop_return_id=row["loop_return_id"],
                whiplash_return_id=row["whiplash_return_id"],
                order_name=row["order_name"],
                reason_codes=[],
                detail=None,
                since=row["created_at"],
                age_seconds=_seconds(now, row["created_at"]) or 0.0,
                late_seconds=_seconds(row["created_at"], row["label_pre_transit_at"]),
                run=_run(row["rma_dag_id"], row["rma_run_id"], row["rma_trigger"]),
            )
            for row in rows
        ],
    )


_QUEUE_BUILDERS = {
    "unmappable": _unmappable,
    "process_failed": _process_failed,
    "action_refused": _action_refused,
    "flagged": _flagged,
    "backfill_misses": _backfill_misses,
}
#: The queue names, in the order the page shows them.
QUEUES: tuple[str, ...] = tuple(_QUEUE_BUILDERS)


# -- trend ------------------------------------------------------------------------------------


def _day(conn: Connection, column: Any) -> Any:
    """The UTC day of a timestamp column, as text `YYYY-MM-DD`, in the database."""
    if conn.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)  # SQLite keeps naive UTC text


def trend(
    source: Source, merchant: str | None = None, days: int = 30, *, now: datetime | None = None
) -> list[DayTrend]:
    """One `DayTrend` per UTC day of the last `days` days (today included), oldest first."""
    if not 1 <= days <= 366:
        raise ValueError(f"days must be 1..366; got {days}")
    today = _now(now).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(), tzinfo=UTC)
    rmas: dict[str, Counter[str]] = {}
    misses: Counter[str] = Counter()
    verdicts: dict[str, Counter[str]] = {}
    with _engine(source).connect() as conn:
        day = _day(conn, s.c.created_at)
        done = and_(s.c.status.in_(_DONE), s.c.created_at >= start, _merchant(s, merchant))
        for key, trigger, status, n in conn.execute(
            select(day, s.c.rma_trigger, s.c.status, func.count())
            .where(done)
            .group_by(day, s.c.rma_trigger, s.c.status)
        ):
            rmas.setdefault(key, Counter())[trigger or "unknown"] += int(n)
            if trigger == "backfill" and status == SyncStatus.CREATED.value:
                misses[key] += int(n)
        medians = _medians(conn, done, day)
        dday = _day(conn, d.c.decided_at)
        for key, verdict, n in conn.execute(
            select(dday, d.c.verdict, func.count())
            .where(
                d.c.verdict.in_([Verdict.PROCESS.value, Verdict.FLAG.value]),
                d.c.decided_at >= start,
                _merchant(d, merchant),
            )
            .group_by(dday, d.c.verdict)
        ):
            verdicts.setdefault(key, Counter())[verdict] += int(n)
    out = []
    for offset in range(days):
        current: date = first + timedelta(days=offset)
        key = current.isoformat()
        by_trigger = rmas.get(key, Counter())
        decided = verdicts.get(key, Counter())
        out.append(
            DayTrend(
                day=current,
                rmas=sum(by_trigger.values()),
                rmas_by_trigger=dict(sorted(by_trigger.items())),
                processed=decided[Verdict.PROCESS.value],
                flagged=decided[Verdict.FLAG.value],
                misses=misses[key],
                median_label_to_rma_seconds=medians.get(key),
            )
        )
    return out


def _medians(conn: Connection, done: ColumnElement[bool], day: Any) -> dict[str, float]:
    """Median seconds from label to RMA per day: in PostgreSQL, in Python on SQLite."""
    known = and_(done, s.c.label_pre_transit_at.is_not(None))
    if conn.dialect.name == "postgresql":
        seconds = func.extract("epoch", s.c.created_at - s.c.label_pre_transit_at)
        median = func.percentile_cont(0.5).within_group(seconds)
        return {
            key: float(value)
            for key, value in conn.execute(select(day, median).where(known).group_by(day))
            if value is not None
        }
    spans: dict[str, list[float]] = {}
    for created, shipped in conn.execute(
        select(s.c.created_at, s.c.label_pre_transit_at).where(known)
    ):
        key = created.date().isoformat()
        spans.setdefault(key, []).append((created - shipped).total_seconds())
    return {key: float(statistics.median(values)) for key, values in spans.items()}


# -- a DAG run --------------------------------------------------------------------------------


def dag_flow(dag_id: str) -> tuple[str, str] | None:
    """(flow, merchant) of one of our DAG ids (`<dag>` or `<dag>__<merchant>`), else None."""
    base, sep, merchant = dag_id.partition("__")
    flow = OUR_DAGS.get(base)
    if flow is None or (sep and not merchant):
        return None
    return flow, merchant or DEFAULT_MERCHANT


def run_summary(source: Source, dag_id: str, run_id: str) -> RunSummary | None:
    """What one run of ours did, by outcome and reason, with each return; None if the DAG is
    not one of ours. A run of ours that recorded nothing (a dry run, an empty poll) has zero
    counts and no returns."""
    found = dag_flow(dag_id)
    if found is None:
        return None
    flow, merchant = found
    returns: list[RunReturn] = []
    actions: Counter[str] = Counter()
    with _engine(source).connect() as conn:
        if flow == "rma":
            for row in conn.execute(
                select(s)
                .where(
                    s.c.last_run_id == run_id, s.c.last_dag_id == dag_id, s.c.merchant == merchant
                )
                .order_by(s.c.loop_return_id)
            ).mappings():
                returns.append(
                    RunReturn(
                        merchant=merchant,
                        loop_return_id=row["loop_return_id"],
                        whiplash_return_id=row["whiplash_return_id"],
                        outcome=row["status"],
                        reason_codes=[row["reason_code"]] if row["reason_code"] else [],
                    )
                )
        else:
            decided = set()
            for row in conn.execute(
                select(d)
                .where(
                    d.c.run_id == run_id,
                    (d.c.dag_id == dag_id) | d.c.dag_id.is_(None),
                    d.c.merchant == merchant,
                )
                .order_by(d.c.whiplash_return_id)
            ).mappings():
                decided.add(row["loop_return_id"])
                returns.append(
                    RunReturn(
                        merchant=merchant,
                        loop_return_id=row["loop_return_id"],
                        whiplash_return_id=row["whiplash_return_id"],
                        outcome=row["verdict"],
                        reason_codes=_codes(row["reason_codes"]),
                    )
                )
            acted: dict[str, str] = {}
            for row in conn.execute(
                select(a)
                .where(a.c.run_id == run_id, a.c.dag_id == dag_id, a.c.merchant == merchant)
                .order_by(a.c.loop_return_id, a.c.id)
            ).mappings():
                actions[f"{row['action']}:{row['status']}"] += 1
                if row["status"] == ActionStatus.FAILED.value and row["vendor_code"]:
                    acted[row["loop_return_id"]] = f"{row['action']} failed"
                else:
                    acted.setdefault(row["loop_return_id"], f"{row['action']} {row['status']}")
            for lid, outcome in sorted(acted.items()):
                if lid not in decided:  # settled or acted on for an earlier run's verdict
                    returns.append(
                        RunReturn(
                            merchant=merchant,
                            loop_return_id=lid,
                            whiplash_return_id=None,
                            outcome=outcome,
                            reason_codes=[],
                        )
                    )
    counts = Counter(r.outcome for r in returns)
    reasons = Counter(f"{r.outcome}:{code}" for r in returns for code in r.reason_codes)
    return RunSummary(
        dag_id=dag_id,
        run_id=run_id,
        merchant=merchant,
        flow=flow,
        counts=dict(sorted(counts.items())),
        reasons=dict(sorted(reasons.items())),
        actions=dict(sorted(actions.items())),
        returns=returns,
    )


class ReturnViews:
    """The five views bound to one store: the plan's interface (`views.search(q)`, ...)."""

    def __init__(self, source: Source) -> None:
        self._source = source

    def search(self, q: str, merchant: str | None = None) -> list[ReturnRef]:
        return search(self._source, q, merchant=merchant)

    def timeline(self, merchant: str, loop_return_id: str) -> Timeline | None:
        return timeline(self._source, merchant, loop_return_id)

    def queues(self, merchant: str | None = None, **paging: Any) -> Queues:
        return queues(self._source, merchant, **paging)

    def queue(self, name: str, merchant: str | None = None, **paging: Any) -> Queue:
        return queue(self._source, name, merchant, **paging)

    def trend(self, merchant: str | None = None, days: int = 30) -> list[DayTrend]:
        return trend(self._source, merchant, days)

    def run_summary(self, dag_id: str, run_id: str) -> RunSummary | None:
        return run_summary(self._source, dag_id, run_id)
