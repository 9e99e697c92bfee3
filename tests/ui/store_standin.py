"""A stand-in for `views/queries.py` over today's state store and run reports (tests only).

Until the real queries (issue 14, H6) are merged, the browser test's API server serves the real
plugin and app with this data source instead (`standin_plugin/`): the same records the pipeline
wrote, read straight from `sync_records`, `decisions`, `loop_actions` and the run reports. It
knows no order names or tracking numbers (the state store gains them by migration 0008).
"""

from __future__ import annotations

import csv
import json
import os
import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

RMA, RECEIPTS, BACKFILL = (
    "loop_returns_to_whiplash",
    "whiplash_receipts_to_loop",
    "loop_asn_backfill",
)


def _dt(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(value: Any) -> str | None:
    moment = _dt(value)
    return moment.isoformat() if moment else None


def _run_folder(run_id: str) -> str:
    return run_id.replace(":", "_").replace("/", "_")


class StoreStandIn:
    """`ViewData` for the default merchant, from the state store and the reports folder."""

    def __init__(self, url: str | None = None, reports: Path | None = None) -> None:
        self.engine = create_engine(url or os.environ["AIRFLOW_CONN_RETURNS_SYNC_DB"])
        self.reports = reports or Path(os.environ["RETURNS_SYNC_REPORTS_DIR"])

    def _rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]

    def _run_of(self, dag_id: str, loop_return_id: str, bucket_prefix: str = "") -> str | None:
        """The run whose report lists this return (in a bucket starting with the prefix)."""
        found = None
        for summary in sorted(
            (self.reports / dag_id).glob("*/summary.json"), key=lambda p: p.stat().st_mtime
        ):
            buckets = json.loads(summary.read_text()).get("loop_return_ids") or {}
            for name, ids in buckets.items():
                if (
                    name.startswith(bucket_prefix)
                    and name != "already_synced"
                    and loop_return_id in ids
                ):
                    found = json.loads(summary.read_text()).get("run_id") or summary.parent.name
        return found

    def search(self, q: str) -> Sequence[Any]:
        rows = self._rows(
            "SELECT loop_return_id, whiplash_return_id, status FROM sync_records "
            "WHERE lower(loop_return_id) = lower(:q) OR CAST(whiplash_return_id AS TEXT) = :q",
            q=q.strip(),
        )
        return [
            {"merchant": "default", "order_name": None, "tracking_number": None, **r} for r in rows
        ]

    def timeline(self, merchant: str, loop_return_id: str) -> Any:
        records = self._rows(
            "SELECT * FROM sync_records WHERE loop_return_id = :i", i=loop_return_id
        )
        if merchant != "default" or not records:
            return None
        rec = records[0]
        events = [
            {
                "at": _iso(rec["first_seen_at"]),
                "kind": "seen",
                "title": "Seen in Loop",
                "detail": f"label {rec['label_status'] or 'unknown'}",
                "status": None,
                "trigger": rec["source"],
                "dag_id": None,
                "run_id": None,
            },
        ]
        if rec["created_at"]:
            dag = BACKFILL if rec["source"] == "backfill" else RMA
            events.append(
                {
                    "at": _iso(rec["created_at"]),
                    "kind": "rma",
                    "title": f"RMA {rec['status']}",
                    "detail": f"Whiplash consumer return {rec['whiplash_return_id']}",
                    "status": rec["status"],
                    "trigger": rec["source"],
                    "dag_id": dag,
                    "run_id": self._run_of(dag, loop_return_id, "created"),
                }
            )
        elif rec["status"] == "unmappable":
            events.append(
                {
                    "at": _iso(rec["updated_at"]),
                    "kind": "unmappable",
                    "title": "Cannot be mapped",
                    "detail": f"{rec['reason_code']}: {rec['reason_detail'] or ''}",
                    "status": rec["status"],
                    "trigger": rec["source"],
                    "dag_id": None,
                    "run_id": None,
                }
            )
        decisions = self._rows(
            "SELECT * FROM decisions WHERE loop_return_id = :i", i=loop_return_id
        )
        verdict = None
        if decisions:
            d = decisions[0]
            verdict = {
                "verdict": d["verdict"],
                "reason_codes": json.loads(d["reason_codes"] or "[]"),
                "note": d["note"],
                "decided_at": _iso(d["decided_at"]),
                "dag_id": RECEIPTS,
                "run_id": d["run_id"],
            }
            events.append(
                {
                    "at": _iso(d["decided_at"]),
                    "kind": "verdict",
                    "title": f"Receipt reconciled: {d['verdict']}",
                    "detail": None,
                    "status": None,
                    "trigger": None,
                    "dag_id": RECEIPTS,
                    "run_id": d["run_id"],
                }
            )
        lines: list[dict[str, Any]] = []
        if verdict and verdict["run_id"]:
            path = self.reports / RECEIPTS / _run_folder(verdict["run_id"]) / "lines.csv"
            if path.exists():
                with path.open() as handle:
                    lines = [
                        {
                            k: row[k]
                            for k in ("sku", "expected", "good", "damaged", "missing", "extra")
                        }
                        for row in csv.DictReader(handle)
                        if row["loop_return_id"] == loop_return_id
                    ]
        actions = [
            {
                "action": a["action"],
                "status": a["status"],
                "message": a["message"],
                "at": _iso(a["updated_at"]),
                "dag_id": RECEIPTS if verdict else None,
                "run_id": verdict["run_id"] if verdict else None,
            }
            for a in self._rows(
                "SELECT * FROM loop_actions WHERE loop_return_id = :i ORDER BY id", i=loop_return_id
            )
        ]
        return {
            "merchant": "default",
            "loop_return_id": loop_return_id,
            "order_name": None,
            "tracking_number": None,
            "whiplash_return_id": rec["whiplash_return_id"],
            "status": rec["status"],
            "events": events,
            "receipt_lines": lines,
            "verdict": verdict,
            "actions": actions,
        }

    def queues(self, merchant: str | None) -> Any:
        attention = [
            {
                "merchant": "default",
                "loop_return_id": r["loop_return_id"],
                "reason": r["reason_code"] or r["status"],
                "detail": r["reason_detail"],
                "since": _iso(r["first_seen_at"]),
            }
            for r in self._rows(
                "SELECT * FROM sync_records WHERE status IN ('unmappable', 'failed')"
            )
        ] + [
            {
                "merchant": "default",
                "loop_return_id": a["loop_return_id"],
                "reason": f"{a['action']} {a['status']}",
                "detail": a["message"],
                "since": _iso(a["created_at"]),
            }
            for a in self._rows("SELECT * FROM loop_actions WHERE status = 'failed'")
        ]
        flagged = [
            {
                "merchant": "default",
                "loop_return_id": d["loop_return_id"],
                "reasons": json.loads(d["reason_codes"]),
                "detail": d["note"],
                "since": _iso(d["decided_at"]),
            }
            for d in self._rows("SELECT * FROM decisions WHERE verdict = 'flag'")
        ]
        misses = [
            {
                "merchant": "default",
                "loop_return_id": r["loop_return_id"],
                "reason": "caught by the backfill",
                "detail": None,
                "since": _iso(r["created_at"]),
                "late_seconds": (
                    (_dt(r["created_at"]) or datetime.now(UTC))
                    - (
                        _dt(r["label_pre_transit_at"])
                        or _dt(r["first_seen_at"])
                        or datetime.now(UTC)
                    )
                ).total_seconds(),
            }
            for r in self._rows(
                "SELECT * FROM sync_records WHERE source = 'backfill' AND created_at IS NOT NULL"
            )
        ]
        return {"needs_attention": attention, "flagged": flagged, "backfill_misses": misses}

    def trend(self, merchant: str | None, days: int) -> Sequence[Any]:
        today = datetime.now(UTC).date()
        span = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
        created: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        delays: dict[Any, list[float]] = defaultdict(list)
        for r in self._rows("SELECT * FROM sync_records WHERE created_at IS NOT NULL"):
            day = _dt(r["created_at"]).date()  # type: ignore[union-attr]
            created[day][r["source"]] += 1
            label = _dt(r["label_pre_transit_at"])
            if label:
                delays[day].append((_dt(r["created_at"]) - label).total_seconds())  # type: ignore[operator]
        verdicts: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for d in self._rows("SELECT verdict, decided_at FROM decisions"):
            verdicts[_dt(d["decided_at"]).date()][d["verdict"]] += 1  # type: ignore[union-attr]
        return [
            {
                "day": day.isoformat(),
                "created_by_trigger": dict(created[day]),
                "processed": verdicts[day]["process"],
                "flagged": verdicts[day]["flag"],
                "misses": created[day].get("backfill", 0),
                "median_label_to_rma_seconds": statistics.median(delays[day])
                if delays[day]
                else None,
            }
            for day in span
        ]

    def run_summary(self, dag_id: str, run_id: str) -> Any:
        path = self.reports / dag_id.split("__")[0] / _run_folder(run_id) / "summary.json"
        if not path.exists():
            return None
        summary = json.loads(path.read_text())
        returns, counts, reasons = [], defaultdict(int), defaultdict(int)
        for bucket, ids in (summary.get("loop_return_ids") or {}).items():
            outcome, _, why = bucket.partition(":")
            counts[outcome] += len(ids)
            for code in filter(None, why.split("|")):
                if code != "-":
                    reasons[code] += len(ids)
            returns += [
                {
                    "merchant": "default",
                    "loop_return_id": i,
                    "outcome": outcome,
                    "reason": why if why not in ("", "-") else None,
                }
                for i in ids
            ]
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "counts": dict(counts),
            "reasons": dict(reasons),
            "returns": returns,
        }
