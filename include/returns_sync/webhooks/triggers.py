"""The event trigger that turns stored webhooks into Airflow asset events.

`WebhookInboxTrigger` runs in the triggerer (one per watched asset) and polls the inbox every
`poll_interval` seconds with one indexed read. It fires when an event newer than the last one it
fired for is waiting unclaimed; the asset event then schedules the consuming DAG, whose run
claims the events. It fires again for events that are still waiting `refire_after` seconds
later (more than one run's claim limit arrived, or the run failed before claiming), and once at
start-up when anything is waiting, so a triggerer restart never strands an accepted event.
Each fire means newer events arrived (or events waited `refire_after`), so a stream of
webhooks costs at most one asset event per poll interval, and Airflow folds the asset events
that arrive before the scheduler creates a run into that one run.

The trigger must be importable by the triggerer, so it lives here (not in a DAG file) and its
kwargs are plain JSON values.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from include.returns_sync.webhooks.inbox import InboxSignal

log = logging.getLogger(__name__)

SOURCES = ("loop", "loop_return", "whiplash")


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


def _read_signal(source: str) -> InboxSignal:
    from include.returns_sync import runtime
    from include.returns_sync.webhooks.inbox import read_signal

    return read_signal(runtime.state_store(), source)


class WebhookInboxTrigger(BaseEventTrigger):
    """Fires an asset event when webhooks of `source` wait in the inbox (see module docstring).

    :param source: "loop", "loop_return" (Loop return / processing events) or "whiplash".
    :param poll_interval: seconds between inbox reads.
    :param refire_after: seconds before events still waiting fire again.
    """

    def __init__(
        self,
        source: str,
        poll_interval: float = 1.0,
        refire_after: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if poll_interval <= 0 or refire_after <= 0:
            raise ValueError("poll_interval and refire_after must be positive seconds")
        self.source = source
        self.poll_interval = float(poll_interval)
        self.refire_after = float(refire_after)
        #: Replaced in tests; reads the store behind connection `returns_sync_db`.
        self.read_signal: Callable[[str], InboxSignal] = _read_signal

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "source": self.source,
                "poll_interval": self.poll_interval,
                "refire_after": self.refire_after,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = InboxWatch(refire_after=self.refire_after)
        failures = 0
        while True:
            try:
                # The store is synchronous (SQLAlchemy): keep the triggerer's event loop free.
                signal = await asyncio.to_thread(self.read_signal, self.source)
                failures = 0
            except Exception as exc:  # database briefly unavailable: keep watching
                failures += 1
                log.warning("Reading the %s webhook inbox failed (%s); retrying", self.source, exc)
                await asyncio.sleep(min(30.0, self.poll_interval * 2**failures))
                continue
            if watch.should_fire(signal, time.monotonic(), datetime.now(UTC)):
                log.info(
                    "%d %s webhook event(s) waiting (newest inbox id %d): firing",
                    signal.waiting,
                    self.source,
                    signal.newest_id,
                )
                yield TriggerEvent(
                    {
                        "source": self.source,
                        "waiting": signal.waiting,
                        "newest_inbox_id": signal.newest_id,
                    }
                )
            await asyncio.sleep(self.poll_interval)
