"""Receipt decisions and Loop actions: "one decision per consumer return, never act twice".

A decision is written once per Whiplash consumer return and merchant (the primary key enforces
it); every read and write is the store's merchant's. Before
calling Loop, the caller writes the action's `intent` (UNIQUE(merchant, loop_return_id, action)); only
the caller whose INSERT created the row may call Loop. An existing row is handed back with its
status so the caller can tell "already sent" from "a previous attempt may have reached Loop".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import RowMapping, Select, Table, func, select, update

from include.returns_sync.state._base import (
    StoreBase,
    chunks,
    first_row,
    int_ids,
    require_int,
    require_text,
    text_ids,
)
from include.returns_sync.state.errors import ActionStateError
from include.returns_sync.state.records import ActionClaim, Decision, LoopAction, coerce
from include.returns_sync.state.schema import decisions, loop_actions
from include.returns_sync.vocabulary import ActionKind, ActionStatus, Verdict

_FINISHED = (ActionStatus.QUEUED, ActionStatus.SENT, ActionStatus.FAILED, ActionStatus.UNKNOWN)


def _decision(row: RowMapping) -> Decision:
    return Decision(
        whiplash_return_id=row["whiplash_return_id"],
        loop_return_id=row["loop_return_id"],
        verdict=Verdict(row["verdict"]),
        reason_codes=tuple(json.loads(row["reason_codes"])),
        note=row["note"],
        detail=json.loads(row["detail"]) if row["detail"] is not None else None,
        run_id=row["run_id"],
        decided_at=row["decided_at"],
        merchant=row["merchant"],
    )


def _action(row: RowMapping) -> LoopAction:
    return LoopAction(
        id=row["id"],
        loop_return_id=row["loop_return_id"],
        action=ActionKind(row["action"]),
        status=ActionStatus(row["status"]),
        vendor_code=row["vendor_code"],
        message=row["message"],
        payload=row["payload"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        merchant=row["merchant"],
    )


def _json_detail(detail: Mapping[str, Any] | None) -> str | None:
    if detail is None:
        return None
    if not isinstance(detail, Mapping):
        raise ValueError(f"detail must be a mapping; got {type(detail).__name__}")
    try:
        return json.dumps(dict(detail), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"detail is not JSON-serialisable: {exc}") from None


class ActionsMixin(StoreBase):
    """Decision and Loop-action methods of `StateStore`."""

    # -- decisions ---------------------------------------------------------------------------

    def get_decisions(self, whiplash_return_ids: Iterable[int]) -> dict[int, Decision]:
        """Recorded decisions for these consumer returns (undecided ids are absent)."""
        ids = int_ids(whiplash_return_ids, "whiplash_return_ids")
        found: dict[int, Decision] = {}
        with self._read() as conn:
            for part in chunks(ids):
                query = select(decisions).where(
                    self._scope(decisions), decisions.c.whiplash_return_id.in_(part)
                )
                for row in conn.execute(query).mappings():
                    found[row["whiplash_return_id"]] = _decision(row)
        return found

    def record_decision(
        self,
        whiplash_return_id: int,
        *,
        verdict: Verdict | str,
        reason_codes: Iterable[str] = (),
        loop_return_id: str | None = None,
        note: str | None = None,
        detail: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> tuple[Decision, bool]:
        """Write the decision once; returns (decision, inserted).

        If a decision already exists it is returned unchanged with `inserted=False`: the first
        decision stands, whatever a later run computes.
        """
        wid = require_int(whiplash_return_id, "whiplash_return_id")
        chosen = coerce(Verdict, verdict, "verdict")
        if isinstance(reason_codes, str):
            raise ValueError(f"reason_codes must be a list of codes; got {reason_codes!r}")
        codes = [require_text(code, "reason_codes[]") for code in reason_codes]
        if loop_return_id is not None:
            require_text(loop_return_id, "loop_return_id")
        values = {
            "merchant": self._merchant,
            "whiplash_return_id": wid,
            "loop_return_id": loop_return_id,
            "verdict": chosen.value,
            "reason_codes": json.dumps(codes),
            "note": note,
            "detail": _json_detail(detail),
            "run_id": run_id or self.run_id,
            "dag_id": self.run_dag_id,
            "decided_at": self._now(),
        }
        with self._write() as conn:
            row = first_row(
                conn,
                self._insert(decisions)
                .values(**values)
                .on_conflict_do_nothing(
                    index_elements=[decisions.c.merchant, decisions.c.whiplash_return_id]
                )
                .returning(*decisions.c),
            )
            if row is not None:
                return _decision(row), True
            existing = (
                conn.execute(
                    select(decisions).where(
                        self._scope(decisions), decisions.c.whiplash_return_id == wid
                    )
                )
                .mappings()
                .one()
            )
            return _decision(existing), False

    def unfinished_decisions(self, limit: int = 500) -> dict[int, Decision]:
        """Process/flag decisions whose Loop action is not finished, oldest first.

        Finished means: the last step was sent (`process` confirmed closed, or the flag's
        `note`), or a step was refused or its processing failed (`failed` is final). Everything
        else — no action yet, an `intent` left by a crash, an `unknown` outcome, a `queued`
        Process Loop has not closed yet — must be carried on by a later run, whatever its window.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        actions = loop_actions
        finished = (
            select(actions.c.id)
            .where(
                actions.c.merchant == decisions.c.merchant,
                actions.c.loop_return_id == decisions.c.loop_return_id,
                (
                    (actions.c.status == ActionStatus.FAILED.value)
                    & (actions.c.action != ActionKind.DISPOSITION.value)
                )
                | (
                    (actions.c.status == ActionStatus.SENT.value)
                    & (actions.c.action.in_([ActionKind.PROCESS.value, ActionKind.NOTE.value]))
                ),
            )
            .exists()
        )
        query = (
            select(decisions)
            .where(
                self._scope(decisions),
                decisions.c.verdict.in_([Verdict.PROCESS.value, Verdict.FLAG.value]),
                decisions.c.loop_return_id.is_not(None),
                ~finished,
            )
            .order_by(decisions.c.decided_at)
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return {int(row["whiplash_return_id"]): _decision(row) for row in rows}

    def waiting_dispositions(self, limit: int = 500) -> list[str]:
        """Loop returns whose planned dispositions are not sent while their Process or Flag is.

        The optional `disposition` step goes last: it waits for `process`, or for the flag's
        `note`, to be sent; then an `intent` or `unknown` row is sent (again) by any run.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        planned = loop_actions.alias("planned")
        done = loop_actions.alias("done")
        acted = (
            select(done.c.id)
            .where(
                done.c.merchant == planned.c.merchant,
                done.c.loop_return_id == planned.c.loop_return_id,
                done.c.action.in_([ActionKind.PROCESS.value, ActionKind.NOTE.value]),
                done.c.status == ActionStatus.SENT.value,
            )
            .exists()
        )
        query = (
            select(planned.c.loop_return_id)
            .where(
                planned.c.merchant == self._merchant,
                planned.c.action == ActionKind.DISPOSITION.value,
                planned.c.status.in_([ActionStatus.INTENT.value, ActionStatus.UNKNOWN.value]),
                acted,
            )
            .order_by(planned.c.created_at)
            .limit(limit)
        )
        with self._read() as conn:
            return [str(row[0]) for row in conn.execute(query)]

    # -- Loop actions ------------------------------------------------------------------------

    def begin_action(
        self, loop_return_id: str, action: ActionKind | str, payload: str | None = None
    ) -> ActionClaim:
        """Write the `intent` row BEFORE calling Loop; only `created=True` may make the call."""
        lid = require_text(loop_return_id, "loop_return_id")
        kind = coerce(ActionKind, action, "action")
        now = self._now()
        with self._write() as conn:
            row = first_row(
                conn,
                self._insert(loop_actions)
                .values(
                    merchant=self._merchant,
                    loop_return_id=lid,
                    action=kind.value,
                    status=ActionStatus.INTENT.value,
                    payload=payload,
                    attempts=1,
                    created_at=now,
                    updated_at=now,
                    run_id=self.run_id,
                    dag_id=self.run_dag_id,
                )
                .on_conflict_do_nothing(
                    index_elements=[
                        loop_actions.c.merchant,
                        loop_actions.c.loop_return_id,
                        loop_actions.c.action,
                    ]
                )
                .returning(*loop_actions.c),
            )
            if row is not None:
                return ActionClaim(created=True, action=_action(row))
            existing = conn.execute(self._action_query(lid, kind)).mappings().one()
            return ActionClaim(created=False, action=_action(existing))

    def retry_action(
        self, loop_return_id: str, action: ActionKind | str, *, seen_attempts: int
    ) -> ActionClaim:
        """Re-arm a `failed`/`unknown`/`intent` action after re-reading Loop showed it not done.

        Compare-and-swap on `attempts`: pass the `attempts` of the row you inspected; of two
        resolvers only one gets `created=True`. A `sent` action is never re-armed.
        """
        lid = require_text(loop_return_id, "loop_return_id")
        kind = coerce(ActionKind, action, "action")
        seen = require_int(seen_attempts, "seen_attempts")
        table = loop_actions
        with self._write() as conn:
            row = first_row(
                conn,
                update(table)
                .where(
                    self._scope(table),
                    table.c.loop_return_id == lid,
                    table.c.action == kind.value,
                    table.c.attempts == seen,
                    table.c.status != ActionStatus.SENT.value,
                )
                .values(
                    status=ActionStatus.INTENT.value,
                    attempts=table.c.attempts + 1,
                    vendor_code=None,
                    message=None,
                    updated_at=self._now(),
                    **self._action_run(table),
                )
                .returning(*table.c),
            )
            if row is not None:
                return ActionClaim(created=True, action=_action(row))
            existing = conn.execute(self._action_query(lid, kind)).mappings().first()
        if existing is None:
            raise ActionStateError(f"Loop return {lid}: no {kind.value} action to retry")
        return ActionClaim(created=False, action=_action(existing))

    def finish_action(
        self,
        loop_return_id: str,
        action: ActionKind | str,
        status: ActionStatus | str,
        vendor_code: str | None = None,
        message: str | None = None,
    ) -> LoopAction:
        """Record how the Loop call ended: `sent`, `failed` or `unknown` (outcome not known), or
        `queued` for a Process Loop accepted but has not finished (`sent` once it is closed).

        `sent` is final: repeating it is a no-op; trying to turn it into anything else raises.
        """
        lid = require_text(loop_return_id, "loop_return_id")
        kind = coerce(ActionKind, action, "action")
        outcome = coerce(ActionStatus, status, "status")
        if outcome not in _FINISHED:
            raise ValueError(
                f"status must be one of queued, sent, failed, unknown; got {outcome.value!r}"
            )
        table = loop_actions
        with self._write() as conn:
            row = first_row(
                conn,
                update(table)
                .where(
                    self._scope(table),
                    table.c.loop_return_id == lid,
                    table.c.action == kind.value,
                    table.c.status != ActionStatus.SENT.value,
                )
                .values(
                    status=outcome.value,
                    vendor_code=vendor_code,
                    message=message,
                    updated_at=self._now(),
                    **self._action_run(table),
                )
                .returning(*table.c),
            )
            if row is not None:
                return _action(row)
            existing = conn.execute(self._action_query(lid, kind)).mappings().first()
        if existing is None:
            raise ActionStateError(
                f"Loop return {lid}: no {kind.value} intent recorded; call begin_action first"
            )
        current = _action(existing)
        if outcome is ActionStatus.SENT:
            return current  # already sent: the first outcome stands
        raise ActionStateError(
            f"Loop return {lid}: {kind.value} was already sent; refusing to mark it "
            f"{outcome.value}",
            current,
        )

    def actions_for(self, loop_return_id: str) -> dict[ActionKind, LoopAction]:
        """Every action recorded for one Loop return, by kind."""
        lid = require_text(loop_return_id, "loop_return_id")
        return self.get_actions([lid]).get(lid, {})

    def get_actions(
        self, loop_return_ids: Iterable[str]
    ) -> dict[str, dict[ActionKind, LoopAction]]:
        """Actions for a batch of Loop returns (returns without any are absent)."""
        ids = text_ids(loop_return_ids, "loop_return_ids")
        found: dict[str, dict[ActionKind, LoopAction]] = {}
        with self._read() as conn:
            for part in chunks(ids):
                query = select(loop_actions).where(
                    self._scope(loop_actions), loop_actions.c.loop_return_id.in_(part)
                )
                for row in conn.execute(query).mappings():
                    item = _action(row)
                    found.setdefault(item.loop_return_id, {})[item.action] = item
        return found

    def _action_run(self, table: Table) -> dict[str, Any]:
        """The run columns of an action update: this store's run, else the row's own."""
        return {
            "run_id": func.coalesce(self.run_id, table.c.run_id),
            "dag_id": func.coalesce(self.run_dag_id, table.c.dag_id),
        }

    def _action_query(self, lid: str, kind: ActionKind) -> Select[Any]:
        return select(loop_actions).where(
            self._scope(loop_actions),
            loop_actions.c.loop_return_id == lid,
            loop_actions.c.action == kind.value,
        )
