"""The Airflow side: pools in the metadata database, connections, the state store, tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from include.returns_sync.doctor import airflow_checks
from include.returns_sync.doctor.checks import Status
from include.returns_sync.doctor.probes import DoctorLoopHook, ReadOnlyViolation
from include.returns_sync.sandbox import Sandbox
from include.returns_sync.state import StateStore
from tests.doctor.conftest import deployment_env, run

MISSING = "doctor_test_missing_pool"
SMALL = "doctor_test_small_pool"
EXACT = "doctor_test_exact_pool"


@pytest.fixture
def test_pools() -> Iterator[None]:
    """Pools of our own names in Airflow's metadata database (the real ones stay untouched)."""
    problem = airflow_checks.metadata_database_problem()
    if problem is not None:
        pytest.skip(f"no Airflow metadata database (scripts/_env.sh migrates .airflow/): {problem}")
    from airflow.models import Pool

    if Pool.get_pool(MISSING) is not None:
        Pool.delete_pool(MISSING)
    Pool.create_or_update_pool(SMALL, 1, "doctor test", include_deferred=False)
    Pool.create_or_update_pool(EXACT, 2, "doctor test", include_deferred=False)
    try:
        yield
    finally:
        for name in (SMALL, EXACT):
            Pool.delete_pool(name)


def test_pools_missing_or_wrong_sized(test_pools: None) -> None:
    rows = {row.name: row for row in airflow_checks.pool_rows({MISSING: 2, SMALL: 2, EXACT: 2})}

    missing = rows[f"airflow.pool.{MISSING}"]
    assert missing.status is Status.BLOCKING
    assert "never scheduled" in missing.consequence
    assert f"airflow pools set {MISSING} 2" in missing.consequence
    assert rows[f"airflow.pool.{SMALL}"].status is Status.WARN
    assert rows[f"airflow.pool.{EXACT}"].status is Status.OK


def test_pools_are_skipped_outside_a_deployment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        airflow_checks, "metadata_database_problem", lambda: "no metadata database at /nowhere"
    )

    rows = airflow_checks.pool_rows({"loop_api": 3, "whiplash_api": 2})

    assert [row.status for row in rows] == [Status.SKIPPED, Status.SKIPPED]
    assert "not inside an Airflow deployment" in rows[0].observed


def test_the_real_pools_match_the_settings(doctor_env: dict[str, str]) -> None:
    if airflow_checks.metadata_database_problem() is not None:
        pytest.skip("no Airflow metadata database")

    rows = run()

    assert (
        rows["airflow.pool.loop_api"].status is Status.OK
    )  # scripts/_env.sh sizes it (deploy/pools.py)
    assert rows["airflow.pool.whiplash_api"].status is Status.OK


def test_a_missing_connection_blocks_and_skips_its_vendor(
    doctor_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_WHIPLASH_DEFAULT")

    rows = run()

    assert rows["airflow.connection.whiplash_default"].status is Status.BLOCKING
    assert rows["whiplash.grant"].status is Status.SKIPPED
    assert rows["loop.key"].status is Status.OK


def test_an_unmigrated_state_store_warns(
    monkeypatch: pytest.MonkeyPatch, lenient_sandbox: Sandbox, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.db"
    StateStore.from_url(f"sqlite:///{empty}").dispose()
    empty.touch()
    deployment_env(monkeypatch, lenient_sandbox, empty)

    rows = run()

    row = rows["airflow.state_store"]
    assert row.status is Status.WARN
    assert "state_db upgrade" in row.consequence
    assert StateStore.from_url(f"sqlite:///{empty}").revision() is None  # still not migrated


def test_a_missing_sqlite_store_is_not_created(
    monkeypatch: pytest.MonkeyPatch, lenient_sandbox: Sandbox, tmp_path: Path
) -> None:
    absent = tmp_path / "absent.db"
    deployment_env(monkeypatch, lenient_sandbox, absent)

    rows = run()

    assert rows["airflow.state_store"].status is Status.WARN
    assert not absent.exists()


def test_a_refresh_grant_rotates_into_the_state_store(
    monkeypatch: pytest.MonkeyPatch, lenient_sandbox: Sandbox, state_db: Path
) -> None:
    """The doctor's one non-GET is the grant; a rotated refresh token must not be lost."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", key)
    first = lenient_sandbox.whiplash.current_refresh_token
    deployment_env(monkeypatch, lenient_sandbox, state_db, whiplash_extra={"refresh_token": first})

    rows = run()

    assert rows["whiplash.grant"].status is Status.OK
    assert rows["whiplash.refresh_rotation"].status is Status.OK
    store = StateStore.from_url(f"sqlite:///{state_db}")
    saved = store.load_refresh_token("whiplash_default", key)
    assert saved == lenient_sandbox.whiplash.current_refresh_token != first


def test_a_refresh_grant_without_fernet_key_blocks_without_granting(
    monkeypatch: pytest.MonkeyPatch, lenient_sandbox: Sandbox, state_db: Path
) -> None:
    from include.returns_sync import runtime

    monkeypatch.setattr(runtime, "fernet_key", lambda: None)
    first = lenient_sandbox.whiplash.current_refresh_token
    deployment_env(monkeypatch, lenient_sandbox, state_db, whiplash_extra={"refresh_token": first})

    rows = run()

    assert rows["whiplash.grant"].status is Status.BLOCKING
    assert "Fernet" in rows["whiplash.grant"].observed
    assert lenient_sandbox.whiplash.current_refresh_token == first  # nothing was rotated


def test_read_only_hooks_refuse_writes_before_sending(doctor_env: dict[str, str]) -> None:
    hook = DoctorLoopHook()

    with pytest.raises(ReadOnlyViolation):
        hook.flag_return("48000001")
    assert not hook.http_requests


def test_connection_secrets_are_collected_for_redaction(
    doctor_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    whiplash = json.loads(doctor_env["AIRFLOW_CONN_WHIPLASH_DEFAULT"])
    whiplash["extra"] = {"refresh_token": "rt-secret-1", "webhook_secret": ["ws-a", "ws-b"]}
    monkeypatch.setenv("AIRFLOW_CONN_WHIPLASH_DEFAULT", json.dumps(whiplash))

    _, resolved = airflow_checks.vendor_connection("whiplash_default", ("login",), "test")

    assert resolved is not None
    assert set(resolved.secrets) >= {whiplash["password"], "rt-secret-1", "ws-a", "ws-b"}
