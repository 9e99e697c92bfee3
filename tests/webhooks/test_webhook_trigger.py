"""The inbox trigger: fires for new arrivals, once per arrival burst, and again for stragglers."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any

import pytest

from include.returns_sync.state import StateStore
from include.returns_sync.webhooks import triggers as triggers_module
from include.returns_sync.webhooks.inbox import InboxSignal, read_signal, read_signals
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


def reader(store: StateStore) -> Any:
    """The shared poller's one grouped query, on `store`, counting how often it runs."""

    def read(sources: Any) -> Any:
        read.calls += 1  # type: ignore[attr-defined]
        return read_signals(store, sources)

    read.calls = 0  # type: ignore[attr-defined]
    return read


def test_the_trigger_turns_stored_events_into_trigger_events(store: StateStore) -> None:
    trigger = WebhookInboxTrigger(sources=["loop"], poll_interval=0.02, refire_after=3600)
    trigger.read_signals = reader(store)

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
    assert first["sources"] == ["loop"] and first["waiting"] == 1
    assert second == {
        "sources": ["loop"],
        "merchant": "default",
        "waiting": 2,
        "newest_inbox_id": newest,
    }


def test_the_trigger_fires_again_for_events_nobody_claimed(store: StateStore) -> None:
    trigger = WebhookInboxTrigger(sources=["loop"], poll_interval=0.02, refire_after=0.2)
    trigger.read_signals = reader(store)
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
    trigger = WebhookInboxTrigger(sources=["whiplash"], poll_interval=0.01)
    calls = {"n": 0}

    def flaky(sources: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("database restarting")
        return read_signals(store, sources)

    trigger.read_signals = flaky
    put(store, "x", source="whiplash")

    async def scenario() -> Any:
        collector = Collector(trigger)
        event = await collector.next(3)
        await collector.stop()
        return event

    assert asyncio.run(scenario())["sources"] == ["whiplash"]


def put_for(store: StateStore, merchant: str, key: str, source: str = "loop") -> int:
    event_id, _ = store.inbox_put(
        source, key, "label.updated", key, {"label_status": "pre_transit"}, merchant=merchant
    )
    return event_id


def test_many_merchants_triggers_share_one_query_per_interval_and_only_the_right_one_wakes(
    store: StateStore,
) -> None:
    merchants = [f"m{i:03d}" for i in range(60)]
    read = reader(store)
    triggers = {}
    for merchant in merchants:
        trigger = WebhookInboxTrigger(sources=["loop"], merchant=merchant, poll_interval=0.05)
        trigger.read_signals = read
        triggers[merchant] = trigger
    put_for(store, "m007", "a-label-of-m007")
    put_for(store, "m042", "a-whiplash-event-of-m042", source="whiplash")  # other sources

    async def scenario() -> tuple[dict[str, Any], int, float, dict[str, int]]:
        collectors = {m: Collector(t) for m, t in triggers.items()}
        fired = {"m007": await collectors["m007"].next(2)}
        read.calls = 0
        started = asyncio.get_running_loop().time()
        await asyncio.sleep(0.5)
        calls, elapsed = read.calls, asyncio.get_running_loop().time() - started
        for merchant, collector in collectors.items():
            if not collector.queue.empty():
                fired[merchant] = collector.queue.get_nowait()
        [poller] = [p for p in triggers_module._POLLERS.values() if p.sources == ("loop",)]
        wakes = {m: sum(s.wakes for s in subs) for m, subs in poller.subscribers.items()}
        for collector in collectors.values():
            await collector.stop()
        return fired, calls, elapsed, wakes

    fired, calls, elapsed, wakes = asyncio.run(scenario())
    # one grouped query per 50 ms interval for all 60 triggers, not 60 per interval
    assert 1 <= calls <= elapsed / 0.05 + 2
    assert list(fired) == ["m007"]
    assert fired["m007"]["merchant"] == "m007" and fired["m007"]["waiting"] == 1
    # only m007 was ever woken (the whiplash event of m042 is not in this source set)
    assert {m: n for m, n in wakes.items() if n} == {"m007": wakes["m007"]}
    assert not triggers_module._POLLERS  # the last trigger gone, the poller stopped


def test_a_receipts_trigger_watches_both_of_its_sources_for_its_merchant(
    store: StateStore,
) -> None:
    acme = WebhookInboxTrigger(
        sources=["loop_return", "whiplash"], merchant="acme", poll_interval=0.02, refire_after=3600
    )
    beta = WebhookInboxTrigger(
        sources=["whiplash", "loop_return"], merchant="beta", poll_interval=0.02, refire_after=3600
    )
    read = reader(store)
    acme.read_signals = beta.read_signals = read

    async def scenario() -> tuple[Any, Any, bool]:
        first, second = Collector(acme), Collector(beta)
        put_for(store, "acme", "closed-1", source="loop_return")
        one = await first.next(2)
        newest = put_for(store, "acme", "completed-1", source="whiplash")
        two = await first.next(2)
        beta_quiet = second.queue.empty()
        await first.stop()
        await second.stop()
        return one, {**two, "expected": newest}, beta_quiet

    one, two, beta_quiet = asyncio.run(scenario())
    assert (one["merchant"], one["waiting"]) == ("acme", 1)
    assert (two["waiting"], two["newest_inbox_id"]) == (2, two["expected"])
    assert beta_quiet


def test_the_trigger_serialises_to_an_importable_class_with_plain_kwargs() -> None:
    trigger = WebhookInboxTrigger(
        sources=["whiplash", "loop_return"], merchant="acme", poll_interval=0.5
    )
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "sources": ["loop_return", "whiplash"],
        "merchant": "acme",
        "poll_interval": 0.5,
        "refire_after": 60.0,
    }
    assert WebhookInboxTrigger.hash(classpath, kwargs) == WebhookInboxTrigger.hash(
        *rebuilt.serialize()
    )


def test_a_trigger_serialised_before_merchants_existed_still_loads_as_the_default_merchant() -> (
    None
):
    legacy = WebhookInboxTrigger(source="loop", poll_interval=1.0, refire_after=60.0)
    assert (legacy.sources, legacy.merchant) == (("loop",), "default")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sources": ["shopify"]},
        {"sources": []},
        {"source": "loop", "poll_interval": 0},
        {"sources": ["loop"], "merchant": ""},
    ],
)
def test_the_trigger_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WebhookInboxTrigger(**kwargs)


# --------------------------------------------------------------------------- assets


def test_the_default_merchant_keeps_todays_assets() -> None:
    from include.returns_sync.webhooks import assets

    for asset, source in ((assets.LOOP_WEBHOOKS, "loop"), (assets.WHIPLASH_WEBHOOKS, "whiplash")):
        assert asset.uri == f"returns_sync://webhooks/{source}"
        [watcher] = asset.watchers
        assert isinstance(watcher.trigger, WebhookInboxTrigger)
        assert (watcher.trigger.sources, watcher.trigger.merchant) == ((source,), "default")
    assert assets.loop_webhooks("default") is assets.LOOP_WEBHOOKS
    assert assets.rma_asset("default") is assets.RMA_ASSET
    assert assets.RMA_ASSET.uri == "returns_sync://whiplash/consumer_returns"
    receipts = assets.receipt_webhooks("default")
    assert {a.uri for a in receipts.objects} == {  # type: ignore[union-attr]
        "returns_sync://webhooks/whiplash",
        "returns_sync://webhooks/loop_return",
    }


def test_each_merchant_has_its_own_assets_and_one_watcher_per_dag() -> None:
    from include.returns_sync.webhooks import assets

    loop, receipts, rma = (
        assets.loop_webhooks("acme"),
        assets.receipt_webhooks("acme"),
        assets.rma_asset("acme"),
    )
    assert loop.uri == "returns_sync://webhooks/loop/acme"
    assert receipts.uri == "returns_sync://webhooks/receipts/acme"  # type: ignore[union-attr]
    assert rma.uri == "returns_sync://whiplash/consumer_returns/acme" and not rma.watchers
    [loop_watch] = loop.watchers
    [receipts_watch] = receipts.watchers  # type: ignore[union-attr]
    assert (loop_watch.trigger.sources, loop_watch.trigger.merchant) == (("loop",), "acme")
    assert receipts_watch.trigger.sources == ("loop_return", "whiplash")
    assert receipts_watch.trigger.merchant == "acme"
    assert loop.uri.startswith(assets.WEBHOOK_URI_PREFIX)  # webhook-only runs still recognised
    other = assets.loop_webhooks("beta")
    assert other.uri != loop.uri and other.watchers[0].name != loop_watch.name


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
