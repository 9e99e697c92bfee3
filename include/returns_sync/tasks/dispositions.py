"""The receipts task's optional step: each returned unit's disposition (criteria `dispositions`).

`plan_dispositions` runs with the decisions (the only moment the receipt lines are at hand);
`send_dispositions` runs after the Loop actions and sends whatever is planned and due. The
rules live in `domain/dispositions.py`; this module only feeds them the run's data.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from include.returns_sync.domain.actions import ActionOutcome
from include.returns_sync.domain.dispositions import (
    DISPOSITION,
    plan_and_record,
)
from include.returns_sync.domain.dispositions import plan_dispositions as plan_items
from include.returns_sync.domain.dispositions import send_dispositions as send_planned
from include.returns_sync.reports import format_counts

log = logging.getLogger(__name__)


def plan_dispositions(
    store: Any,
    verdict_rows: list[dict[str, Any]],
    loop_returns: dict[int, Any],
    lines: Any,
    criteria: Any,
) -> None:
    """Store each new process/flag decision's dispositions, from this run's receipt lines."""
    acted = {
        int(row["whiplash_return_id"]): str(row["loop_return_id"])
        for row in verdict_rows
        if str(row["verdict"]) in ("process", "flag") and row["loop_return_id"]
    }
    received: dict[int, dict[str, tuple[int, int]]] = {}
    ours = lines[lines["whiplash_return_id"].isin(list(acted))]
    for wid, sku, good, damaged in zip(
        ours["whiplash_return_id"].tolist(),
        ours["sku"].astype("str").tolist(),
        ours["good"].tolist(),
        ours["damaged"].tolist(),
        strict=True,
    ):
        received.setdefault(int(wid), {})[sku] = (int(good), int(damaged))
    for wid, loop_id in acted.items():
        if wid in loop_returns:
            items = plan_items(
                loop_returns[wid],
                received.get(wid, {}),
                criteria.dispositions,
                criteria.sku_aliases,
            )
            plan_and_record(store, loop_id, items)


def send_dispositions(
    loop: Any, store: Any, rejected: type[Exception], vendor_error: type[Exception]
) -> list[dict[str, Any]]:
    """Send every planned disposition whose Process or Flag is done; report each outcome.

    Loop answers 403 when a line item is not the shop's (2026-10): that refuses these items,
    it does not mean the key is wrong, so it is recorded as failed (final), not raised.
    """
    outcomes = []
    for loop_id in store.waiting_dispositions():
        try:
            outcome = send_planned(
                loop, store, loop_id, rejected=rejected, vendor_error=vendor_error
            )
        except vendor_error as exc:
            if getattr(exc, "status", None) != 403:
                raise  # 401: the credentials are wrong; fail the task, alert
            store.finish_action(loop_id, DISPOSITION, "failed", "403", str(exc)[:500])
            outcome = ActionOutcome(loop_id, DISPOSITION, "failed", None, "403", str(exc))
        outcomes.append({"whiplash_return_id": None, **outcome.__dict__})
    if outcomes:
        log.info(
            "Dispositions:\n%s",
            format_counts("outcome", dict(Counter(o["outcome"] for o in outcomes))),
        )
    return outcomes
