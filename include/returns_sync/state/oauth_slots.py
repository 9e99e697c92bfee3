"""The shared OAuth token slot of a connection, and the lease that serialises refreshes.

One `oauth_tokens` row per connection holds what every process should use: the current access
token and its expiry, the current refresh token (both Fernet-encrypted with Airflow's key), the
fingerprint of the connection value the chain descends from (`origin`), a `version` bumped by
every write, and a lease. The refresh protocol (see `clients/oauth.py`) only ever runs short
transactions, never one held open across the HTTP call (on SQLite that would hold the database's
single write lock and block the webhook inbox):

1. `acquire_oauth_lease` - one short write: take the lease if it is free or expired; commit.
2. the HTTP refresh, outside any transaction.
3. `write_oauth_slot` - one short write: store the new tokens if nobody else wrote meanwhile
   (compare-and-swap on `version`) and release the lease; commit. Only then is the new access
   token handed out, so the rotated refresh token is stored before it is used.

Waiters poll `read_oauth_slot` until the slot holds a fresh token or the lease is free.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Update, delete, or_, select, update

from include.returns_sync.state import tokens
from include.returns_sync.state._base import StoreBase, require_duration, require_text
from include.returns_sync.state.schema import oauth_tokens


@dataclass(frozen=True)
class OAuthSlot:
    """One connection's shared tokens in clear text (never in a repr)."""

    name: str
    refresh_token: str | None
    access_token: str | None
    access_renew_at: datetime | None
    origin: str | None
    version: int
    lease_owner: str | None
    lease_until: datetime | None

    def __repr__(self) -> str:
        return (
            f"OAuthSlot(name={self.name!r}, version={self.version}, "
            f"access_renew_at={self.access_renew_at!r}, lease_owner={self.lease_owner!r})"
        )


class OAuthSlotsMixin(StoreBase):
    """Token-slot and lease methods of `StateStore`."""

    def read_oauth_slot(self, name: str, fernet_key: str | bytes) -> OAuthSlot | None:
        """The slot in clear text, or None if there is none; a wrong key raises `TokenKeyError`."""
        key = require_text(name, "name")
        with self._read() as conn:
            row = conn.execute(select(oauth_tokens).where(oauth_tokens.c.name == key)).first()
        if row is None:
            return None
        values = row._mapping

        def clear(column: str) -> str | None:
            ciphertext = values[column]
            return tokens.decrypt(ciphertext, fernet_key, name=key) if ciphertext else None

        return OAuthSlot(
            name=key,
            refresh_token=clear("refresh_token"),
            access_token=clear("access_token"),
            access_renew_at=values["access_renew_at"],
            origin=values["origin"],
            version=int(values["version"]),
            lease_owner=values["lease_owner"],
            lease_until=values["lease_until"],
        )

    def acquire_oauth_lease(self, name: str, owner: str, duration: timedelta) -> bool:
        """Take the refresh lease of `name` for `duration` if it is free, expired or ours."""
        key = require_text(name, "name")
        who = require_text(owner, "owner")
        length = require_duration(duration, "duration")
        now = self._now()
        placeholder = (
            self._insert(oauth_tokens)
            .values(name=key, updated_at=now, version=0)
            .on_conflict_do_nothing(index_elements=[oauth_tokens.c.name])
        )
        take = (
            update(oauth_tokens)
            .where(
                oauth_tokens.c.name == key,
                or_(
                    oauth_tokens.c.lease_owner.is_(None),
                    oauth_tokens.c.lease_until.is_(None),
                    oauth_tokens.c.lease_until <= now,
                    oauth_tokens.c.lease_owner == who,
                ),
            )
            .values(lease_owner=who, lease_until=now + length)
        )
        with self._write() as conn:
            conn.execute(placeholder)
            return conn.execute(take).rowcount == 1

    def write_oauth_slot(
        self,
        name: str,
        owner: str,
        fernet_key: str | bytes,
        *,
        expected_version: int,
        refresh_token: str | None,
        access_token: str,
        access_renew_at: datetime,
        origin: str | None,
    ) -> bool:
        """Store freshly granted tokens and release `owner`'s lease, in one short transaction.

        Compare-and-swap: False (nothing written, the lease still released) when the slot's
        version is no longer `expected_version`, i.e. another process wrote in between.
        """
        key = require_text(name, "name")
        who = require_text(owner, "owner")
        now = self._now()
        values = {
            "refresh_token": tokens.encrypt(refresh_token, fernet_key) if refresh_token else None,
            "access_token": tokens.encrypt(require_text(access_token, "access_token"), fernet_key),
            "access_renew_at": access_renew_at,
            "origin": origin,
            "version": oauth_tokens.c.version + 1,
            "updated_at": now,
            "lease_owner": None,
            "lease_until": None,
        }
        write = (
            update(oauth_tokens)
            .where(oauth_tokens.c.name == key, oauth_tokens.c.version == expected_version)
            .values(**values)
        )
        with self._write() as conn:
            written = conn.execute(write).rowcount == 1
            if not written:
                conn.execute(self._release(key, who))
            return written

    def release_oauth_lease(self, name: str, owner: str) -> None:
        """Give the lease back (after a failed refresh); a lease taken over by another stays."""
        key = require_text(name, "name")
        with self._write() as conn:
            conn.execute(self._release(key, require_text(owner, "owner")))

    def clear_oauth_token(self, name: str) -> bool:
        """Forget the stored tokens of `name` (re-authorisation); True if there were any."""
        key = require_text(name, "name")
        with self._write() as conn:
            return conn.execute(delete(oauth_tokens).where(oauth_tokens.c.name == key)).rowcount > 0

    @staticmethod
    def _release(key: str, owner: str) -> Update:
        return (
            update(oauth_tokens)
            .where(oauth_tokens.c.name == key, oauth_tokens.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )
