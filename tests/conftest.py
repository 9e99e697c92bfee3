"""Fixtures shared by the whole test suite.

`sandbox` serves the Loop + Whiplash simulators on ephemeral 127.0.0.1 ports for one test (it
starts in well under a second); `contracts_dir` locates the vendor contracts, which are read
from ../shared/contracts and never copied into the repository (outside CI, a clone without them
skips the contract tests with the reason; in CI it fails).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.returns_sync.sandbox import Sandbox

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A running sandbox (seed 0, no faults, no rate limits), stopped after the test."""
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
