"""Fixtures shared by the whole test suite.

`sandbox` serves the Loop + Whiplash simulators on ephemeral 127.0.0.1 ports for one test (it
starts in well under a second); `contracts_dir` locates the vendor contracts, which are read
from ../shared/contracts and never copied into the repository (outside CI, a clone without them
skips the contract tests with the reason; in CI it fails). Under pytest-xdist each worker first
gets its own Airflow home (`tests.support.workers`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.workers import isolate_airflow_home

if TYPE_CHECKING:
    from include.returns_sync.sandbox import Sandbox

# Before anything imports Airflow: an xdist worker gets its own Airflow home and metadata DB.
isolate_airflow_home()

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A running sandbox (seed 0, no faults, no rate limits), stopped after the test."""
    from include.returns_sync.sandbox import Sandbox

    with Sandbox(seed=0) as running:
        yield running


@pytest.fixture(scope="session")
def contracts_dir() -> Path:
    """../shared/contracts next to the repository, or $RETURNS_SYNC_CONTRACTS."""
    path = Path(
        os.environ.get("RETURNS_SYNC_CONTRACTS") or REPO_ROOT.parent / "shared" / "contracts"
    )
    if not (path / "loop").is_dir():
        message = f"vendor contracts not found at {path}; set RETURNS_SYNC_CONTRACTS"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)  # CI has ../shared beside the clone: a missing folder is a bug
        pytest.skip(message)  # a clone without ../shared: clear skips, not errors
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (the chaos runs): under xdist they start at once on a worker
    while the other workers share the rest, instead of starting last and running alone."""
    items.sort(key=lambda item: item.get_closest_marker("chaos") is None)
