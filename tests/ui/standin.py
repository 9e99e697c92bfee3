"""A small in-memory stand-in for `views/queries.py`, for the app's fast tests only.

It returns the real models of `views/models.py` (so the pages are tested against their exact
shape), with hostile vendor values
(a `<script>` SKU, an `<img onerror>` note, a quote-breaking order name) so the tests prove the
pages escape them. The browser test (`test_ui_e2e.py`) uses the real queries on a real stack.

`MerchantScopedAuthManager` is Airflow's SimpleAuthManager with one extra rule, the kind a
deployment with per-DAG permissions has: users whose name starts with `acme-only` may read only
the DAGs of merchant `acme`. It lets the tests prove that the views
ask the auth manager per merchant DAG (SimpleAuthManager itself grants by role only).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

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

HOSTILE_SKU = "<script>window.__pwned=1</script>SKU-1"
HOSTILE_NOTE = 'Expected 2 x SKU-1 <img src=x onerror="window.__pwned=2">'
HOSTILE_ORDER = '#1001"><script>window.__pwned=3</script>'
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _ago(delta: timedelta) -> datetime:
    return NOW - delta


class MerchantScopedAuthManager(SimpleAuthManager):  # type: ignore[misc]
    """SimpleAuthManager, except that `acme-only*` users may read only merchant acme's DAGs."""

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        dag_id = getattr(details, "id", None) or ""
        if str(user.get_name()).startswith("acme-only") and not dag_id.endswith("__acme"):
            return False
        return bool(
            super().is_authorized_dag(
                method=method, user=user, access_entity=access_entity, details=details
            )
        )


RMA_RUN = RunRef(
    dag_id="loop_returns_to_whiplash",
    run_id="asset_triggered__2026-12-04T12:03:00+00:00",
    trigger="webhook",
)
RECEIPTS_RUN = RunRef(
    dag_id="whiplash_receipts_to_loop", run_id="scheduled__2026-12-05T12:00:00+00:00"
)


def _timeline_default() -> Timeline:
    seen = SeenInLoop(
        first_seen_at=_ago(timedelta(days=2)),
        label_status="pre_transit",
        label_shipped_at=_ago(timedelta(days=2, minutes=5)),
        first_trigger="webhook",
    )
    rma = RmaStep(
        status="created",
        whiplash_return_id=9001,
        adopted=False,
        created_at=_ago(timedelta(days=2, minutes=-3)),
        attempts=1,
        reason_code=None,
        reason_detail=None,
        updated_at=_ago(timedelta(days=2, minutes=-3)),
        run=RMA_RUN,
    )
    receipt = ReceiptStep(
        whiplash_return_id=9001,
        verdict="flag",
        reason_codes=["MISSING_ITEMS"],
        note=HOSTILE_NOTE,
        decided_at=_ago(timedelta(days=1)),
        lines=[ReceiptLine(sku=HOSTILE_SKU, expected=2, good=1, damaged=0, missing=1, extra=0)],
        run=RECEIPTS_RUN,
    )
    action = ActionStep(
        action="flag",
        status="sent",
        vendor_code=None,
        message=None,
        attempts=1,
        created_at=_ago(timedelta(days=1)),
        updated_at=_ago(timedelta(days=1)),
        run=RECEIPTS_RUN,
    )
    steps = [
        Step(
            at=seen.first_seen_at,
            kind="seen",
            title="Seen in Loop (label pre_transit)",
            status="webhook",
        ),
        Step(
            at=rma.created_at,
            kind="rma",
            title="RMA created: Whiplash consumer return 9001",
            status="created",
            run=RMA_RUN,
        ),
        Step(
            at=receipt.decided_at,
            kind="verdict",
            title="Verdict flag (MISSING_ITEMS)",
            status="flag",
            run=RECEIPTS_RUN,
        ),
    ]
    return Timeline(
        merchant="default",
        loop_return_id="41000123",
        order_name=HOSTILE_ORDER,
        tracking_number="1Z999AA10123456784",
        seen=seen,
        rma=rma,
        receipts=[receipt],
        actions=[action],
        steps=steps,
    )


REFS = [
    ReturnRef(
        merchant="default",
        loop_return_id="41000123",
        whiplash_return_id=9001,
        order_name=HOSTILE_ORDER,
        tracking_number="1Z999AA10123456784",
        status="created",
        matched_on="loop_return_id",
    ),
    ReturnRef(
        merchant="acme",
        loop_return_id="52000001",
        whiplash_return_id=9100,
        order_name="#A1",
        tracking_number=None,
        status="created",
        matched_on="loop_return_id",
    ),
]


def _queue(name: str, title: str, rows: list[QueueRow]) -> Queue:
    by_reason: dict[str, int] = {}
    for row in rows:
        for code in row.reason_codes:
            by_reason[code] = by_reason.get(code, 0) + 1
    oldest = max((r.age_seconds for r in rows), default=None)
    return Queue(
        name=name,
        title=title,
        count=len(rows),
        oldest_age_seconds=oldest,
        by_reason=by_reason,
        page=1,
        page_size=50,
        rows=rows,
    )


class StandInData:
    """`ViewData` over the records above; records which arguments each query got."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def search(self, q: str) -> Sequence[Any]:
        self.calls.append(("search", (q,)))
        wanted = q.strip().lower()
        if wanted == "shared":  # a key both merchants have (SKUs and order names repeat)
            return list(REFS)
        return [
            r
            for r in REFS
            if wanted
            in {
                str(v).lower()
                for v in (r.loop_return_id, r.order_name, r.tracking_number, r.whiplash_return_id)
            }
        ]

    def timeline(self, merchant: str, loop_return_id: str) -> Any:
        self.calls.append(("timeline", (merchant, loop_return_id)))
        if (merchant, loop_return_id) == ("default", "41000123"):
            return _timeline_default()
        if (merchant, loop_return_id) == ("acme", "52000001"):
            return Timeline(
                merchant="acme",
                loop_return_id="52000001",
                order_name="#A1",
                tracking_number=None,
                seen=None,
                rma=None,
                receipts=[],
                actions=[],
                steps=[],
            )
        return None

    def queues(self, merchant: str | None) -> Any:
        self.calls.append(("queues", (merchant,)))
        refs = [r for r in REFS if merchant in (None, r.merchant)]
        unmappable = [
            QueueRow(
                merchant=r.merchant,
                loop_return_id=r.loop_return_id,
                whiplash_return_id=None,
                order_name=r.order_name,
                reason_codes=["UNKNOWN_SKU"],
                detail=HOSTILE_SKU,
                since=_ago(timedelta(hours=5)),
                age_seconds=5 * 3600,
            )
            for r in refs
        ]
        flagged = (
            [
                QueueRow(
                    merchant="default",
                    loop_return_id="41000123",
                    whiplash_return_id=9001,
                    order_name=HOSTILE_ORDER,
                    reason_codes=["MISSING_ITEMS"],
                    detail=HOSTILE_NOTE,
                    since=_ago(timedelta(days=1)),
                    age_seconds=86400.0,
                    run=RECEIPTS_RUN,
                )
            ]
            if merchant in (None, "default")
            else []
        )
        return Queues(
            merchant=merchant,
            as_of=NOW,
            days=30,
            unmappable=_queue("unmappable", "RMA not created (unmappable or failed)", unmappable),
            process_failed=_queue("process_failed", "Loop could not process", []),
            action_refused=_queue("action_refused", "Loop refused an action", []),
            flagged=_queue("flagged", "Flagged for review", flagged),
            backfill_misses=_queue(
                "backfill_misses", "Caught by the backfill (missed by the primary flow)", []
            ),
        )

    def trend(self, merchant: str | None, days: int) -> Sequence[Any]:
        self.calls.append(("trend", (merchant, days)))
        first: date = NOW.date() - timedelta(days=days - 1)
        return [
            DayTrend(
                day=first + timedelta(days=n),
                rmas=n % 3 + 1,
                rmas_by_trigger={"webhook": n % 3, "poll": 1},
                processed=n % 4,
                flagged=1,
                misses=0,
                median_label_to_rma_seconds=90.0 if n % 2 else None,
            )
            for n in range(days)
        ]

    def run_summary(self, dag_id: str, run_id: str) -> Any:
        self.calls.append(("run_summary", (dag_id, run_id)))
        if run_id == "empty":
            return RunSummary(
                dag_id=dag_id,
                run_id=run_id,
                merchant="acme",
                flow="rma",
                counts={},
                reasons={},
                actions={},
                returns=[],
            )
        return RunSummary(
            dag_id=dag_id,
            run_id=run_id,
            merchant="default",
            flow="receipts",
            counts={"flag": 1},
            reasons={"MISSING_ITEMS": 1},
            actions={"flag:sent": 1, "note:sent": 1},
            returns=[
                RunReturn(
                    merchant="default",
                    loop_return_id="41000123",
                    whiplash_return_id=9001,
                    outcome="flag",
                    reason_codes=["MISSING_ITEMS"],
                )
            ],
        )
