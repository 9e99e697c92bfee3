"""The inbox trigger: fires for new arrivals, once per arrival burst, and again for stragglers."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any

import pytest

from include.returns_sync.state import StateStore
from include.returns_sync.webhooks.inbox import InboxSignal, read_signal
from include.returns_sync.webhooks.triggers import InboxWatch, WebhookInboxTrigger

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def put(store: StateStore, key: str, source: str = "loop") -> int:
    event_id, _ = store.inbox_put(
        source, key, "label.updated", key, {"label_status": "pre_transit"}
    )
    return event_id


def test_the_signal_counts_only_unclaimed_events_of_one_source(store: StateStore) -> None:
    assert read_signal(store, "loop") == InboxSignal(0, 0, None)
    first = put(store, "a")
    second = put(store, "b")
    put(store, "c", source="whiplash")
    store.inbox_claim("loop", 1, "run-1", timedelta(minutes=10))
    signal = read_signal(store, "loop")
    assert (signal.waiting, signal.newest_id) == (1, second)
    assert signal.oldest_received_at is not None and signal.oldest_received_at.tzinfo is not None
    store.inbox_done([first, second])
    assert read_signal(store, "loop").waiting == 0


def test_the_watch_fires_once_per_new_arrival_not_while_the_same_events_wait() -> None:
    watch = InboxWatch(refire_after=60)
    assert not watch.should_fire(InboxSignal(0, 0, None), 0.0, NOW)
    assert watch.should_fire(InboxSignal(1, 7, NOW), 1.0, NOW)
    assert not watch.should_fire(InboxSignal(1, 7, NOW), 2.0, NOW)  # a run is on its way
    assert watch.should_fire(InboxSignal(2, 8, NOW), 3.0, NOW)  # something new arrived
    assert not watch.should_fire(InboxSignal(0, 0, None), 4.0, NOW)  # all claimed


def test_the_watch_fires_again_for_events_still_waiting_after_refire_after() -> None:
    watch = InboxWatch(refire_after=60)
    assert watch.should_fire(InboxSignal(1, 7, NOW), 0.0, NOW)
    later = NOW + timedelta(seconds=61)
    assert not watch.should_fire(InboxSignal(1, 7, NOW), 30.0, later)  # fired 30 s ago
    assert watch.should_fire(InboxSignal(1, 7, NOW), 61.0, later)
    assert not watch.should_fire(InboxSignal(1, 7, NOW), 62.0, later)


def test_events_that_only_just_arrived_do_not_refire_even_when_the_last_fire_is_old() -> None:
    watch = InboxWatch(refire_after=60, fired_up_to=9, last_fired=0.0)
    assert not watch.should_fire(InboxSignal(1, 9, NOW - timedelta(seconds=5)), 100.0, NOW)


def test_a_fresh_watch_fires_for_events_left_waiting_before_a_restart() -> None:
    assert InboxWatch(refire_after=60).should_fire(InboxSignal(3, 5, NOW), 0.0, NOW)


class Collector:
    """Runs a trigger in the background and collects what it yields (cancelling a pending
    `anext` would close the generator, so the trigger is consumed by one task throughout)."""

    def __init__(self, trigger: WebhookInboxTrigger) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.task = asyncio.create_task(self._consume(trigger))

    async def _consume(self, trigger: WebhookInboxTrigger) -> None:
        async for event in trigger.run():
            await self.queue.put(event.payload)

    async def next(self, timeout: float) -> Any:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def test_the_trigger_turns_stored_events_into_trigger_events(store: StateStore) -> None:
    trigger = WebhookInboxTrigger(source="loop", poll_interval=0.02, refire_after=3600)
    trigger.read_signal = lambda source: read_signal(store, source)

    async def scenario() -> tuple[Any, Any, int]:
        collector = Collector(trigger)
        put(store, "first")
        first = await collector.next(2)
        with pytest.raises(TimeoutError):  # nothing new: no second event
            await collector.next(0.3)
        newest = put(store, "second")
        second = await collector.next(2)
        await collector.stop()
        return first, second, newest

    first, second, newest = asyncio.run(scenario())
    assert first["source"] == "loop" and first["waiting"] == 1
    assert second == {"source": "loop", "waiting": 2, "newest_inbox_id": newest}


def test_the_trigger_fires_again_for_events_nobody_claimed(store: StateStore) -> None:
    trigger = WebhookInboxTrigger(source="loop", poll_interval=0.02, refire_after=0.2)
    trigger.read_signal = lambda source: read_signal(store, source)
    put(store, "waiting")

    async def scenario() -> list[Any]:
        collector = Collector(trigger)
        events = [await collector.next(2), await collector.next(3)]
        await collector.stop()
        return events

    assert [e["waiting"] for e in asyncio.run(scenario())] == [1, 1]


def test_the_trigger_keeps_watching_when_the_store_is_briefly_unavailable(
    store: StateStore,
) -> None:
    trigger = WebhookInboxTrigger(source="whiplash", poll_interval=0.01)
    calls = {"n": 0}

    def flaky(source: str) -> InboxSignal:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("database restarting")
        return read_signal(store, source)

    trigger.read_signal = flaky
    put(store, "x", source="whiplash")

    async def scenario() -> Any:
        collector = Collector(trigger)
        event = await collector.next(3)
        await collector.stop()
        return event

    assert asyncio.run(scenario())["source"] == "whiplash"


def test_the_trigger_serialises_to_an_importable_class_with_plain_kwargs() -> None:
    trigger = WebhookInboxTrigger(source="loop", poll_interval=0.5)
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {"source": "loop", "poll_interval": 0.5, "refire_after": 60.0}
    assert WebhookInboxTrigger.hash(classpath, kwargs) == WebhookInboxTrigger.hash(
        *rebuilt.serialize()
    )


@pytest.mark.parametrize("kwargs", [{"source": "shopify"}, {"source": "loop", "poll_interval": 0}])
def test_the_trigger_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WebhookInboxTrigger(**kwargs)


# --------------------------------------------------------------------------- assets


def test_each_vendor_inbox_is_an_asset_watched_by_its_trigger() -> None:
    from include.returns_sync.webhooks.assets import LOOP_WEBHOOKS, WHIPLASH_WEBHOOKS

    for asset, source in ((LOOP_WEBHOOKS, "loop"), (WHIPLASH_WEBHOOKS, "whiplash")):
        assert asset.uri == f"returns_sync://webhooks/{source}"
        [watcher] = asset.watchers
        assert isinstance(watcher.trigger, WebhookInboxTrigger)
        assert watcher.trigger.source == source


def _context(run_type: str, uris: list[str]) -> dict[str, Any]:
    from types import SimpleNamespace

    from airflow.sdk import Asset

    return {
        "dag_run": SimpleNamespace(run_type=run_type),
        "triggering_asset_events": {Asset(uri): [] for uri in uris},
    }


@pytest.mark.parametrize(
    ("run_type", "uris", "expected"),
    [
        ("asset_triggered", ["returns_sync://webhooks/loop"], True),
        ("asset_triggered", ["returns_sync://webhooks/whiplash"], True),
        # the RMA asset also triggered it: the run polls its window as before
        (
            "asset_triggered",
            ["returns_sync://webhooks/whiplash", "returns_sync://whiplash/consumer_returns"],
            False,
        ),
        ("asset_triggered", [], False),
        ("scheduled", ["returns_sync://webhooks/loop"], False),
        ("manual", [], False),
    ],
)
def test_only_runs_triggered_by_webhook_assets_alone_skip_the_poll_window(
    run_type: str, uris: list[str], expected: bool
) -> None:
    from include.returns_sync.webhooks.assets import webhook_only_run

    assert webhook_only_run(_context(run_type, uris)) is expected
