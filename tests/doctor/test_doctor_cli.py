"""The command as an operator types it: a subprocess, `--json`, `--merchant`, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from include.returns_sync.doctor.__main__ import main
from tests.doctor.conftest import EXPECTED_ROWS, REPO_ROOT_FOR_CLI


def _doctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "include.returns_sync.doctor", *args],
        cwd=REPO_ROOT_FOR_CLI,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_json_has_every_row_and_exit_zero(doctor_env: dict[str, str]) -> None:
    done = _doctor("--json", env=dict(os.environ))

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # nothing but the JSON on stdout
    assert document["ok"] is True and document["exit_code"] == 0
    assert document["merchant"] == "default"
    names = [row["name"] for row in document["checks"]]
    assert set(names) == EXPECTED_ROWS and len(names) == len(EXPECTED_ROWS)
    for row in document["checks"]:
        assert set(row) >= {"name", "status", "assumption", "observed", "consequence"}
        assert row["status"] in {"ok", "warn", "blocking", "inconclusive", "skipped"}
    assert sum(document["summary"].values()) == len(names)


def test_cli_unknown_merchant_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RETURNS_SYNC_MERCHANTS", raising=False)

    assert main(["--merchant", "acme"]) == 2

    err = capsys.readouterr().err
    assert "unknown merchant 'acme'" in err and "'default'" in err
