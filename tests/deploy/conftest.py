"""Fixtures for the deployment tests: the Celery stack on this machine, with guaranteed cleanup.

`celery_stack` runs `tests.support.airflow_stack.celery_stack` around one test: two throw-away
PostgreSQL databases (Airflow metadata, our state store), a private Redis database, the sandbox
vendors as a process (60 returns seeded; strict, with short-lived Whiplash tokens) and every
Airflow component, ready to run the DAGs.
Whatever happens, it stops every process it started and drops the databases; the fixture then
checks that nothing is left. `merchants_stack` is the same stack serving three merchants of a
multi-merchant sandbox from a merchants file, `m03` with revoked Loop credentials (issue 13).
The restart test (tests/reliability) uses the same context manager
directly, since conftest fixtures are not shared with sibling folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import airflow_stack
from tests.support.airflow_stack import MerchantSetup, RunningStack

#: Whiplash access tokens of the end-to-end stack live this long: both workers' task processes
#: need a new one many times during the DAG runs, often at the same moment.
TOKEN_TTL_SECONDS = 10


@pytest.fixture
def celery_stack(tmp_path: Path) -> Iterator[RunningStack]:
    """The stack against a strict sandbox (refresh tokens revoked once their successor is used),
    with the refresh grant (`refresh_token` extra) and short-lived access tokens."""
    vendors = airflow_stack.sandbox_process(
        options=["--strict", "--token-ttl-seconds", str(TOKEN_TTL_SECONDS)]
    )
    with airflow_stack.celery_stack(
        tmp_path,
        start_sandbox=vendors,
        whiplash_extra=lambda urls: {"refresh_token": urls["whiplash_refresh_token"]},
    ) as running:
        yield running


#: Loop returns seeded per merchant: enough for both verdicts, few enough for a short test.
MERCHANT_RETURNS = 40


@pytest.fixture
def merchants_stack(tmp_path: Path) -> Iterator[RunningStack]:
    """Three merchants (`m01`, `m02`, `m03`) in one strict sandbox, one Whiplash account with a
    customer each, served by one Celery deployment; `m03`'s Loop API key is wrong (revoked)."""
    vendors = airflow_stack.sandbox_process(
        returns=MERCHANT_RETURNS,
        merchants=3,
        options=["--strict", "--token-ttl-seconds", str(TOKEN_TTL_SECONDS)],
    )
    with airflow_stack.celery_stack(
        tmp_path,
        start_sandbox=vendors,
        whiplash_extra=lambda urls: {"refresh_token": urls["whiplash_refresh_token"]},
        merchants=MerchantSetup(revoked_loop=frozenset({"m03"})),
    ) as running:
        yield running
