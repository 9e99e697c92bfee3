"""`StateStore`: the durable memory of returns-sync, behind connection `returns_sync_db`.

It remembers what the pipelines must never forget or do twice: which Loop returns have an RMA
(sync records), which Whiplash receipts were decided and what we did on Loop (decisions and
actions), how far each poller has read (watermarks), webhook deliveries (inbox) and the Whiplash
token slot (access and rotated refresh token, with the refresh lease). The methods live in
small mixins, one per concern; this module wires them to an engine. Nothing here imports
Airflow: the caller resolves the connection and the Fernet key and passes them in.

One store serves every merchant of a deployment. A store is scoped to one merchant
(`store.merchant`, "default" for a plain one; `store.for_merchant(id)` for another, sharing the
engine): sync records, decisions, actions, watermarks and inbox events are that merchant's only.
What belongs to a vendor account, not a merchant (OAuth token slots, rate-limit state), is keyed
by the account and shared by every merchant using it. Two reads look across merchants:
`merchant_of_whiplash_return` and `inbox_waiting_by_merchant`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine

from include.returns_sync.state import migration
from include.returns_sync.state._base import Clock
from include.returns_sync.state.actions import ActionsMixin
from include.returns_sync.state.engine import build_engine
from include.returns_sync.state.inbox import InboxMixin
from include.returns_sync.state.oauth_slots import OAuthSlotsMixin
from include.returns_sync.state.records import DEFAULT_MERCHANT
from include.returns_sync.state.sync_records import SyncRecordsMixin
from include.returns_sync.state.url import URL, describe, parse_connection
from include.returns_sync.state.watermarks import WatermarksMixin

log = logging.getLogger(__name__)

#: Where the default SQLite database lives, relative to $AIRFLOW_HOME.
DEFAULT_SQLITE_RELPATH = Path("returns_sync") / "state.db"


class StateStore(SyncRecordsMixin, ActionsMixin, WatermarksMixin, InboxMixin, OAuthSlotsMixin):
    """Durable state over SQLite or PostgreSQL; every write is one short, guarded transaction.

    Create it with `from_url` or `default_sqlite`, call `migrate()` once per process start
    (cheap and safe to race), and `dispose()` when done. Pass `clock` to control "now" in tests.
    `for_merchant(id)` gives the same store scoped to another merchant (see `StoreBase`).
    """

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        super().__init__(engine, clock=clock)

    @classmethod
    def from_url(cls, url_or_json: str | URL, *, clock: Clock | None = None) -> StateStore:
        """A store for a `returns_sync_db` connection given as a URI or Airflow JSON."""
        url = url_or_json if isinstance(url_or_json, URL) else parse_connection(url_or_json)
        return cls(build_engine(url), clock=clock)

    @classmethod
    def default_sqlite(cls, airflow_home: Path | str, *, clock: Clock | None = None) -> StateStore:
        """The zero-configuration store: `$AIRFLOW_HOME/returns_sync/state.db`."""
        path = Path(airflow_home).expanduser().resolve() / DEFAULT_SQLITE_RELPATH
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(build_engine(URL.create("sqlite+pysqlite", database=str(path))), clock=clock)

    @property
    def url(self) -> str:
        """The database URL with the password masked."""
        return describe(self._engine.url)

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision; idempotent and safe to run concurrently."""
        migration.upgrade_to_head(self._engine)
        log.debug("returns-sync state store at %s is at revision %s", self.url, self.revision())

    def revision(self) -> str | None:
        """The schema revision the database is at (None before `migrate()`)."""
        return migration.current_revision(self._engine)

    def dispose(self) -> None:
        """Close pooled connections."""
        self._engine.dispose()

    def __repr__(self) -> str:
        scope = "" if self._merchant == DEFAULT_MERCHANT else f", merchant={self._merchant}"
        return f"StateStore({self.url}{scope})"
