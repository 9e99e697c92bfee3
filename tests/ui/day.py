"""The demo day on a real Airflow stack, for the browser test: what the views must then show.

Airflow's api-server (with our plugins), scheduler, dag-processor and triggerer run as processes
(`tests/support/airflow_stack.py`, LocalExecutor, SQLite metadata, SimpleAuthManager with a
password login), against the sandbox served from this process so its truth stays inspectable.
No schedule runs on its own (`use_job_schedule` off) and no webhook is registered: the day is
driven step by step through Airflow's REST API, like `scripts/demo` drives `dag.test()`:

1. the RMA DAG polls (a seeded day, plus one return whose SKU and reason are hostile HTML);
2. three returns are then labelled "3 hours ago", behind the poll's watermark: the next poll
   misses them and the backfill (form: yesterday..today) catches them;
3. labels move on, the warehouse receives every package (the hostile one short by one unit),
   and the receipts DAG processes or flags each return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from include.returns_sync.sandbox.connections import airflow_connections
from tests.support.airflow_stack import DAG_IDS, AirflowStack, StackConfig
from tests.support.processes import ProcessGroup

RMA = "loop_returns_to_whiplash"
RECEIPTS = "whiplash_receipts_to_loop"
BACKFILL = "loop_asn_backfill"
HOSTILE_SKU = "<script>window.__pwned=1</script>HX-1"
HOSTILE_REASON = '<img src=x onerror="window.__pwned=2">'
HOSTILE_ORDER = "#HOSTILE1"


@dataclass
class DayRuns:
    """The run ids of each step, for the run tab and the timelines' links."""

    rma: list[str] = field(default_factory=list)
    backfill: str = ""
    receipts: str = ""


class ReturnsDay:
    """Sandbox + Airflow + state store, and the day run through them (`start()` does it all)."""

    def __init__(self, home: Path, *, seed: int = 5, returns: int = 40) -> None:
        from include.returns_sync.sandbox import Sandbox

        self.home = home
        self.returns = returns
        self.sandbox = Sandbox(seed=seed)
        self.state_url = f"sqlite:///{home / 'state.db'}"
        self.processes = ProcessGroup(home / "logs")
        self.stack: AirflowStack | None = None
        self.runs = DayRuns()
        self.hostile_id = ""
        self.missed: list[str] = []
        self.truth: Any = None

    # ------------------------------------------------------------------ set-up

    def start(self, timeout: float = 180) -> ReturnsDay:
        from include.returns_sync.state import StateStore

        sandbox = self.sandbox.start()
        store = StateStore.from_url(self.state_url)
        store.migrate()
        store.dispose()
        settings = {
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "RETURNS_SYNC_REPORTS_DIR": str(self.home / "reports"),
            "RETURNS_SYNC_RETRY_DELAY_SECONDS": "2",
            "RETURNS_SYNC_RETRY_WAIT_SCALE": "0.05",
            "RETURNS_SYNC_API_POOL_SLOTS": "2",
        }
        config = StackConfig(
            home=self.home / "airflow",
            state_conn=self.state_url,
            connections=airflow_connections(sandbox),
            settings=settings,
        )
        self.stack = AirflowStack(config, self.processes).up(DAG_IDS, timeout)
        self.run_day(timeout)
        return self

    def stop(self) -> None:
        try:
            self.processes.stop_all()
        finally:
            self.sandbox.stop()

    # ------------------------------------------------------------------ the day

    def run_day(self, timeout: float) -> None:
        self.truth = self.sandbox.seed_day(n=self.returns)
        self.hostile_id = self._add_hostile_return()
        self.runs.rma.append(self.run(RMA, timeout=timeout))
        self.missed = self.sandbox.seed_missed(n=3)
        self.runs.rma.append(self.run(RMA, timeout=timeout))
        today = datetime.now(UTC).date()
        window = {"start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat()}
        self.runs.backfill = self.run(BACKFILL, window, timeout=timeout)
        self.sandbox.advance_labels()
        self._receive_hostile_short()
        self.sandbox.receive_packages()
        self.runs.receipts = self.run(RECEIPTS, timeout=timeout)

    def run(self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 180) -> str:
        """Trigger one run, wait for it (and any run it set off) to finish; its run id."""
        assert self.stack is not None
        run_id = self.stack.api.trigger(dag_id, conf)
        states = self.stack.api.wait_for_runs([(dag_id, run_id)], self.processes, timeout)
        state = states[(dag_id, run_id)]
        assert state == "success", (
            f"{dag_id} {run_id}: {state}: {self.stack.api.failure_details(dag_id, run_id)}"
        )
        self.stack.wait_idle(DAG_IDS, timeout)
        return run_id

    def _add_hostile_return(self) -> str:
        """An eligible, mappable return whose SKU and return reason are HTML."""
        from include.returns_sync.sandbox.truth import ReturnTruth

        provider_order_id = 7_300_000_000
        self.sandbox.whiplash.add_item(HOSTILE_SKU, "Hostile Hat", "25.00")
        self.sandbox.whiplash.add_order(str(provider_order_id), HOSTILE_ORDER, [(HOSTILE_SKU, 2)])
        now = datetime.now(UTC)
        record = self.sandbox.loop.add_return(
            order_name=HOSTILE_ORDER,
            provider_order_id=provider_order_id,
            items=[(HOSTILE_SKU, 2)],
            label_status="pre_transit",
            created_at=now - timedelta(minutes=20),
            label_updated_at=now - timedelta(minutes=10),
            titles={HOSTILE_SKU: "Hostile Hat"},
            prices={HOSTILE_SKU: "25.00"},
            return_reason=HOSTILE_REASON,
        )
        return_id = str(record["id"])
        self.truth.returns[return_id] = ReturnTruth(
            return_id=return_id,
            state="open",
            label_status="pre_transit",
            eligible=True,
            unmappable=None,
            expected_units={HOSTILE_SKU: 2},
        )
        return return_id

    def _receive_hostile_short(self) -> None:
        """The hostile package arrives one unit short: flagged MISSING_ITEMS, with a note."""
        rma = self.rma_of(self.hostile_id)
        self.sandbox.whiplash.receive(rma["id"], [(HOSTILE_SKU, 1, 0)])
        truth = self.truth.returns[self.hostile_id]
        truth.consumer_return_id = rma["id"]
        truth.discrepancy = "missing"
        truth.received = [(HOSTILE_SKU, 1, 0)]
        truth.expected_verdict = "flag"
        truth.expected_reasons = ["MISSING_ITEMS"]

    # ------------------------------------------------------------------ the truth, read back

    def rma_of(self, return_id: str) -> dict[str, Any]:
        found = [
            cr
            for cr in self.sandbox.whiplash.consumer_returns()
            if str((cr.get("originator") or {}).get("original_id")) == return_id
        ]
        assert len(found) == 1, f"{len(found)} RMAs for Loop return {return_id}"
        return found[0]

    def flagged(self) -> list[Any]:
        return [t for t in self.truth.returns.values() if t.expected_verdict == "flag"]

    def processed(self) -> list[Any]:
        return [t for t in self.truth.returns.values() if t.expected_verdict == "process"]

    def rma_count(self) -> int:
        return len(self.sandbox.whiplash.consumer_returns())
