"""Fixtures for the deployment tests: the Celery stack on this machine, with guaranteed cleanup.

`celery_stack` runs `tests.deploy.airflow_stack.celery_stack` around one test: two throw-away
PostgreSQL databases (Airflow metadata, our state store), a private Redis database, the sandbox
vendors as a process (60 returns seeded) and every Airflow component, ready to run the DAGs.
Whatever happens, it stops every process it started and drops the databases; the fixture then
checks that nothing is left. The restart test (tests/reliability) uses the same context manager
directly, since conftest fixtures are not shared with sibling folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import airflow_stack
from tests.deploy.airflow_stack import RunningStack


@pytest.fixture
def celery_stack(tmp_path: Path) -> Iterator[RunningStack]:
    with airflow_stack.celery_stack(tmp_path) as running:
        yield running
