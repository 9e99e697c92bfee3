"""Isolation of pytest-xdist workers (`scripts/test` runs the suite with `pytest -n`).

Each worker is its own process, so the sandbox's ephemeral ports, tmp_path, the PostgreSQL
schemas (named after the process and a random suffix) and the end-to-end databases (random
suffixes) never collide. What the workers would share is Airflow's home: the SQLite metadata
database that `dag.test()` writes its DAG runs and task instances to, and the task log folder.
SQLite with two writers ends in "database is locked", so every worker gets its own copy of the
migrated home (airflow.cfg with its Fernet key, airflow.db with the pools), made fresh at the
start of each session, before Airflow is imported.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def worker_id() -> str | None:
    """ "gw0", "gw1", ... in an xdist worker; None in a plain pytest run (and in the controller)."""
    return os.environ.get("PYTEST_XDIST_WORKER") or None


def isolate_airflow_home() -> Path | None:
    """Point AIRFLOW_HOME (and its metadata database and logs) at this worker's own copy.

    Does nothing outside xdist workers, or when the home has no SQLite metadata database to
    copy (a PostgreSQL metadata URL is left alone: its server handles concurrent writers).
    Must run before `airflow` is first imported: Airflow reads its configuration then.
    """
    worker = worker_id()
    if worker is None:
        return None
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    conn = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if conn and not conn.startswith("sqlite:///"):
        return None
    database = Path(conn.removeprefix("sqlite:///")) if conn else home / "airflow.db"
    if not database.is_file():
        return None
    own = home / "xdist" / worker
    shutil.rmtree(own, ignore_errors=True)
    (own / "logs").mkdir(parents=True)
    shutil.copy2(database, own / "airflow.db")
    for name in ("airflow.cfg", ".migrated"):
        if (home / name).is_file():
            shutil.copy2(home / name, own / name)
    os.environ["AIRFLOW_HOME"] = str(own)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{own / 'airflow.db'}"
    os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(own / "logs")
    return own
