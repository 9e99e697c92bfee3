"""Durable state of returns-sync (SQLAlchemy Core, Alembic migrations, no Airflow imports)."""

from include.returns_sync.state.errors import (
    ActionStateError,
    ClaimLostError,
    DuplicateRmaError,
    StateConfigError,
    StateError,
    TokenKeyError,
    WhiplashIdConflictError,
)
from include.returns_sync.state.records import (
    DEFAULT_MERCHANT,
    ActionClaim,
    ClaimOutcome,
    ClaimResult,
    Decision,
    InboxEvent,
    InboxSignal,
    InboxSource,
    InboxStatus,
    LoopAction,
    SyncRecord,
    SyncSource,
)
from include.returns_sync.state.store import StateStore
from include.returns_sync.state.sync_records import DEFAULT_CLAIM_STALE_AFTER
from include.returns_sync.state.url import CONN_ID, parse_connection
from include.returns_sync.vocabulary import ActionKind, ActionStatus, SyncStatus, Verdict

__all__ = [
    "CONN_ID",
    "DEFAULT_CLAIM_STALE_AFTER",
    "DEFAULT_MERCHANT",
    "ActionClaim",
    "ActionKind",
    "ActionStateError",
    "ActionStatus",
    "ClaimLostError",
    "ClaimOutcome",
    "ClaimResult",
    "Decision",
    "DuplicateRmaError",
    "InboxEvent",
    "InboxSignal",
    "InboxSource",
    "InboxStatus",
    "LoopAction",
    "StateConfigError",
    "StateError",
    "StateStore",
    "SyncRecord",
    "SyncSource",
    "SyncStatus",
    "TokenKeyError",
    "Verdict",
    "WhiplashIdConflictError",
    "parse_connection",
]
