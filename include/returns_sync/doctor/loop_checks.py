"""Preflight checks against Loop: the key and its scopes, page size, what Details carry.

Requests (all GETs): one page of the detailed returns list over the last 119 days at Loop's
documented maximum page size, Get Return Details and Get Return Notes of the most recent return
with a label, and the webhook subscriptions. Nothing is processed, flagged or noted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from include.returns_sync.clients.errors import (
    VendorAuthError,
    VendorError,
    VendorValidationError,
)
from include.returns_sync.clients.loop import MAX_PAGE_SIZE, _loop_time
from include.returns_sync.doctor.checks import CheckResult, Status, check, describe_error
from include.returns_sync.doctor.probes import DoctorLoopHook

#: A little under Loop's 120-day limit on one list window.
LOOKBACK = timedelta(days=119)
#: Page sizes tried, largest first, when Loop refuses its documented maximum.
FALLBACK_PAGE_SIZES = (250, 100)
LABEL_FIELDS = ("label_status", "carrier", "tracking_number", "label_url")
LIST_PATH = "/warehouse/return/list"

KEY = "The API key in loop_default is valid and has the Returns scope (detailed returns list)."
DETAILS = "Get Return Details answers (Returns scope)."
DETAILS_LABELS = (
    "The detailed list carries each return's label (label_status, carrier, tracking_number, "
    "label_url); Return Details may or may not."
)
OUTCOME = (
    'Each line item carries its outcome (refund, exchange, ...); "default" means the return\'s '
    "outcome."
)
NOTES = "Get Return Notes answers (Returns scope)."


def page_size_assumption(configured: int) -> str:
    return (
        f"The detailed returns list accepts pageSize={MAX_PAGE_SIZE} (Loop's documented "
        f"maximum); the pipeline asks for {configured} (RETURNS_SYNC_LOOP_PAGE_SIZE)."
    )


@dataclass
class LoopListing:
    """What the first list page showed."""

    page_size: int
    records: list[dict[str, Any]]
    has_next: bool
    refused: list[int] = field(default_factory=list)


def inspect_loop(hook: DoctorLoopHook, *, configured_page_size: int) -> list[CheckResult]:
    """Every Loop row, in report order."""
    key_row = check("loop.key", KEY)
    try:
        listing = _first_page(hook)
    except VendorAuthError as error:
        return [
            key_row(
                f"the list answered HTTP {error.status}: the key is invalid or lacks the "
                "Returns scope",
                "every flow stops at its first Loop call; put a valid key with the Returns "
                "scope in loop_default (password field)",
                Status.BLOCKING,
            ),
            *_not_run("the Loop key was refused", configured_page_size),
            *_untestable(),
        ]
    except VendorError as error:
        return [
            key_row(
                f"no usable answer from the list: {describe_error(error)}",
                "every flow stops at its first Loop call; check loop_default's host and the "
                "network path to Loop",
                Status.BLOCKING,
            ),
            *_not_run("Loop could not be read", configured_page_size),
            *_untestable(),
        ]
    rows = [
        key_row(
            f"key accepted; {len(listing.records)} return(s) updated in the last "
            f"{LOOKBACK.days} days on the first page",
            "none",
            Status.OK,
            {"returns_on_first_page": len(listing.records)},
        ),
        page_size_row(listing, configured_page_size),
    ]
    sample = _recent_with_label(listing.records)
    details: dict[str, Any] | None = None
    if sample is None:
        rows.append(_no_sample("loop.details", DETAILS))
    else:
        details_result, details = _details(hook, str(sample["id"]))
        rows.append(details_result)
    rows.append(details_labels_row(listing.records, sample, details))
    rows.append(line_item_outcome_row(listing.records, details))
    if sample is None:
        rows.append(_no_sample("loop.notes", NOTES))
    else:
        rows.append(_notes(hook, str(sample["id"])))
    rows.extend(_untestable())
    return rows


def _first_page(hook: DoctorLoopHook) -> LoopListing:
    now = datetime.now(UTC).replace(microsecond=0)
    refused: list[int] = []
    for size in (MAX_PAGE_SIZE, *FALLBACK_PAGE_SIZES):
        params = {
            "from": _loop_time(now - LOOKBACK),
            "to": _loop_time(now),
            "filter": "updated_at",
            "paginate": "true",
            "pageSize": size,
        }
        try:
            answer = hook._call("doctor_list_returns", "GET", LIST_PATH, params=params)
        except VendorValidationError:
            refused.append(size)
            continue
        body = answer.body
        if isinstance(body, list):  # pagination ignored: one bare array
            return LoopListing(size, [r for r in body if isinstance(r, dict)], False, refused)
        page = body if isinstance(body, Mapping) else {}
        records = page.get("returns") or []
        return LoopListing(
            size,
            [r for r in records if isinstance(r, dict)],
            bool(page.get("nextPageUrl")),
            refused,
        )
    raise VendorValidationError(
        "loop", 422, None, f"every page size was refused: {refused}", "GET", LIST_PATH
    )


def page_size_row(listing: LoopListing, configured: int) -> CheckResult:
    """Loop documents pageSize up to 750; the pipeline asks RETURNS_SYNC_LOOP_PAGE_SIZE."""
    row = check("loop.page_size", page_size_assumption(configured))
    got = len(listing.records)
    details = {
        "asked": listing.page_size,
        "refused": listing.refused,
        "rows": got,
        "next_page": listing.has_next,
        "configured": configured,
    }
    if listing.refused:
        observed = (
            f"pageSize {', '.join(map(str, listing.refused))} refused; {listing.page_size} accepted"
        )
        if configured > listing.page_size:
            return row(
                observed,
                f"every poll would fail; set RETURNS_SYNC_LOOP_PAGE_SIZE={listing.page_size}",
                Status.BLOCKING,
                details,
            )
        return row(observed, "the configured page size is accepted", Status.WARN, details)
    if listing.has_next and got < listing.page_size:
        return row(
            f"pageSize={listing.page_size} accepted but the page held {got} rows with a next "
            "page: Loop caps pages silently",
            "the pipeline follows the cursor to the end, so smaller pages cost calls, not data",
            Status.WARN,
            details,
        )
    if got < listing.page_size:
        observed = (
            f"pageSize={listing.page_size} accepted ({got} rows: fewer returns than one page, "
            "so a silent cap would not show)"
        )
    else:
        observed = f"pageSize={listing.page_size} accepted and a full page of {got} rows served"
    return row(observed, "none", Status.OK, details)


def _recent_with_label(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The most recently updated return, preferring one whose list record shows a label."""
    if not records:
        return None
    labelled = [r for r in records if r.get("label_status")]
    pool = labelled or list(records)
    return max(pool, key=lambda r: (str(r.get("updated_at") or ""), str(r.get("id"))))


def _details(hook: DoctorLoopHook, return_id: str) -> tuple[CheckResult, dict[str, Any] | None]:
    row = check("loop.details", DETAILS)
    try:
        answer = hook._call(
            "doctor_get_return",
            "GET",
            "/warehouse/return/details",
            params={"return_id": return_id},
        )
    except VendorAuthError as error:
        return row(
            f"HTTP {error.status} for return {return_id}: the key lacks the Returns scope",
            "RMA creation cannot read line items; give the key the Returns scope",
            Status.BLOCKING,
            {"return_id": return_id},
        ), None
    except VendorError as error:
        return row(
            f"return {return_id}: {describe_error(error)}",
            "RMA creation reads every return's Details: find out why this one failed",
            Status.BLOCKING,
            {"return_id": return_id},
        ), None
    body = answer.body if isinstance(answer.body, dict) else None
    if body is None:
        return row(
            f"return {return_id}: Details answered with a {type(answer.body).__name__}",
            "RMA creation cannot read line items from this answer",
            Status.BLOCKING,
            {"return_id": return_id},
        ), None
    return row(f"return {return_id} read", "none", Status.OK, {"return_id": return_id}), body


def details_labels_row(
    records: Sequence[dict[str, Any]],
    sample: dict[str, Any] | None,
    details: dict[str, Any] | None,
) -> CheckResult:
    """Does Details carry the label fields the list shows? (PRODUCT.md section 6.)"""
    row = check("loop.details_labels", DETAILS_LABELS)
    if records and not any("label_status" in record for record in records):
        return row(
            f"none of the {len(records)} listed returns carries label_status",
            "polling cannot tell which returns are in transit: only label webhooks would "
            "create RMAs. Ask Loop why the list lacks label fields",
            Status.BLOCKING,
        )
    if sample is None or details is None or not sample.get("label_status"):
        why = (
            "no return to compare"
            if sample is None or details is None
            else f"no listed return has a label (latest: {sample.get('id')})"
        )
        return row(why, "decided on the first return with a label", Status.INCONCLUSIVE)
    missing = [name for name in LABEL_FIELDS if details.get(name) in (None, "")]
    facts = {"return_id": str(sample["id"]), "missing_in_details": missing}
    if not missing:
        return row(
            f"Details of return {sample['id']} carry all label fields", "none", Status.OK, facts
        )
    return row(
        f"Details of return {sample['id']} lack {', '.join(missing)} (the list shows "
        f"label_status={sample.get('label_status')})",
        "handled: eligibility and the RMA's carrier/tracking come from the list record, the "
        "label webhook or our records, never from Details",
        Status.WARN,
        facts,
    )


def line_item_outcome_row(
    records: Sequence[dict[str, Any]], details: dict[str, Any] | None
) -> CheckResult:
    """Line items may say `outcome: "default"`, meaning the return's outcome."""
    row = check("loop.line_item_outcome", OUTCOME)
    items = [
        item
        for record in [*records, *([details] if details else [])]
        for item in record.get("line_items") or []
        if isinstance(item, dict)
    ]
    if not items:
        return row("no line items to look at", "decided once returns exist", Status.INCONCLUSIVE)
    defaulted = sum(1 for item in items if item.get("outcome") == "default")
    facts = {"line_items": len(items), "default_outcome": defaulted}
    if defaulted:
        return row(
            f'{defaulted} of {len(items)} line items say outcome "default"',
            "handled: such an item takes the return's outcome for the RMA's return_action",
            Status.WARN,
            facts,
        )
    return row(f"all {len(items)} line items name their outcome", "none", Status.OK, facts)


def _notes(hook: DoctorLoopHook, return_id: str) -> CheckResult:
    row = check("loop.notes", NOTES)
    path = f"/warehouse/return/{return_id}/notes"
    try:
        hook._call("doctor_get_notes", "GET", path)
    except VendorValidationError as error:
        if error.status == 422:  # Loop's way of saying "no notes"
            return row(f"return {return_id}: no notes (422)", "none", Status.OK)
        return row(f"return {return_id}: {describe_error(error)}", _NOTES_NEEDED, Status.BLOCKING)
    except VendorAuthError as error:
        return row(
            f"HTTP {error.status}: the key lacks the Returns scope for notes",
            _NOTES_NEEDED,
            Status.BLOCKING,
        )
    except VendorError as error:
        return row(f"return {return_id}: {describe_error(error)}", _NOTES_NEEDED, Status.BLOCKING)
    return row(f"return {return_id}: notes read", "none", Status.OK)


_NOTES_NEEDED = (
    "flagging reads a return's notes before writing one (never the same note twice); "
    "give the key the Returns scope"
)


def _no_sample(name: str, assumption: str) -> CheckResult:
    return check(name, assumption)(
        f"no return updated in the last {LOOKBACK.days} days to read",
        "decided once the account has a return",
        Status.INCONCLUSIVE,
    )


def _untestable() -> list[CheckResult]:
    """Section 6 points a read-only preflight cannot probe; listed so the report is complete."""
    return [
        check(
            "loop.process_async",
            "Process Return answers `true` when queued, not when done.",
        )(
            "not probed: the doctor never processes a return",
            "handled: a Process is confirmed by re-reading the return and re-sent only after "
            "RETURNS_SYNC_PROCESS_SETTLE_MINUTES",
            Status.SKIPPED,
        ),
        check(
            "loop.rate_limit_window",
            "A 429 carries no Retry-After and may last until Loop's one-minute window ends.",
        )(
            "not probed: it would spend the key's rate budget",
            "handled: a 429 storm is waited out inside the task (up to 75 s in all, each wait "
            "logged); pools bound concurrent Loop tasks",
            Status.SKIPPED,
        ),
    ]


def _not_run(reason: str, configured: int) -> list[CheckResult]:
    names = {
        "loop.page_size": page_size_assumption(configured),
        "loop.details": DETAILS,
        "loop.details_labels": DETAILS_LABELS,
        "loop.line_item_outcome": OUTCOME,
        "loop.notes": NOTES,
    }
    return [
        check(name, assumption)(f"not checked: {reason}", "fix loop.key first", Status.SKIPPED)
        for name, assumption in names.items()
    ]
