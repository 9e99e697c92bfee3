"""No secret appears in a task log, a run report or the state store (issue 8, item 4).

The DAGs run in a process of their own (so every byte they log is captured)
with distinctive credentials: the Loop API key, the Whiplash client secret and refresh token,
both webhook secrets, the Fernet key, and every access and refresh token the Whiplash sandbox
issues along the way. Vendor faults make the error and retry paths log as well. Afterwards the
captured output, the files under `$AIRFLOW_HOME/logs`, every report file, the SQLite state store
and Airflow's metadata database (XComs, rendered fields) are searched for each of them.
The real-Airflow restart test (test_restarts.py) does the same for the Celery workers' task logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from include.returns_sync.sandbox import Sandbox
from include.returns_sync.sandbox.chaos import ADMIN_PREFIX
from include.returns_sync.sandbox.connections import airflow_connections
from include.returns_sync.sandbox.whiplash_oauth import TokenIssuer
from include.returns_sync.state import StateStore
from tests.reliability.leaks import distinctive, files_under, find_leaks
from tests.support.dag_harness import ROOT


def issued_tokens(sandbox: Sandbox) -> dict[str, str]:
    """Every access and refresh token the Whiplash sandbox handed out (read from its state)."""
    issuer: Any = sandbox.whiplash.tokens
    tokens: dict[str, str] = {}
    for number, token in enumerate(getattr(issuer, "_access", {}).values()):
        tokens[f"issued access token {number}"] = token.value
        if token.refresh_token:
            tokens[f"issued refresh token {number}"] = token.refresh_token
    return tokens


def metadata_database() -> Path | None:
    """Airflow's metadata database file when it is SQLite (XComs, rendered task fields)."""
    url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if url and not url.startswith("sqlite:///"):
        return None
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    path = Path(url.removeprefix("sqlite:///")) if url else home / "airflow.db"
    return path if path.exists() else None


def airflow_fernet_key() -> str:
    """Airflow's own Fernet key: its metadata database holds values encrypted with it, so the
    child must use the same one (a fresh key only where none is configured)."""
    from airflow.configuration import conf

    return conf.get("core", "fernet_key", fallback="") or Fernet.generate_key().decode()


def test_no_secret_appears_in_logs_reports_or_the_state_store(tmp_path: Path) -> None:
    secrets = {
        name: distinctive(name.replace(" ", "-"))
        for name in (
            "loop api key",
            "loop webhook secret",
            "whiplash client secret",
            "whiplash refresh token",
            "whiplash webhook secret",
        )
    }
    fernet_key = airflow_fernet_key()
    secrets["fernet key"] = fernet_key
    state_db = tmp_path / "state.db"
    reports = tmp_path / "reports"
    with Sandbox(
        seed=8,
        loop_api_key=secrets["loop api key"],
        whiplash_client_secret=secrets["whiplash client secret"],
        loop_webhook_secret=secrets["loop webhook secret"],
        token_ttl_seconds=5,  # several renewals and refresh-token rotations during the run
    ) as sandbox:
        sandbox.whiplash.tokens = TokenIssuer(
            sandbox.clock,
            sandbox.whiplash_client_id,
            secrets["whiplash client secret"],
            5,
            secrets["whiplash refresh token"],
        )
        sandbox.seed_day(n=60)
        env = {
            **os.environ,
            **airflow_connections(
                sandbox,
                loop_extra={"rate_limit": 0, "webhook_secret": secrets["loop webhook secret"]},
                whiplash_extra={
                    "rate_limit": 0,
                    "refresh_token": secrets["whiplash refresh token"],
                    "webhook_secret": secrets["whiplash webhook secret"],
                },
            ),
            "AIRFLOW_CONN_RETURNS_SYNC_DB": f"sqlite:///{state_db}",
            "AIRFLOW__CORE__FERNET_KEY": fernet_key,
            # The product's level. At DEBUG, Airflow 3.3's own task supervisor logs the secrets
            # it registers for masking (`MaskSecret(value=...)`) in clear: never run it there.
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "RETURNS_SYNC_REPORTS_DIR": str(reports),
            "RETURNS_SYNC_RETRY_WAIT_SCALE": "0.01",
            "RETURNS_SYNC_RETRY_DELAY_SECONDS": "1",
            "RETURNS_SYNC_HTTP_TIMEOUT": "2",
            "RETURNS_SYNC_MAX_UNMAPPABLE": "0",
            "PYTHONPATH": str(ROOT),
        }
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.reliability.run_dags",
                sandbox.loop_host_url + ADMIN_PREFIX,
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            timeout=400,
        )
        secrets.update(issued_tokens(sandbox))
        rotated = sandbox.whiplash.current_refresh_token
        stats = sandbox.stats()

    output = child.stdout + child.stderr
    assert child.returncode == 0, output.decode(errors="replace")[-3000:]
    # The run really exercised what could leak: tasks logged, faults and rotations happened.
    assert b"RMA run report" in output and b"Receipt run report" in output
    assert sum(stats["loop"]["faults"].values()) + sum(stats["whiplash"]["faults"].values()) > 0
    assert rotated and rotated != secrets["whiplash refresh token"]
    stored = StateStore.from_url(f"sqlite:///{state_db}")
    assert stored.load_refresh_token("whiplash_default", fernet_key) == rotated

    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    searched = list(files_under(reports, home / "logs", tmp_path))
    metadata = metadata_database()
    if metadata is not None:
        searched += list(files_under(metadata, Path(f"{metadata}-wal")))
    assert any(path.name == "summary.json" for path in searched)
    assert state_db in searched
    leaks = find_leaks(secrets, searched, {"task output (stdout and stderr)": output})
    assert leaks == []
