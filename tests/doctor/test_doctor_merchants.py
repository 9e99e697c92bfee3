"""`--merchant ID` with a merchants file: that merchant's connections, criteria and customer id.

The sandbox serves one Loop shop and one Whiplash account; the merchants' Loop connections point
at that shop, so each check below runs against a real vendor simulator over HTTP.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from include.returns_sync.doctor.__main__ import main
from include.returns_sync.doctor.checks import Status
from include.returns_sync.doctor.runner import UnknownMerchant, options_for_merchant
from include.returns_sync.sandbox import Sandbox
from tests.doctor.conftest import run

BASE = "https://airflow.example.com"


@pytest.fixture
def merchants_file(
    doctor_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """acme and beta share the sandbox's Whiplash account; beta's criteria file is broken."""
    for conn in ("LOOP_ACME", "LOOP_BETA"):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn}", doctor_env["AIRFLOW_CONN_LOOP_DEFAULT"])
    (tmp_path / "beta-criteria.yaml").write_text("version: 1\nprocess_when: sometimes\n")
    path = tmp_path / "merchants.yaml"
    path.write_text(
        "merchants:\n"
        "  - id: acme\n"
        "    whiplash_customer_id: 11\n"
        "  - id: beta\n"
        "    whiplash_customer_id: 12\n"
        "    criteria: beta-criteria.yaml\n"
        "  - id: broken\n"
        "    loop_conn_id: loop_broken\n"
        "    warehouse_id: -1\n"
    )
    monkeypatch.setenv("RETURNS_SYNC_MERCHANTS", str(path))
    return path


def test_a_merchant_is_checked_on_its_own_connections_and_customer(
    merchants_file: Path, lenient_sandbox: Sandbox
) -> None:
    options = options_for_merchant("acme", None, dict(os.environ))
    assert (options.loop_conn_id, options.whiplash_conn_id) == ("loop_acme", "whiplash_default")
    assert (options.whiplash_customer_id, options.account_peers) == (11, ("beta",))

    rows = run(options)

    assert rows["airflow.connection.loop_acme"].status is Status.OK
    assert rows["loop.key"].status is Status.OK
    assert rows["whiplash.read"].status is Status.OK
    assert rows["merchant.criteria"].status is Status.OK
    customer = rows["merchant.whiplash_customer"]
    assert customer.status is Status.OK and "X-Customer-ID 11" in customer.observed
    # the Whiplash checks really ran as customer 11
    assert lenient_sandbox.whiplash.last_customer_id == "11"


def test_a_merchants_invalid_criteria_file_blocks_and_fails_the_cli(
    merchants_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--merchant", "beta", "--json"]) == 1
    out = capsys.readouterr().out
    assert '"merchant": "beta"' in out
    rows = run(options_for_merchant("beta", None, dict(os.environ)))
    assert rows["merchant.criteria"].status is Status.BLOCKING
    assert "beta-criteria.yaml" in rows["merchant.criteria"].observed


def test_a_merchants_webhooks_are_looked_for_at_its_own_loop_url(
    merchants_file: Path, lenient_sandbox: Sandbox
) -> None:
    from include.returns_sync.webhooks.register import register

    options = options_for_merchant("acme", None, dict(os.environ))
    assert run(options)["loop.webhooks"].status is Status.WARN  # nothing registered yet
    for topic, trigger in (("label", "label.created"), ("label", "label.updated")):
        lenient_sandbox.loop.create_subscription(  # the bare URL is not acme's
            {"topic": topic, "trigger": trigger, "url": f"{BASE}/returns-sync/webhooks/loop"}
        )
    row = run(options)["loop.webhooks"]
    assert row.status is Status.WARN and "--merchant acme" in row.consequence
    register(BASE, merchant_id="acme")
    row = run(options)["loop.webhooks"]
    assert row.status is Status.OK
    assert f"{BASE}/returns-sync/webhooks/loop/acme" in row.observed


def test_an_unknown_or_ignored_merchant_is_a_usage_error_that_says_why(
    merchants_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--merchant", "gone"]) == 2
    err = capsys.readouterr().err
    assert "unknown merchant 'gone'" in err and "'acme', 'beta'" in err
    with pytest.raises(UnknownMerchant, match="warehouse_id"):
        options_for_merchant("broken", None, dict(os.environ))


def test_an_unusable_merchants_file_is_a_usage_error(
    doctor_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "merchants.yaml"
    path.write_text("merchants: [\n")
    environ = {**os.environ, "RETURNS_SYNC_MERCHANTS": str(path)}
    with pytest.raises(UnknownMerchant, match="not valid YAML"):
        options_for_merchant("acme", None, environ)


def test_a_shared_account_without_a_customer_id_blocks() -> None:
    from include.returns_sync.doctor.merchant_checks import customer_row

    row = customer_row("whiplash_default", None, ["acme"])
    assert row.status is Status.BLOCKING and "whiplash_customer_id" in row.consequence
    assert customer_row("whiplash_solo", None, []).status is Status.OK
