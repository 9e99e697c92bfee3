"""SQLAlchemy Core tables of the returns-sync state store.

The migrations under `migrations/versions/` create exactly these tables; a test compares the
two so they cannot drift. Table names are plain (no prefix) because the recommended production
setup gives the store its own PostgreSQL schema or database; they do not clash with Airflow's
metadata tables either, so sharing Airflow's database also works.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.types import TypeDecorator

from include.returns_sync.state.records import (
    DEFAULT_MERCHANT,
    InboxSource,
    InboxStatus,
    SyncSource,
)
from include.returns_sync.vocabulary import ActionKind, ActionStatus, SyncStatus, Verdict

#: Alembic's version table for this store; its own name so it can live next to Airflow's.
VERSION_TABLE = "returns_sync_alembic_version"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that only accepts aware datetimes and always comes back aware, in UTC.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so values are stored as naive
    UTC text, which also keeps them comparable as strings in SQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware datetimes; got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _one_of(column: str, values: list[str], name: str) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)


#: The CHECK constraints' allowed values, from the enums (migrations keep their own copies).
SYNC_STATUSES = [member.value for member in SyncStatus]
SYNC_SOURCES = [member.value for member in SyncSource]
VERDICTS = [member.value for member in Verdict]
ACTION_KINDS = [member.value for member in ActionKind]
ACTION_STATUSES = [member.value for member in ActionStatus]
INBOX_SOURCES = [member.value for member in InboxSource]
INBOX_STATUSES = [member.value for member in InboxStatus]


def _merchant() -> Column[str]:
    """The merchant a row belongs to (rows older than revision 0007 belong to `default`)."""
    return Column("merchant", Text, nullable=False, server_default=DEFAULT_MERCHANT)


sync_records = Table(
    "sync_records",
    metadata,
    _merchant(),
    Column("loop_return_id", Text, nullable=False),
    Column("whiplash_return_id", BigInteger, nullable=True),
    Column("status", Text, nullable=False),
    Column("reason_code", Text),
    Column("reason_detail", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("claim_token", Text),
    Column("claimed_at", UTCDateTime),
    # status before the current claim (NULL for a brand-new row); lets release_claim undo it.
    Column("claimed_from", Text),
    Column("label_status", Text),
    Column("label_pre_transit_at", UTCDateTime),
    Column("source", Text, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_run_id", Text),
    # revision 0008 (the operator views): search keys, and which run did the steps
    Column("order_name", Text),
    Column("tracking_number", Text),
    Column("last_dag_id", Text),
    Column("last_trigger", Text),  # the claim's source: webhook, poll, backfill, manual
    Column("rma_run_id", Text),  # the run that created or adopted the RMA
    Column("rma_dag_id", Text),
    Column("rma_trigger", Text),
    _one_of("status", SYNC_STATUSES, "status"),
    _one_of("source", SYNC_SOURCES, "source"),
    # a claim always carries its token and time; a finished RMA always carries its id.
    CheckConstraint(
        "status <> 'claimed' OR (claim_token IS NOT NULL AND claimed_at IS NOT NULL)",
        name="claim_has_token",
    ),
    CheckConstraint(
        "status NOT IN ('created', 'adopted') OR whiplash_return_id IS NOT NULL",
        name="done_has_whiplash_id",
    ),
    PrimaryKeyConstraint("merchant", "loop_return_id"),
    # one Whiplash consumer return can belong to one Loop return only (of one merchant)
    UniqueConstraint("merchant", "whiplash_return_id"),
    Index(None, "merchant", "status", "updated_at"),
    # "whose RMA is this Whiplash return?" across merchants (the Whiplash webhook router)
    Index(None, "whiplash_return_id"),
    # the operator views (revision 0008): exact, case-insensitive search; queues; trend; runs
    Index("ix_sync_records_lower_loop_return_id", func.lower(text("loop_return_id"))),
    Index("ix_sync_records_lower_order_name", func.lower(text("order_name"))),
    Index("ix_sync_records_lower_tracking_number", func.lower(text("tracking_number"))),
    Index(None, "status", "first_seen_at"),
    Index(None, "merchant", "status", "first_seen_at"),
    Index(None, "created_at"),
    Index(None, "merchant", "created_at"),
    Index(None, "rma_trigger", "created_at"),
    Index(None, "last_run_id"),
)

decisions = Table(
    "decisions",
    metadata,
    _merchant(),
    Column("whiplash_return_id", BigInteger, nullable=False, autoincrement=False),
    Column("loop_return_id", Text),
    Column("verdict", Text, nullable=False),
    Column("reason_codes", Text, nullable=False, server_default="[]"),  # JSON list
    Column("note", Text),
    Column("detail", Text),  # JSON object
    Column("run_id", Text),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("dag_id", Text),  # revision 0008: the DAG of `run_id`
    # one decision per Whiplash consumer return (of one merchant), ever
    PrimaryKeyConstraint("merchant", "whiplash_return_id"),
    _one_of("verdict", VERDICTS, "verdict"),
    Index(None, "merchant", "loop_return_id"),
    Index(None, "verdict", "decided_at"),
    Index(None, "merchant", "verdict", "decided_at"),
    Index(None, "run_id"),
)

loop_actions = Table(
    "loop_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _merchant(),
    Column("loop_return_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("vendor_code", Text),
    Column("message", Text),
    Column("payload", Text),
    # bumped by each retry_action: a compare-and-swap token so one resolver wins a retry
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # revision 0008: the run that last wrote the action (its intent or its outcome)
    Column("run_id", Text),
    Column("dag_id", Text),
    # the "never act twice" guarantee: at most one row per (merchant, return, action)
    UniqueConstraint("merchant", "loop_return_id", "action"),
    _one_of("action", ACTION_KINDS, "action"),
    _one_of("status", ACTION_STATUSES, "status"),
    Index(None, "status", "updated_at"),
    Index(None, "run_id"),
)

watermarks = Table(
    "watermarks",
    metadata,
    _merchant(),
    Column("name", Text, nullable=False),
    Column("value", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("merchant", "name"),
)

webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _merchant(),
    Column("source", Text, nullable=False),
    # unique per merchant and vendor: the vendors' delivery ids live in different namespaces,
    # and Loop's keys are built from the event's content, which two shops may share
    Column("dedup_key", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("resource_id", Text),
    Column("payload", Text, nullable=False),  # JSON object
    Column("received_at", UTCDateTime, nullable=False),
    Column("status", Text, nullable=False),
    Column("claimed_by", Text),
    Column("claimed_at", UTCDateTime),
    Column("processed_at", UTCDateTime),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("reason", Text),  # why it was closed without work, or failed
    UniqueConstraint("merchant", "source", "dedup_key"),
    _one_of("source", INBOX_SOURCES, "source"),
    _one_of("status", INBOX_STATUSES, "status"),
    # one merchant's claims and signals
    Index(None, "merchant", "status", "source", "id"),
    # the triggerer's one read of every merchant's waiting events
    Index(None, "status", "source", "id"),
)

oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    Column("name", Text, primary_key=True),
    # Fernet ciphertext, never clear text; NULL for a client-credentials slot
    Column("refresh_token", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    # the shared access token (Fernet ciphertext) and when to renew it: the vendor's expiry
    # minus the renewal margin (wall clock, UTC), the same moment for every process
    Column("access_token", Text),
    Column("access_renew_at", UTCDateTime),
    # SHA-256 of what the stored chain descends from (token URL, client, connection's token)
    Column("origin", Text),
    # bumped by every write of the slot: a compare-and-swap token
    Column("version", Integer, nullable=False, server_default="0"),
    # the refresh lease: who refreshes now, and until when at most
    Column("lease_owner", Text),
    Column("lease_until", UTCDateTime),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    # a vendor account, e.g. "loop:<hash of the API key>" (never the secret itself)
    Column("key", Text, primary_key=True),
    # GCRA's theoretical arrival time, seconds since the epoch (wall clock, shared by processes)
    Column("tat", Float(precision=53), nullable=False),
)
