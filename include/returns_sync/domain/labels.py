"""The label of a Loop return whose record carries none (issue 12.1, PRODUCT.md sections 3 and 6).

Loop's Return Details (the single-return read of webhooks, manual `return_ids` and retries) may
carry no `label_status`, `carrier`, `tracking_number`, `label_url` or `label_updated_at`. Such a
record says "label unknown", never "not shipped" (`LoopReturn.label_known`). Before eligibility
is decided, `fill_labels` completes every open return whose record lacks the label from, in
this order:

1. **The detailed list**, which carries the whole label (status, carrier, tracking number,
   label URL and time). It cannot filter by id, but Details carries `updated_at`, so one list
   call with a narrow `updated_at` window (one second either side) finds the return; returns
   whose `updated_at` values lie within `CLUSTER_SPAN` of each other share one call. The list is
   the current truth and the only source that also gives carrier and tracking, which the RMA
   must carry (`domain.mapping` reads them from the same filled-in record). A list call that
   fails propagates: the task fails and retries, like the other batched look-ups.
2. **The webhook event that announced the return** (the inbox row keeps its `label_status`
   and `label_updated_at`): used when the list did not show the return (it changed between
   the two reads). Status only: the RMA then has no carrier or tracking.
3. **Our own sync record** (`claim_for_creation` stores the label status last seen): same.

A return none of them knows stays unknown: `sync_returns` records it as unmappable with reason
`LABEL_UNKNOWN` and later runs retry it (it is never reported as "label not shipped").

A record from the detailed list (or anything else that carried label fields, even `null`) is
taken as it is: there a missing status means no shipped label.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from include.returns_sync.domain.eligibility import needs_label
from include.returns_sync.models import LoopReturn
from include.returns_sync.models._base import _to_utc

log = logging.getLogger(__name__)

#: Returns whose `updated_at` lie within this span share one detailed-list call.
CLUSTER_SPAN = timedelta(hours=1)
#: Slack around a window of `updated_at` values (Loop's list takes `from`/`to` to the second).
WINDOW_SLACK = timedelta(seconds=1)

FROM_LIST = "list"
FROM_WEBHOOK = "webhook"
FROM_RECORDS = "records"


class LoopLister(Protocol):
    def list_returns(
        self,
        *,
        start: datetime,
        end: datetime,
        filter_field: str = ...,
        state: str | None = ...,
        page_size: int = ...,
    ) -> Iterable[LoopReturn]: ...


@dataclass(frozen=True)
class Label:
    """What one source knows about a return's label; only `status` is always needed."""

    status: str | None
    carrier: str | None = None
    tracking_number: str | None = None
    label_url: str | None = None
    updated_at: datetime | None = None
    source: str = ""

    @classmethod
    def of(cls, loop_return: LoopReturn, source: str) -> Label:
        return cls(
            status=loop_return.label_status,
            carrier=loop_return.carrier,
            tracking_number=loop_return.tracking_number,
            label_url=loop_return.label_url,
            updated_at=loop_return.label_updated_at,
            source=source,
        )


def with_label(loop_return: LoopReturn, label: Label) -> LoopReturn:
    """The return with the label filled in (validated again, so statuses are normalised)."""
    data: dict[str, Any] = loop_return.model_dump()
    data.update(
        label_status=label.status,
        carrier=label.carrier,
        tracking_number=label.tracking_number,
        label_url=label.label_url,
        label_updated_at=label.updated_at,
    )
    return LoopReturn.model_validate(data)


def fill_labels(
    returns: Sequence[LoopReturn],
    *,
    loop: LoopLister,
    announced: Mapping[str, Label] | None = None,
    recorded: Mapping[str, str | None] | None = None,
    page_size: int = 750,
) -> list[LoopReturn]:
    """`returns`, each open one without label fields completed from the sources above.

    The order of `returns` is kept; a return no source knows comes back unchanged (unknown).
    """
    wanted = {r.id: r for r in returns if r.id and needs_label(r)}
    if not wanted:
        return list(returns)
    labels = _from_list(list(wanted.values()), loop, page_size)
    for source, known in (
        (FROM_WEBHOOK, announced or {}),
        (FROM_RECORDS, {k: Label(status=v) for k, v in (recorded or {}).items() if v}),
    ):
        for rid in wanted:
            label = known.get(rid)
            if rid not in labels and label is not None and label.status:
                labels[rid] = Label(
                    label.status,
                    label.carrier,
                    label.tracking_number,
                    label.label_url,
                    label.updated_at,
                    source,
                )
    unknown = sorted(rid for rid in wanted if rid not in labels)
    if unknown:
        log.warning("No label known for Loop return(s) %s: retried later", ", ".join(unknown))
    by_source: dict[str, int] = {}
    for label in labels.values():
        by_source[label.source] = by_source.get(label.source, 0) + 1
    log.info("Labels of %d return(s) read without one: %s", len(wanted), by_source or "none")
    return [
        with_label(r, labels[r.id or ""]) if r.id in wanted and r.id in labels else r
        for r in returns
    ]


def _from_list(wanted: list[LoopReturn], loop: LoopLister, page_size: int) -> dict[str, Label]:
    """Labels the detailed list shows for these returns: one call per cluster of updated_at."""
    stamped = sorted((r for r in wanted if r.updated_at is not None), key=_updated_at)
    ids = {r.id for r in wanted}
    found: dict[str, Label] = {}
    for first, last in _clusters([_updated_at(r) for r in stamped]):
        for listed in loop.list_returns(
            start=first - WINDOW_SLACK,
            end=last + WINDOW_SLACK,
            filter_field="updated_at",
            state="open",
            page_size=page_size,
        ):
            if listed.id in ids:  # the list speaks for the label even when it has none
                found[str(listed.id)] = Label.of(listed, FROM_LIST)
    return found


def _updated_at(loop_return: LoopReturn) -> datetime:
    assert loop_return.updated_at is not None
    return loop_return.updated_at


def _clusters(moments: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted moments grouped into windows no longer than `CLUSTER_SPAN`."""
    windows: list[tuple[datetime, datetime]] = []
    for moment in moments:
        if windows and moment - windows[-1][0] <= CLUSTER_SPAN:
            windows[-1] = (windows[-1][0], moment)
        else:
            windows.append((moment, moment))
    return windows


def announced_label(payload: Mapping[str, Any]) -> Label | None:
    """The label a stored Loop `label` webhook event announced (its status and time)."""
    status = payload.get("label_status")
    if not isinstance(status, str) or not status.strip():
        return None
    try:
        moment = _to_utc(payload.get("label_updated_at"))
    except ValueError:  # "-" when the event carried no time
        moment = None
    return Label(status=status.strip().lower(), updated_at=moment, source=FROM_WEBHOOK)


__all__ = ["Label", "announced_label", "fill_labels", "with_label"]
