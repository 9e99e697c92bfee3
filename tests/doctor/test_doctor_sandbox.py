"""The doctor against the running sandbox over HTTP, in both modes, as an operator runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.returns_sync.doctor.__main__ import main
from include.returns_sync.doctor.checks import Status
from include.returns_sync.sandbox import (
    Sandbox,
)
from tests.doctor.conftest import (
    EXPECTED_ROWS,
    deployment_env,
    make_sandbox,
    run,
)

FILTERS = sorted(name for name in EXPECTED_ROWS if name.startswith("whiplash.filter."))
LABEL_FIELDS = ("label_status", "carrier", "tracking_number", "label_url", "label_updated_at")


def test_lenient_sandbox_passes_with_every_row(doctor_env: dict[str, str]) -> None:
    rows = run()

    assert set(rows) == EXPECTED_ROWS
    assert not [name for name, row in rows.items() if row.status is Status.BLOCKING]
    for name in (
        "loop.key",
        "loop.page_size",
        "loop.details",
        "loop.details_labels",
        "loop.line_item_outcome",
        "loop.notes",
        "whiplash.grant",
        "whiplash.scope",
        "whiplash.read",
        "whiplash.per_page",
        "airflow.connection.loop_default",
        "airflow.connection.whiplash_default",
        "airflow.connection.returns_sync_db",
        "airflow.state_store",
        *FILTERS,
    ):
        assert rows[name].status is Status.OK, (name, rows[name].observed)
    assert rows["loop.page_size"].details["asked"] == 750
    assert rows["whiplash.per_page"].details["per_page_header"] == "250"
    assert rows["whiplash.scope"].details["granted_scope"] == "app_manage"
    # Nobody registered webhooks in this sandbox: a warning, polling still works.
    assert rows["loop.webhooks"].status is Status.WARN
    assert rows["whiplash.webhooks"].status is Status.WARN


def test_the_doctor_only_reads(doctor_env: dict[str, str], lenient_sandbox: Sandbox) -> None:
    lenient_sandbox.whiplash.call_log.clear()

    run()

    methods = {(call.method, call.path) for call in lenient_sandbox.whiplash.call_log}
    assert {m for m, path in methods if path != "/oauth/token"} == {"GET"}
    assert lenient_sandbox.loop.actions() == []
    assert all(
        not lenient_sandbox.loop.notes_for(r["id"]) for r in lenient_sandbox.loop.all_returns()
    )


def test_registered_webhooks_are_found(
    doctor_env: dict[str, str], lenient_sandbox: Sandbox
) -> None:
    from include.returns_sync.runtime import loop_hook, whiplash_hook
    from include.returns_sync.webhooks.register import register

    register("https://airflow.example.com", loop_hook=loop_hook(), whiplash_hook=whiplash_hook())

    rows = run()

    assert rows["loop.webhooks"].status is Status.OK
    assert (
        "https://airflow.example.com/returns-sync/webhooks/loop" in rows["loop.webhooks"].observed
    )
    assert rows["whiplash.webhooks"].status is Status.OK


def test_an_ignored_predicate_blocks_and_fails_the_cli(
    doctor_env: dict[str, str], lenient_sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    lenient_sandbox.whiplash.ignored_predicates = {"id_gt"}

    code = main(["--json"])

    document = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in document["checks"]}
    assert code == 1 and document["exit_code"] == 1 and document["ok"] is False
    assert rows["whiplash.filter.id_gt"]["status"] == "blocking"
    assert rows["whiplash.filter.id_gt"]["details"]["outside"]
    others = [name for name in FILTERS if name != "whiplash.filter.id_gt"]
    assert all(rows[name]["status"] == "ok" for name in others)


@pytest.mark.parametrize("predicate", ["reference_in", "originator_original_id_in", "id_in"])
def test_each_lookup_predicate_is_checked(
    doctor_env: dict[str, str], lenient_sandbox: Sandbox, predicate: str
) -> None:
    lenient_sandbox.whiplash.ignored_predicates = {predicate}

    rows = run()

    assert rows[f"whiplash.filter.{predicate}"].status is Status.BLOCKING


def test_a_bad_loop_key_blocks(
    monkeypatch: pytest.MonkeyPatch,
    lenient_sandbox: Sandbox,
    state_db: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = deployment_env(monkeypatch, lenient_sandbox, state_db)
    loop = json.loads(env["AIRFLOW_CONN_LOOP_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_LOOP_DEFAULT", json.dumps({**loop, "password": "wrong-key"}))

    code = main([])

    out = capsys.readouterr().out
    rows = run()
    assert code == 1
    assert rows["loop.key"].status is Status.BLOCKING
    assert "401" in rows["loop.key"].observed
    assert rows["loop.details"].status is Status.SKIPPED
    assert rows["whiplash.grant"].status is Status.OK  # the other vendor is still checked
    assert "wrong-key" not in out


def test_the_table_never_prints_secrets(
    doctor_env: dict[str, str], lenient_sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    main([])

    out = capsys.readouterr().out
    assert "loop.key" in out and "Exit 0" in out
    for secret in (lenient_sandbox.loop_api_key, lenient_sandbox.whiplash_client_secret):
        assert secret not in out


def test_an_empty_account_is_inconclusive_not_blocking(
    monkeypatch: pytest.MonkeyPatch, state_db: Path
) -> None:
    sandbox = Sandbox(seed=0).start()
    try:
        deployment_env(monkeypatch, sandbox, state_db)
        rows = run()
    finally:
        sandbox.stop()

    assert rows["loop.key"].status is Status.OK
    for name in ("loop.details", "loop.details_labels", "whiplash.per_page", *FILTERS):
        assert rows[name].status is Status.INCONCLUSIVE, (name, rows[name].observed)
    assert not [row for row in rows.values() if row.status is Status.BLOCKING]


# --------------------------------------------------------------------------- strict readings


def test_plain_strict_sandbox_shows_each_harsher_reading(
    monkeypatch: pytest.MonkeyPatch, state_db: Path
) -> None:
    sandbox = make_sandbox(True)
    try:
        deployment_env(monkeypatch, sandbox, state_db)
        rows = run()
    finally:
        sandbox.stop()

    assert rows["loop.details_labels"].status is Status.WARN
    assert rows["loop.line_item_outcome"].status is Status.WARN
    per_page = rows["whiplash.per_page"]
    assert per_page.status is Status.WARN
    assert per_page.details["cap"] == 50 and per_page.details["per_page_header"] is None
    scope = rows["whiplash.scope"]
    assert scope.status is Status.OK and scope.details["requested_scope"] == "app_manage"
    assert not [row for row in rows.values() if row.status is Status.BLOCKING]


def test_a_read_only_token_blocks(
    monkeypatch: pytest.MonkeyPatch, lenient_sandbox: Sandbox, state_db: Path
) -> None:
    """What strict Whiplash does to a client-credentials grant that asks for no scope."""
    tokens = lenient_sandbox.whiplash.tokens
    grant = tokens.grant
    monkeypatch.setattr(tokens, "grant", lambda params: {**grant(params), "scope": "app_read"})
    deployment_env(monkeypatch, lenient_sandbox, state_db)

    rows = run()

    assert rows["whiplash.scope"].status is Status.BLOCKING
    assert "app_manage" in rows["whiplash.scope"].consequence


def test_a_token_answer_without_scope_is_inconclusive(
    monkeypatch: pytest.MonkeyPatch, lenient_sandbox: Sandbox, state_db: Path
) -> None:
    tokens = lenient_sandbox.whiplash.tokens
    grant = tokens.grant

    def without_scope(params: dict[str, object]) -> dict[str, object]:
        answer = dict(grant(params))
        answer.pop("scope", None)
        return answer

    monkeypatch.setattr(tokens, "grant", without_scope)
    deployment_env(monkeypatch, lenient_sandbox, state_db)

    rows = run()

    assert rows["whiplash.scope"].status is Status.INCONCLUSIVE
    assert "unknown" in rows["whiplash.scope"].observed


def test_webhook_subscriptions_inactive_or_elsewhere(
    doctor_env: dict[str, str], lenient_sandbox: Sandbox
) -> None:
    from include.returns_sync.doctor.runner import Options
    from include.returns_sync.runtime import loop_hook, whiplash_hook
    from include.returns_sync.webhooks.register import register

    register("https://airflow.example.com", loop_hook=loop_hook(), whiplash_hook=whiplash_hook())
    for subscription in lenient_sandbox.whiplash.notifier.live_subscriptions():
        lenient_sandbox.whiplash.update_subscription(subscription.id, {"active": False})

    rows = run()
    elsewhere = run(Options(webhook_base_url="https://other.example.com"))

    assert rows["whiplash.webhooks"].status is Status.WARN
    assert "inactive" in rows["whiplash.webhooks"].observed
    assert rows["loop.webhooks"].status is Status.OK
    assert elsewhere["loop.webhooks"].status is Status.WARN
    assert "https://other.example.com" in elsewhere["loop.webhooks"].observed


def test_without_a_state_connection_the_default_file_is_reported_not_created(
    monkeypatch: pytest.MonkeyPatch, lenient_sandbox: Sandbox, state_db: Path, tmp_path: Path
) -> None:
    deployment_env(monkeypatch, lenient_sandbox, state_db)
    monkeypatch.delenv("AIRFLOW_CONN_RETURNS_SYNC_DB")
    monkeypatch.setattr(
        "include.returns_sync.runtime.airflow_home", lambda: tmp_path / "airflow-home"
    )

    rows = run()

    assert rows["airflow.connection.returns_sync_db"].status is Status.WARN
    assert rows["airflow.state_store"].status is Status.WARN
    assert not (tmp_path / "airflow-home").exists()


def test_without_rmas_the_generic_predicates_are_tried_on_orders(
    monkeypatch: pytest.MonkeyPatch, state_db: Path
) -> None:
    """Day one: no consumer returns yet. A predicate Whiplash ignores still blocks."""
    sandbox = make_sandbox(False, rmas=0)
    try:
        deployment_env(monkeypatch, sandbox, state_db)
        fine = run()
        sandbox.whiplash.ignored_predicates = {"id_gt"}
        broken = run()
    finally:
        sandbox.stop()

    for predicate in ("id_in", "updated_at_gt", "id_gt"):
        row = fine[f"whiplash.filter.{predicate}"]
        assert row.status is Status.INCONCLUSIVE, row.observed
        assert row.details["resource"] == "orders"
    assert fine["whiplash.filter.reference_in"].status is Status.INCONCLUSIVE
    assert broken["whiplash.filter.id_gt"].status is Status.BLOCKING
    assert "on orders" in broken["whiplash.filter.id_gt"].observed
