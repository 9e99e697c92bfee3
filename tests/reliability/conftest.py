"""Fixtures for the reliability tests: the real DAGs, in-process, against a sandbox over HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.returns_sync.sandbox import Sandbox
from tests.reliability.outcome import RELIABILITY_ENV
from tests.support.dag_harness import Pipeline

# Read when the DAG files are parsed: Airflow's task retries wait 1 s in tests, not 30 s.
os.environ.setdefault("RETURNS_SYNC_RETRY_DELAY_SECONDS", "1")


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    """The three DAGs wired to a fresh sandbox (seed 5, no faults), state store and reports."""
    with Sandbox(seed=5) as sandbox:
        yield Pipeline(sandbox, tmp_path, monkeypatch, RELIABILITY_ENV)
