"""Optional: each returned unit's disposition, told to Loop once (criteria `dispositions`).

Loop's dispositioning API takes one outcome per Loop line item, and a Loop line item is one
unit. The receipt says, per SKU, how many units arrived good and damaged, not which of the
return's line items they were, so the line items of a SKU are given their outcomes in line
item id order: first the good units, then the damaged ones, then the ones that never arrived.
A unit nobody expected (no Loop line item) has nothing to attach an outcome to.

The items are planned in the run that decides the return (the only run that has its receipt
lines) and stored in the `disposition` row of `loop_actions`; they are sent once the Process or
Flag is done, possibly by a later run, which sends exactly the stored items. Loop has no read
for dispositions; assessing a line item again sets the same outcome, so a call whose answer
was lost is sent again by the next run until Loop answers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from include.returns_sync.clients.errors import VendorError
from include.returns_sync.domain.actions import ActionOutcome, ActionStore, send_under_intent
from include.returns_sync.domain.sku import BLANK_SKU, normalise_sku
from include.returns_sync.models import LoopReturn
from include.returns_sync.vocabulary import ActionKind, ActionStatus
from include.returns_sync.vocabulary import ActionOutcomeKind as Outcome

log = logging.getLogger(__name__)

DISPOSITION = ActionKind.DISPOSITION

#: Loop's disposition outcomes (dispositioning API, `assessDispositions`).
DispositionOutcome = Literal["back_to_stock", "resale_hold", "recycle", "donate", "missing"]


class Dispositions(BaseModel):
    """Optional: tell Loop each returned unit's disposition after the Process/Flag.

    Off by default (Loop enables the dispositioning API per merchant). Each Loop line item is
    one unit; per SKU, the received good units are given `good`, then the damaged ones
    `damaged`, and the units that did not arrive `not_received`. Read from the merchant
    criteria file (`criteria.dispositions`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    good: DispositionOutcome = "back_to_stock"
    damaged: DispositionOutcome = "resale_hold"
    not_received: DispositionOutcome = "missing"
    return_processor: str | None = Field(default=None, max_length=100)


class DispositionClient(Protocol):
    def assess_dispositions(self, items: list[dict[str, Any]]) -> None: ...


class DispositionStore(ActionStore, Protocol):
    def waiting_dispositions(self, limit: int = 500) -> list[str]: ...


def plan_dispositions(
    loop_return: LoopReturn,
    received: Mapping[str, tuple[int, int]],
    options: Dispositions,
    aliases: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One `{"line_item_id", "disposition_outcome", ...}` per Loop line item, by id.

    `received` maps a canonical SKU (as the line table names it) to (good, damaged) units.
    Line items whose id is not an integer are left out: Loop's API only takes integers.
    """
    by_sku: dict[str, list[int]] = {}
    for line in loop_return.line_items or []:
        if line.line_item_id is None or not str(line.line_item_id).isdigit():
            continue
        sku = normalise_sku(line.sku, aliases)
        by_sku.setdefault(sku, []).append(int(line.line_item_id))
    planned: list[dict[str, Any]] = []
    for sku, line_item_ids in by_sku.items():
        good, damaged = received.get(sku, (0, 0)) if sku != BLANK_SKU else (0, 0)
        for position, line_item_id in enumerate(sorted(line_item_ids)):
            if position < good:
                outcome, said = options.good, "received in good condition"
            elif position < good + damaged:
                outcome, said = options.damaged, "received damaged"
            else:
                outcome, said = options.not_received, "not received"
            item: dict[str, Any] = {
                "line_item_id": line_item_id,
                "disposition_outcome": outcome,
                "note": f"returns-sync: {said} at the warehouse",
            }
            if options.return_processor:
                item["return_processor"] = options.return_processor
            planned.append(item)
    return sorted(planned, key=lambda item: item["line_item_id"])


def plan_and_record(
    store: ActionStore, loop_return_id: str, items: Sequence[dict[str, Any]]
) -> bool:
    """Store the planned items with the decision (an `intent` row); False if already there.

    Planning happens in the run that decides the return, the only run that has its receipt
    lines; sending waits until the Process or Flag is done, possibly in a later run.
    """
    claim = store.begin_action(loop_return_id, DISPOSITION, json.dumps(list(items)))
    return bool(claim.created)


def send_dispositions(
    loop: DispositionClient, store: ActionStore, loop_return_id: str
) -> ActionOutcome:
    """Send the items planned for this Loop return, unless Loop already has them."""
    claim = store.begin_action(loop_return_id, DISPOSITION, None)
    previous = claim.action
    if claim.created:  # nothing was planned (decided before dispositions were switched on)
        store.finish_action(
            loop_return_id, DISPOSITION, ActionStatus.SENT, message="nothing planned"
        )
        return ActionOutcome(loop_return_id, DISPOSITION, Outcome.ALREADY_DONE)
    if previous.status in (ActionStatus.SENT, ActionStatus.FAILED):
        outcome = Outcome.ALREADY_DONE if previous.status == ActionStatus.SENT else Outcome.FAILED
        return ActionOutcome(
            loop_return_id, DISPOSITION, outcome, None, previous.vendor_code, previous.message
        )
    items = json.loads(previous.payload or "[]")
    if not items:
        store.finish_action(loop_return_id, DISPOSITION, ActionStatus.SENT, message="no line items")
        return ActionOutcome(loop_return_id, DISPOSITION, Outcome.ALREADY_DONE)
    claim = store.retry_action(loop_return_id, DISPOSITION, seen_attempts=previous.attempts)
    if not claim.created:  # another worker is sending them right now
        return ActionOutcome(loop_return_id, DISPOSITION, Outcome.PENDING)
    status, code, message = send_under_intent(
        store, loop_return_id, DISPOSITION, lambda: loop.assess_dispositions(items)
    )
    return ActionOutcome(loop_return_id, DISPOSITION, status, None, code, message)


def send_waiting_dispositions(
    loop: DispositionClient, store: DispositionStore
) -> list[ActionOutcome]:
    """Send every planned disposition whose Process or Flag is done; one outcome per return.

    Loop answers 403 when a line item is not the shop's (2026-10): that refuses these items,
    it does not mean the key is wrong, so it is recorded as failed (final), not raised.
    """
    outcomes = []
    for loop_id in store.waiting_dispositions():
        try:
            outcome = send_dispositions(loop, store, loop_id)
        except VendorError as exc:
            if exc.status != 403:
                raise  # 401: the credentials are wrong; fail the task, alert
            store.finish_action(loop_id, DISPOSITION, ActionStatus.FAILED, "403", str(exc)[:500])
            outcome = ActionOutcome(loop_id, DISPOSITION, Outcome.FAILED, None, "403", str(exc))
        outcomes.append(outcome)
    return outcomes
