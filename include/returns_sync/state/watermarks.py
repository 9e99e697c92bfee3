"""Watermarks (how far each poller has read) and encrypted OAuth refresh tokens.

Watermarks belong to the store's merchant (each merchant's pollers read their own shop).
Refresh tokens belong to a vendor account (the connection), which merchants may share: they
are not scoped.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from include.returns_sync.state import tokens
from include.returns_sync.state._base import StoreBase, require_aware, require_text
from include.returns_sync.state.schema import oauth_tokens, watermarks


class WatermarksMixin(StoreBase):
    """Watermark and refresh-token methods of `StateStore`."""

    def get_watermark(self, name: str) -> datetime | None:
        """The stored watermark, or None if this poller never ran."""
        key = require_text(name, "name")
        with self._read() as conn:
            value: datetime | None = conn.execute(
                select(watermarks.c.value).where(self._scope(watermarks), watermarks.c.name == key)
            ).scalar()
            return value

    def advance_watermark(self, name: str, value: datetime) -> datetime:
        """Move the watermark forward to `value`; it never moves backwards.

        One upsert whose update only applies when the new value is later, so an old run
        finishing late cannot rewind a newer one. Returns the watermark now stored.
        """
        key = require_text(name, "name")
        new = require_aware(value, "value")
        insert = self._insert(watermarks).values(
            merchant=self._merchant, name=key, value=new, updated_at=self._now()
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[watermarks.c.merchant, watermarks.c.name],
            set_={"value": insert.excluded.value, "updated_at": insert.excluded.updated_at},
            where=watermarks.c.value < insert.excluded.value,
        )
        with self._write() as conn:
            conn.execute(upsert)
            stored: datetime = conn.execute(
                select(watermarks.c.value).where(self._scope(watermarks), watermarks.c.name == key)
            ).scalar_one()
            return stored

    def save_refresh_token(self, name: str, token: str, fernet_key: str | bytes) -> None:
        """Persist a rotated OAuth refresh token, encrypted with Airflow's Fernet key."""
        key = require_text(name, "name")
        secret = require_text(token, "token")
        ciphertext = tokens.encrypt(secret, fernet_key)
        insert = self._insert(oauth_tokens).values(
            name=key, refresh_token=ciphertext, updated_at=self._now()
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[oauth_tokens.c.name],
            set_={
                "refresh_token": insert.excluded.refresh_token,
                "updated_at": insert.excluded.updated_at,
                "version": oauth_tokens.c.version + 1,
            },
        )
        with self._write() as conn:
            conn.execute(upsert)

    def load_refresh_token(self, name: str, fernet_key: str | bytes) -> str | None:
        """The stored refresh token in clear text, or None if none was saved.

        A key that cannot decrypt it raises `TokenKeyError` rather than returning None, so a
        misconfigured key never silently falls back to a stale token.
        """
        key = require_text(name, "name")
        with self._read() as conn:
            ciphertext: str | None = conn.execute(
                select(oauth_tokens.c.refresh_token).where(oauth_tokens.c.name == key)
            ).scalar()
        if ciphertext is None:
            return None
        return tokens.decrypt(ciphertext, fernet_key, name=key)
