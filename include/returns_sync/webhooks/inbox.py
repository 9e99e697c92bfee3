"""The endpoint's and the triggerer's side of the webhook inbox (the table lives in `state/`).

`accept` stores a validated event, with the merchant it belongs to, before the endpoint answers;
an event that needs no work is stored and immediately marked done, so it never wakes a DAG.
`read_signals` is what the triggerer's shared poller reads: per merchant, how many events wait
unclaimed, the newest one's id and the oldest one's arrival, in one query for all merchants
(`read_signal` is the single-merchant view of a scoped store). The SQL behind them is the
store's (`state/inbox.py`); this module only takes a store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the triggerer and DAG files import this module: keep it light
    from include.returns_sync.webhooks.payloads import WebhookEvent

log = logging.getLogger(__name__)


class InboxStore(Protocol):
    """The part of `StateStore` the endpoint uses."""

    def inbox_put(
        self,
        source: Any,
        dedup_key: str,
        topic: str,
        resource_id: str | None,
        payload: Any,
        *,
        merchant: str | None = None,
    ) -> tuple[int, bool]: ...

    def merchant_of_whiplash_return(self, whiplash_return_id: int) -> str | None: ...

    def inbox_done(self, ids: Any, status: Any = "done", reason: str | None = None) -> int: ...


@dataclass(frozen=True)
class Accepted:
    """How the inbox took a delivery."""

    inbox_id: int
    duplicate: bool
    no_work_reason: str | None

    @property
    def outcome(self) -> str:
        if self.duplicate:
            return "duplicate"
        return "ignored" if self.no_work_reason else "accepted"


def accept(store: InboxStore, event: WebhookEvent, merchant: str | None = None) -> Accepted:
    """Store `event` durably for `merchant` (None: the store's own merchant), once per dedup
    key; close it at once when it needs no work.

    If the process dies between the two writes, the event stays `new` and the next drain closes
    it with the same reason (`drain` re-checks every event it claims).
    """
    inbox_id, inserted = store.inbox_put(
        event.source,
        event.dedup_key,
        event.topic,
        event.resource_id,
        event.stored,
        merchant=merchant,
    )
    if inserted and event.no_work_reason:
        store.inbox_done([inbox_id], reason=f"no work: {event.no_work_reason}")
    if inserted:
        log.info(
            "Webhook %s %s for %s stored as inbox event %d of merchant %s%s",
            event.source,
            event.topic,
            event.resource_id,
            inbox_id,
            merchant or "(store's)",
            f" (no work: {event.no_work_reason})" if event.no_work_reason else "",
        )
    else:
        log.info(
            "Duplicate webhook %s %s for %s (inbox event %d): nothing to do",
            event.source,
            event.topic,
            event.resource_id,
            inbox_id,
        )
    return Accepted(inbox_id, not inserted, event.no_work_reason)


class SignalStore(Protocol):
    """The part of `StateStore` the triggerer reads."""

    def inbox_signal(self, source: str) -> tuple[int, int, datetime | None]: ...

    def inbox_waiting_by_merchant(self, sources: Sequence[str]) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class InboxSignal:
    """Unclaimed (`new`) events of one source."""

    waiting: int
    newest_id: int
    oldest_received_at: datetime | None


def read_signal(store: SignalStore, source: str) -> InboxSignal:
    """The inbox signal of `source` (the query is the store's: `StateStore.inbox_signal`)."""
    waiting, newest_id, oldest_received_at = store.inbox_signal(source)
    return InboxSignal(waiting, newest_id, oldest_received_at)


#: What a merchant with nothing waiting reads.
NOTHING_WAITING = InboxSignal(0, 0, None)


def read_signals(store: SignalStore, sources: Sequence[str]) -> dict[str, InboxSignal]:
    """The signal of every merchant with unclaimed events of any of `sources`, in one query
    (`StateStore.inbox_waiting_by_merchant`); merchants with nothing waiting are absent."""
    return {
        merchant: InboxSignal(int(signal.waiting), int(signal.newest_id), signal.oldest_received_at)
        for merchant, signal in store.inbox_waiting_by_merchant(list(sources)).items()
    }
