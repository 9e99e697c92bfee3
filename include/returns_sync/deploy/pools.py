"""The API pools' sizes: `python -m include.returns_sync.deploy.pools <pool>` prints one.

Pools bound how many API tasks run at once, not how fast they call: the rate is the shared
limiter's (keyed by vendor account, `clients/limiter.py`). The sizes follow from that:

* `loop_api`: Loop limits each merchant's API key on its own, so one merchant's Loop work must
  never wait for another merchant's slot. Each merchant runs at most `LOOP_TASKS_PER_MERCHANT`
  Loop tasks at once (three DAGs, one run at a time each, their Loop tasks one after another),
  so one shared pool of that many slots per merchant never makes a merchant wait for another
  (decision: one shared pool sized for it rather than a pool per merchant, because a pool
  that does not exist yet silently blocks a newly added merchant's tasks). At least
  `RETURNS_SYNC_API_POOL_SLOTS`.
* `whiplash_api`: the merchants of a Whiplash account share its rate, so they share its
  slots too: `RETURNS_SYNC_API_POOL_SLOTS`.

`scripts/_env.sh` and the compose init job size the pools with it; the doctor checks them.
Adding merchants: run the init job (or `airflow pools set loop_api <printed size> ...`) again;
until then the new merchants' Loop tasks only queue a little longer.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from include.returns_sync.merchants import configured_merchants
from include.returns_sync.settings import settings

#: At most this many of one merchant's Loop tasks run at the same time.
LOOP_TASKS_PER_MERCHANT = 3

#: The pools' names and descriptions, as `airflow pools set` gets them.
POOLS = {
    "loop_api": "Loop API tasks (rate: 300 requests/min per API key, shared limiter)",
    "whiplash_api": "Whiplash API tasks (rate: 10 requests/s per account, shared limiter)",
}


def expected_slots(merchants: int, api_pool_slots: int) -> dict[str, int]:
    """Each pool's size for `merchants` merchants and RETURNS_SYNC_API_POOL_SLOTS."""
    if merchants < 1 or api_pool_slots < 1:
        raise ValueError(f"need >= 1 merchant and slot, got {merchants} and {api_pool_slots}")
    return {
        "loop_api": max(api_pool_slots, LOOP_TASKS_PER_MERCHANT * merchants),
        "whiplash_api": api_pool_slots,
    }


def deployment_slots() -> dict[str, int]:
    """The pools' sizes for this deployment's merchants file and settings."""
    return expected_slots(len(configured_merchants()), settings().api_pool_slots)


def main(argv: Sequence[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    unknown = [name for name in names if name not in POOLS]
    if not names or unknown:
        print(f"usage: pools {' | '.join(POOLS)} (unknown: {unknown})", file=sys.stderr)
        return 2
    slots = deployment_slots()
    for name in names:
        print(slots[name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
