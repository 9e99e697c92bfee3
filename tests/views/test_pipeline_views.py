"""The views after the real DAGs ran a day against the sandbox (`dag.test()`, HTTP, SQLite).

What the pages show must match the sandbox's truth: every RMA with the run and trigger that
created it, every verdict with its reasons, its lines and the exact note Loop received, the
queues' counts, and each run's summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.sandbox import Sandbox
from include.returns_sync.views import queries
from tests.support.dag_harness import RECEIPTS_DAG, RMA_DAG, Pipeline


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    with Sandbox(seed=3) as sandbox:
        yield Pipeline(sandbox, tmp_path, monkeypatch)


def _run_id(pipeline: Pipeline, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    from tests.support.dag_harness import run_dag_test

    dag_run = run_dag_test(dag_id, conf)
    assert str(dag_run.state) == "success"
    return str(dag_run.run_id)


def test_a_demo_day_reads_back_through_every_view(pipeline: Pipeline) -> None:
    sandbox = pipeline.sandbox
    mix = {"exact": 0.4, "missing": 0.3, "damaged": 0.3}
    truth = sandbox.seed_day(n=24)
    rma_run = _run_id(pipeline, RMA_DAG)
    sandbox.advance_labels()
    received = sandbox.receive_packages(mix)
    receipts_run = _run_id(pipeline, RECEIPTS_DAG)
    store = pipeline.store()

    created = truth.rma_ids()
    assert created
    for rid in created:
        story = queries.timeline(store, "default", rid)
        assert story is not None and story.rma is not None and story.seen is not None, rid
        assert story.rma.status in ("created", "adopted")
        assert story.rma.run.model_dump() == {
            "dag_id": RMA_DAG,
            "run_id": rma_run,
            "trigger": "poll",
        }
        loop_record = sandbox.loop.get(rid)
        assert story.order_name == loop_record["order_name"]
        assert story.tracking_number == loop_record["tracking_number"]
        assert story.seen.label_shipped_at is not None
        hits = queries.search(store, str(loop_record["order_name"]).lstrip("#").upper())
        assert rid in [h.loop_return_id for h in hits]

    flagged = Counter[str]()
    for rid, fact in truth.returns.items():
        if fact.consumer_return_id not in received or fact.expected_verdict is None:
            continue
        story = queries.timeline(store, "default", rid)
        assert story is not None, rid
        (receipt,) = story.receipts
        assert receipt.verdict == fact.expected_verdict, rid
        assert set(receipt.reason_codes) >= set(fact.expected_reasons), rid
        assert receipt.run.model_dump() == {
            "dag_id": RECEIPTS_DAG,
            "run_id": receipts_run,
            "trigger": None,
        }
        assert sum(line.expected for line in receipt.lines) == sum(fact.expected_units.values())
        got = sum(line.good + line.damaged for line in receipt.lines)
        assert got == sum(good + damaged for _sku, good, damaged in fact.received), rid
        if fact.expected_verdict == "flag":
            flagged.update(receipt.reason_codes)
            (note,) = sandbox.loop.notes_for(rid)
            assert receipt.note == note["content"]  # the exact Return Note Loop holds
            assert {(a.action, a.status) for a in story.actions} >= {("flag", "sent")}
            assert all(a.run.run_id == receipts_run for a in story.actions)

    queues = queries.queues(store)
    assert queues.flagged.count == sum(
        1
        for f in truth.returns.values()
        if f.consumer_return_id in received and f.expected_verdict == "flag"
    )
    assert queues.flagged.by_reason == dict(sorted(flagged.items()))
    assert queues.unmappable.count == len(truth.unmappable())
    assert queues.unmappable.by_reason == dict(Counter(truth.unmappable().values()))

    rma = queries.run_summary(store, RMA_DAG, rma_run)
    assert rma is not None
    assert rma.counts.get("created", 0) + rma.counts.get("adopted", 0) == len(created)
    assert rma.counts.get("unmappable", 0) == len(truth.unmappable())
    receipts = queries.run_summary(store, RECEIPTS_DAG, receipts_run)
    assert receipts is not None
    verdicts = Counter(
        f.expected_verdict
        for f in truth.returns.values()
        if f.consumer_return_id in received and f.expected_verdict
    )
    assert receipts.counts == dict(sorted(verdicts.items()))
    day = queries.trend(store, days=1)[0]
    assert day.rmas == len(created) and day.rmas_by_trigger == {"poll": len(created)}
    assert day.flagged == verdicts["flag"] and day.processed == verdicts["process"]
