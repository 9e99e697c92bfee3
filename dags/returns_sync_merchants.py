"""
### The merchants file, checked where operators look: the Airflow UI's import errors

This file defines no DAG. It reads the merchants file (`RETURNS_SYNC_MERCHANTS`) that the three
airflow DAG files (`loop_returns_to_whiplash`, `whiplash_receipts_to_loop`, `loop_asn_backfill`)
build one DAG per merchant from, and raises **one import error** when something in it is wrong:

* a bad entry (unknown key, bad value, repeated id or connection, a shared Whiplash account
  without `whiplash_customer_id`): the error lists every bad entry by position, id and key.
  Those merchants get no DAGs; every other merchant's DAGs load as usual.
* a file that cannot be used at all (missing, not YAML, no `merchants` list): the error says
  why, and no merchant's DAGs load until it is fixed (their history stays).

Why a separate file: Airflow keys import errors by file, so an error raised in a concern's DAG
file would take that file's DAGs for *every* merchant with it.
"""

from __future__ import annotations

from include.returns_sync.merchants import MerchantsFileError, load_merchants

_loaded = load_merchants()  # a file that cannot be used raises here: the one import error
if _loaded.problems:
    raise MerchantsFileError(_loaded.describe_problems())
