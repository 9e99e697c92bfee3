"""The API pools' sizes (`include/returns_sync/deploy/pools.py`), as the init job prints them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from include.returns_sync.deploy.pools import LOOP_TASKS_PER_MERCHANT, expected_slots

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("merchants", "slots", "loop", "whiplash"),
    [(1, 2, 3, 2), (1, 4, 4, 4), (200, 2, 600, 2), (3, 16, 16, 16)],
)
def test_loop_pool_gives_every_merchant_its_own_slots(
    merchants: int, slots: int, loop: int, whiplash: int
) -> None:
    sizes = expected_slots(merchants, slots)

    assert sizes == {"loop_api": loop, "whiplash_api": whiplash}
    assert sizes["loop_api"] >= LOOP_TASKS_PER_MERCHANT * merchants


def test_nonsense_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="merchant"):
        expected_slots(0, 2)


def test_the_cli_sizes_the_pools_from_the_merchants_file(tmp_path: Path) -> None:
    merchants = tmp_path / "merchants.yaml"
    merchants.write_text(
        "merchants:\n"
        + "".join(f"  - {{id: m{i}, whiplash_customer_id: {i}}}\n" for i in range(1, 6))
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    env |= {"RETURNS_SYNC_MERCHANTS": str(merchants), "RETURNS_SYNC_API_POOL_SLOTS": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "include.returns_sync.deploy.pools", "loop_api", "whiplash_api"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["15", "2"]
    bad = subprocess.run(
        [sys.executable, "-m", "include.returns_sync.deploy.pools", "default_pool"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "default_pool" in bad.stderr
