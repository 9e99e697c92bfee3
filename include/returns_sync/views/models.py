"""What the operator views hand out: frozen pydantic models, JSON as they are (`model_dump`).

The UI (the Airflow plugin) renders these and nothing else, so every value a page shows is
here, already decided: ages in seconds, counts by reason, the run of every step. Vendor text
(SKUs, notes, order names) is carried as plain strings; escaping it is the renderer's job.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, computed_field


class ViewModel(BaseModel):
    """Immutable, strict about unknown fields: a typo in a query fails loudly in the tests."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RunRef(ViewModel):
    """The Airflow DAG run that did a step, and what started it (when known).

    `dag_id` and `run_id` are None for rows written before revision 0008 or outside a DAG run;
    `trigger` is `webhook`, `poll`, `backfill` or `manual` (RMA steps only).
    """

    dag_id: str | None = None
    run_id: str | None = None
    trigger: str | None = None


class ReturnRef(ViewModel):
    """One search hit: enough to show the row and open its timeline."""

    merchant: str
    loop_return_id: str
    whiplash_return_id: int | None
    order_name: str | None
    tracking_number: str | None
    status: str
    #: which key matched: loop_return_id, order_name, tracking_number or whiplash_return_id
    matched_on: str


class SeenInLoop(ViewModel):
    """When we first saw the return, what its label said, and which trigger brought it."""

    first_seen_at: datetime
    label_status: str | None
    #: when the label went `pre_transit` or later (Loop's `label_updated_at` as we saw it)
    label_shipped_at: datetime | None
    first_trigger: str


class RmaStep(ViewModel):
    """The Whiplash RMA: created, adopted, or why not (yet).

    `run` is the run that created/adopted it, or, while there is none, the latest attempt.
    """

    status: str
    whiplash_return_id: int | None
    adopted: bool
    created_at: datetime | None
    attempts: int
    reason_code: str | None
    reason_detail: str | None
    updated_at: datetime
    run: RunRef


class ReceiptLine(ViewModel):
    """Units of one SKU on a receipt; `unexpected`: Loop expected none of this SKU."""

    sku: str
    expected: int
    good: int
    damaged: int
    missing: int
    extra: int
    unexpected: bool = False


class ReceiptStep(ViewModel):
    """The verdict on one Whiplash consumer return, with its lines and the exact Return Note."""

    whiplash_return_id: int
    verdict: str
    reason_codes: list[str]
    note: str | None
    decided_at: datetime
    #: empty for decisions recorded before the lines were kept (revision 0008)
    lines: list[ReceiptLine]
    run: RunRef


class ActionStep(ViewModel):
    """One call on Loop (process, flag, note, disposition) and how it ended."""

    action: str
    status: str
    vendor_code: str | None
    message: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    run: RunRef


class Step(ViewModel):
    """One line of the timeline, in time order: what happened, how it ended, which run."""

    at: datetime | None
    kind: str  # seen, rma, verdict, action
    title: str
    status: str
    run: RunRef | None = None


class Timeline(ViewModel):
    """A return's whole story as the state store knows it."""

    merchant: str
    loop_return_id: str
    order_name: str | None
    tracking_number: str | None
    seen: SeenInLoop | None
    rma: RmaStep | None
    receipts: list[ReceiptStep]
    actions: list[ActionStep]
    steps: list[Step]


class QueueRow(ViewModel):
    """One return waiting in a queue (or, for misses, one the backfill rescued)."""

    merchant: str
    loop_return_id: str
    whiplash_return_id: int | None
    order_name: str | None
    reason_codes: list[str]
    detail: str | None
    #: since when it waits (first seen; the failure; the verdict; the backfill's RMA)
    since: datetime
    age_seconds: float
    #: backfill misses: how long after its label the backfill caught it (None: label unknown)
    late_seconds: float | None = None
    run: RunRef | None = None


class Queue(ViewModel):
    """A queue's count, its oldest item's age, counts by reason, and one page of rows."""

    name: str
    title: str
    count: int
    oldest_age_seconds: float | None
    by_reason: dict[str, int]
    page: int
    page_size: int
    rows: list[QueueRow]


class Queues(ViewModel):
    """Every queue of one merchant (or all merchants), as of `as_of`."""

    merchant: str | None
    as_of: datetime
    #: flagged and misses cover this many days; needs-attention queues are never cut off
    days: int
    unmappable: Queue
    process_failed: Queue
    action_refused: Queue
    flagged: Queue
    backfill_misses: Queue

    @computed_field  # type: ignore[prop-decorator]
    @property
    def needs_attention(self) -> int:
        """How many returns need a person: unmappable, process failed, action refused."""
        return self.unmappable.count + self.process_failed.count + self.action_refused.count


class DayTrend(ViewModel):
    """One UTC day of the trend."""

    day: date
    rmas: int
    rmas_by_trigger: dict[str, int] = Field(default_factory=dict)
    processed: int
    flagged: int
    misses: int
    median_label_to_rma_seconds: float | None


class RunReturn(ViewModel):
    """One return a run touched and how it ended for it."""

    merchant: str
    loop_return_id: str | None
    whiplash_return_id: int | None
    outcome: str
    reason_codes: list[str]


class RunSummary(ViewModel):
    """A DAG run of ours: counts by outcome and by reason, and each return it touched.

    `flow` is `rma` (creation and backfill DAGs) or `receipts`. Outcomes are the state store's
    view now: a return the run left unmappable and a later run created shows under the later
    run. `actions` counts the Loop calls this run wrote, as `action:status`.
    """

    dag_id: str
    run_id: str
    merchant: str
    flow: str
    counts: dict[str, int]
    reasons: dict[str, int]
    actions: dict[str, int]
    returns: list[RunReturn]
