"""A small in-memory stand-in for `views/queries.py`, for the app's fast tests only.

It returns plain data shaped like the query models' `model_dump()`, with hostile vendor values
(a `<script>` SKU, an `<img onerror>` note, a quote-breaking order name) so the tests prove the
pages escape them. The browser test (`test_ui_e2e.py`) uses the real queries on a real stack.

`MerchantScopedAuthManager` is Airflow's SimpleAuthManager with one extra rule, the kind a
deployment with per-DAG permissions has: users whose name starts with `acme-only` may read only
the DAGs of merchant `acme`. It lets the tests prove that the views
ask the auth manager per merchant DAG (SimpleAuthManager itself grants by role only).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

HOSTILE_SKU = "<script>window.__pwned=1</script>SKU-1"
HOSTILE_NOTE = 'Expected 2 x SKU-1 <img src=x onerror="window.__pwned=2">'
HOSTILE_ORDER = '#1001"><script>window.__pwned=3</script>'
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _iso(delta: timedelta) -> str:
    return (NOW - delta).isoformat()


class MerchantScopedAuthManager(SimpleAuthManager):  # type: ignore[misc]
    """SimpleAuthManager, except that `acme-only*` users may read only merchant acme's DAGs."""

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        dag_id = getattr(details, "id", None) or ""
        if str(user.get_name()).startswith("acme-only") and not dag_id.endswith("__acme"):
            return False
        return bool(
            super().is_authorized_dag(
                method=method, user=user, access_entity=access_entity, details=details
            )
        )


RETURNS: dict[tuple[str, str], dict[str, Any]] = {
    ("default", "41000123"): {
        "merchant": "default",
        "loop_return_id": "41000123",
        "order_name": HOSTILE_ORDER,
        "tracking_number": "1Z999AA10123456784",
        "whiplash_return_id": 9001,
        "status": "created",
        "events": [
            {
                "at": _iso(timedelta(days=2)),
                "kind": "seen",
                "title": "Seen in Loop",
                "detail": "label pre_transit",
                "status": None,
                "trigger": "webhook",
                "dag_id": None,
                "run_id": None,
            },
            {
                "at": _iso(timedelta(days=2, minutes=-3)),
                "kind": "rma",
                "title": "RMA created",
                "detail": "Whiplash consumer return 9001",
                "status": "created",
                "trigger": "webhook",
                "dag_id": "loop_returns_to_whiplash",
                "run_id": "asset_triggered__2026-12-04T12:03:00+00:00",
            },
        ],
        "receipt_lines": [
            {"sku": HOSTILE_SKU, "expected": 2, "good": 1, "damaged": 0, "missing": 1, "extra": 0},
        ],
        "verdict": {
            "verdict": "flag",
            "reason_codes": ["MISSING_ITEMS"],
            "note": HOSTILE_NOTE,
            "decided_at": _iso(timedelta(days=1)),
            "dag_id": "whiplash_receipts_to_loop",
            "run_id": "scheduled__2026-12-05T12:00:00+00:00",
        },
        "actions": [
            {
                "action": "flag",
                "status": "succeeded",
                "message": None,
                "at": _iso(timedelta(days=1)),
                "dag_id": "whiplash_receipts_to_loop",
                "run_id": "scheduled__2026-12-05T12:00:00+00:00",
            },
        ],
    },
    ("acme", "52000001"): {
        "merchant": "acme",
        "loop_return_id": "52000001",
        "order_name": "#A1",
        "tracking_number": None,
        "whiplash_return_id": 9100,
        "status": "created",
        "events": [],
        "receipt_lines": [],
        "verdict": None,
        "actions": [],
    },
}


def _ref(record: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "merchant",
        "loop_return_id",
        "order_name",
        "tracking_number",
        "whiplash_return_id",
        "status",
    )
    return {k: record[k] for k in keys}


class StandInData:
    """`ViewData` over the records above; records which arguments each query got."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def search(self, q: str) -> Sequence[Any]:
        self.calls.append(("search", (q,)))
        wanted = q.strip().lower()
        return [
            _ref(r)
            for r in RETURNS.values()
            if wanted
            in {
                str(r[k]).lower()
                for k in ("loop_return_id", "order_name", "tracking_number", "whiplash_return_id")
            }
            or wanted == "shared"
        ]

    def timeline(self, merchant: str, loop_return_id: str) -> Any:
        self.calls.append(("timeline", (merchant, loop_return_id)))
        return RETURNS.get((merchant, loop_return_id))

    def queues(self, merchant: str | None) -> Any:
        self.calls.append(("queues", (merchant,)))
        items = [r for r in RETURNS.values() if merchant in (None, r["merchant"])]
        return {
            "needs_attention": [
                {
                    "merchant": r["merchant"],
                    "loop_return_id": r["loop_return_id"],
                    "reason": "UNKNOWN_SKU",
                    "detail": HOSTILE_SKU,
                    "since": _iso(timedelta(hours=5)),
                }
                for r in items
            ],
            "flagged": [
                {
                    "merchant": "default",
                    "loop_return_id": "41000123",
                    "reasons": ["MISSING_ITEMS"],
                    "detail": None,
                    "since": _iso(timedelta(days=1)),
                }
            ]
            if merchant in (None, "default")
            else [],
            "backfill_misses": [],
        }

    def trend(self, merchant: str | None, days: int) -> Sequence[Any]:
        self.calls.append(("trend", (merchant, days)))
        out = []
        for n in range(days):
            day = (NOW - timedelta(days=days - 1 - n)).date().isoformat()
            out.append(
                {
                    "day": day,
                    "created_by_trigger": {"webhook": n % 3, "poll": 1, "backfill": 0},
                    "processed": n % 4,
                    "flagged": 1,
                    "misses": 0,
                    "median_label_to_rma_seconds": 90.0 if n % 2 else None,
                }
            )
        return out

    def run_summary(self, dag_id: str, run_id: str) -> Any:
        self.calls.append(("run_summary", (dag_id, run_id)))
        if run_id == "empty":
            return None
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "counts": {"flag": 1, "process": 0},
            "reasons": {"MISSING_ITEMS": 1},
            "returns": [
                {
                    "merchant": "default",
                    "loop_return_id": "41000123",
                    "outcome": "flag",
                    "reason": "MISSING_ITEMS",
                }
            ],
        }
