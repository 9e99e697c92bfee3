"""Fixtures for the doctor's tests: a seeded sandbox (lenient or strict) and the environment a
deployment would give the doctor (connections as `AIRFLOW_CONN_*`, a migrated state store).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.clients.oauth import reset_token_cache
from include.returns_sync.doctor.checks import CheckResult
from include.returns_sync.doctor.runner import Options, run_checks
from include.returns_sync.sandbox import Sandbox
from include.returns_sync.sandbox.connections import airflow_connections
from include.returns_sync.sandbox.whiplash_search import Page
from include.returns_sync.state import StateStore

RMAS = 6
#: Rows every full run has, whatever the vendors answer (the sandbox and the CLI tests).
EXPECTED_ROWS = {
    "loop.key",
    "loop.page_size",
    "loop.details",
    "loop.details_labels",
    "loop.line_item_outcome",
    "loop.notes",
    "loop.process_async",
    "loop.rate_limit_window",
    "loop.webhooks",
    "whiplash.grant",
    "whiplash.scope",
    "whiplash.refresh_rotation",
    "whiplash.read",
    "whiplash.per_page",
    "whiplash.filter.id_in",
    "whiplash.filter.reference_in",
    "whiplash.filter.originator_original_id_in",
    "whiplash.filter.updated_at_gt",
    "whiplash.filter.id_gt",
    "whiplash.filter.orders.originator_original_id_in",
    "whiplash.filter.items.sku_in",
    "whiplash.unhandled_events",
    "whiplash.webhooks",
    "airflow.connection.loop_default",
    "airflow.connection.whiplash_default",
    "airflow.connection.returns_sync_db",
    "airflow.state_store",
    "airflow.pool.loop_api",
    "airflow.pool.whiplash_api",
    "merchant.criteria",
    "merchant.whiplash_customer",
}
#: Where `python -m include.returns_sync.doctor` runs from (the project root).
REPO_ROOT_FOR_CLI = Path(__file__).resolve().parents[2]


def seed_rmas(sandbox: Sandbox, count: int = RMAS) -> list[dict[str, Any]]:
    """Consumer returns as our pipeline would have created them (written to the backend)."""
    orders = sandbox.whiplash.search("orders", None, "id asc", Page(1, count))
    created = []
    for index, order in enumerate(orders):
        loop_id = str(48_100_000 + index)
        created.append(
            sandbox.whiplash.create_consumer_return(
                {
                    "order_id": order["id"],
                    "requires_label": False,
                    "reference": loop_id,
                    "originator_attributes": {"original_id": loop_id},
                    "shipnotice_items_attributes": [
                        {
                            "item_id": order["order_items"][0]["item_id"],
                            "quantity": 1,
                            "return_action": "refund",
                            "description": "Too small",
                        }
                    ],
                }
            )
        )
    return created


def deployment_env(
    monkeypatch: pytest.MonkeyPatch,
    sandbox: Sandbox,
    state_db: Path,
    *,
    loop_extra: dict[str, Any] | None = None,
    whiplash_extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Point the doctor at `sandbox` and `state_db` through environment variables."""
    env = airflow_connections(
        sandbox,
        loop_extra={"rate_limit": 0, **(loop_extra or {})},
        whiplash_extra={"rate_limit": 0, **(whiplash_extra or {})},
    )
    env["AIRFLOW_CONN_RETURNS_SYNC_DB"] = f"sqlite:///{state_db}"
    env["RETURNS_SYNC_RETRY_WAIT_SCALE"] = "0.01"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RETURNS_SYNC_MERCHANTS", raising=False)
    monkeypatch.delenv("RETURNS_SYNC_API_POOL_SLOTS", raising=False)
    return env


@pytest.fixture
def state_db() -> Iterator[Path]:
    """A migrated SQLite state store in a temporary directory."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "state.db"
        store = StateStore.from_url(f"sqlite:///{path}")
        store.migrate()
        store.dispose()
        yield path


@pytest.fixture(autouse=True)
def _fresh_tokens(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # As the CLI does (`main` sets it): connections from the metadata database too. Set here
    # so that it is undone after each test.
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")
    reset_token_cache()
    yield
    reset_token_cache()


def make_sandbox(strict: bool, *, rmas: int = RMAS) -> Sandbox:
    sandbox = Sandbox(seed=0, strict=strict).start()
    sandbox.seed_day(80)
    if rmas:
        seed_rmas(sandbox, rmas)
    return sandbox


@pytest.fixture(params=[False, True], ids=["lenient", "strict"])
def any_sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A seeded sandbox (80 Loop returns, their orders, 6 RMAs) in both modes."""
    sandbox = make_sandbox(request.param)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def lenient_sandbox() -> Iterator[Sandbox]:
    sandbox = make_sandbox(False)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def doctor_env(
    monkeypatch: pytest.MonkeyPatch, lenient_sandbox: Sandbox, state_db: Path
) -> dict[str, str]:
    return deployment_env(monkeypatch, lenient_sandbox, state_db)


def run(options: Options | None = None) -> dict[str, CheckResult]:
    """Every row of an in-process doctor run, by name (names are unique)."""
    results = run_checks(options or Options())
    names = [result.name for result in results]
    assert len(names) == len(set(names)), f"duplicate row names: {names}"
    return {result.name: result for result in results}
