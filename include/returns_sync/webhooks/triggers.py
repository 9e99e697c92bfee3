"""The event trigger that turns stored webhooks into Airflow asset events, one per merchant.

`WebhookInboxTrigger` runs in the triggerer, one per watched asset: one merchant and one set of
inbox sources (the Loop `label` events of a merchant's RMA DAG, or the Loop `return.*` and
Whiplash events of its receipts DAG). It fires when an event newer than the last one it fired
for is waiting unclaimed; the asset event then schedules the consuming DAG, whose run claims the
events. It fires again for events that are still waiting `refire_after` seconds later (more
than one run's claim limit arrived, or the run failed before claiming), and once at start-up
when anything is waiting, so a triggerer restart never strands an accepted event. Each fire
means newer events arrived (or events waited `refire_after`), so a stream of webhooks costs at
most one asset event per poll interval, and Airflow folds the asset events that arrive before
the scheduler creates a run into that one run.

Why a shared poller: with N merchants there are 2N triggers; if each read the inbox every
second the database would take 2N queries a second for nothing. Instead the triggers of one
triggerer process that watch the same sources share one `SharedInboxPoller`: ONE grouped query
per poll interval for all merchants (`StateStore.inbox_waiting_by_merchant`), after which only
the triggers of merchants with events waiting are woken, each with its own merchant's signal.
The firing rules (`InboxWatch`) are unchanged. The poller lives at module level, keyed by event
loop, sources, interval and reader; it starts with its first trigger and stops with its last.

The trigger must be importable by the triggerer, so it lives here (not in a DAG file) and its
kwargs are plain JSON values.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from include.returns_sync.merchants import DEFAULT_MERCHANT_ID
from include.returns_sync.webhooks.inbox import InboxSignal

log = logging.getLogger(__name__)

SOURCES = ("loop", "loop_return", "whiplash")

#: Reads the signals of every merchant with events waiting in any of the given sources.
SignalReader = Callable[[Sequence[str]], Mapping[str, InboxSignal]]


@dataclass
class InboxWatch:
    """When to fire, given successive inbox signals (pure, so it is tested without a loop)."""

    refire_after: float
    fired_up_to: int = 0
    last_fired: float | None = None

    def should_fire(self, signal: InboxSignal, now: float, wall_now: datetime) -> bool:
        if signal.waiting == 0:
            return False
        fire = signal.newest_id > self.fired_up_to
        if not fire and (self.last_fired is None or now - self.last_fired >= self.refire_after):
            oldest = signal.oldest_received_at
            fire = oldest is None or wall_now - oldest >= timedelta(seconds=self.refire_after)
        if fire:
            self.fired_up_to = max(self.fired_up_to, signal.newest_id)
            self.last_fired = now
        return fire


def read_signals(sources: Sequence[str]) -> Mapping[str, InboxSignal]:
    """Every merchant's signal from the store behind connection `returns_sync_db`."""
    from include.returns_sync import runtime
    from include.returns_sync.webhooks import inbox

    return inbox.read_signals(runtime.shared_state_store(), sources)


@dataclass(eq=False)
class Subscription:
    """One trigger's mailbox at the poller: the latest signal of its merchant, and a wake-up."""

    merchant: str
    latest: InboxSignal | None = None
    wakes: int = 0
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, signal: InboxSignal) -> None:
        self.latest = signal
        self.wakes += 1
        self._event.set()

    async def next(self) -> InboxSignal:
        """The next signal the poller hands this merchant (only when it has events waiting)."""
        await self._event.wait()
        self._event.clear()
        assert self.latest is not None
        return self.latest


PollerKey = tuple[asyncio.AbstractEventLoop, tuple[str, ...], float, SignalReader]
_POLLERS: dict[PollerKey, SharedInboxPoller] = {}


class SharedInboxPoller:
    """One inbox read per interval for every merchant's trigger on the same sources."""

    def __init__(self, key: PollerKey) -> None:
        self.key = key
        _, self.sources, self.poll_interval, self._read = key
        self.subscribers: dict[str, list[Subscription]] = {}
        #: Queries made (tests and logs: the cost is per interval, not per merchant).
        self.reads = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def shared(
        cls, sources: Sequence[str], poll_interval: float, read: SignalReader
    ) -> SharedInboxPoller:
        """The poller of this event loop for `sources`, created on first use."""
        key: PollerKey = (asyncio.get_running_loop(), tuple(sorted(sources)), poll_interval, read)
        poller = _POLLERS.get(key)
        if poller is None:
            poller = _POLLERS[key] = cls(key)
        return poller

    def subscribe(self, merchant: str) -> Subscription:
        subscription = Subscription(merchant)
        self.subscribers.setdefault(merchant, []).append(subscription)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        same = self.subscribers.get(subscription.merchant, [])
        if subscription in same:
            same.remove(subscription)
        if not same:
            self.subscribers.pop(subscription.merchant, None)
        if not self.subscribers:
            _POLLERS.pop(self.key, None)
            if self._task is not None:
                self._task.cancel()
                self._task = None

    async def _run(self) -> None:
        failures = 0
        while self.subscribers:
            try:
                # The store is synchronous (SQLAlchemy): keep the triggerer's event loop free.
                self.reads += 1
                signals = await asyncio.to_thread(self._read, self.sources)
                failures = 0
            except Exception as exc:  # database briefly unavailable: keep watching
                failures += 1
                log.warning(
                    "Reading the %s webhook inbox failed (%s); retrying",
                    "+".join(self.sources),
                    type(exc).__name__,
                )
                await asyncio.sleep(min(30.0, self.poll_interval * 2**failures))
                continue
            for merchant, signal in signals.items():
                if signal.waiting <= 0:
                    continue
                for subscription in self.subscribers.get(merchant, ()):
                    subscription.offer(signal)
            await asyncio.sleep(self.poll_interval)


class WebhookInboxTrigger(BaseEventTrigger):
    """Fires an asset event when webhooks of `sources` wait in the inbox for `merchant`.

    :param sources: inbox sources: "loop" (Loop `label`), "loop_return" (Loop return /
        processing events), "whiplash". `source` (one name) is accepted for triggers serialised
        before several merchants existed.
    :param merchant: the merchant whose events wake this trigger (default "default").
    :param poll_interval: seconds between inbox reads (of the shared poller).
    :param refire_after: seconds before events still waiting fire again.
    """

    def __init__(
        self,
        sources: Sequence[str] | None = None,
        poll_interval: float = 1.0,
        refire_after: float = 60.0,
        merchant: str = DEFAULT_MERCHANT_ID,
        source: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        chosen = list(sources) if sources is not None else ([source] if source else [])
        if not chosen or any(s not in SOURCES for s in chosen):
            raise ValueError(f"sources must be a non-empty list of {SOURCES}, got {chosen!r}")
        if poll_interval <= 0 or refire_after <= 0:
            raise ValueError("poll_interval and refire_after must be positive seconds")
        if not merchant or not isinstance(merchant, str):
            raise ValueError(f"merchant must be a merchant id, got {merchant!r}")
        self.sources = tuple(sorted(set(chosen)))
        self.merchant = merchant
        self.poll_interval = float(poll_interval)
        self.refire_after = float(refire_after)
        #: Replaced in tests; triggers sharing a reader (and sources, interval) share a poller.
        self.read_signals: SignalReader = read_signals

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "sources": list(self.sources),
                "merchant": self.merchant,
                "poll_interval": self.poll_interval,
                "refire_after": self.refire_after,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = InboxWatch(refire_after=self.refire_after)
        poller = SharedInboxPoller.shared(self.sources, self.poll_interval, self.read_signals)
        subscription = poller.subscribe(self.merchant)
        try:
            while True:
                signal = await subscription.next()
                if not watch.should_fire(signal, time.monotonic(), datetime.now(UTC)):
                    continue
                log.info(
                    "%d %s webhook event(s) of merchant %s waiting (newest inbox id %d): firing",
                    signal.waiting,
                    "+".join(self.sources),
                    self.merchant,
                    signal.newest_id,
                )
                yield TriggerEvent(
                    {
                        "sources": list(self.sources),
                        "merchant": self.merchant,
                        "waiting": signal.waiting,
                        "newest_inbox_id": signal.newest_id,
                    }
                )
        finally:
            poller.unsubscribe(subscription)
