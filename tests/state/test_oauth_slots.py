"""The shared OAuth token slot: one lease holder at a time, compare-and-swap writes, encryption."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from include.returns_sync.state import StateStore, TokenKeyError
from include.returns_sync.state.schema import oauth_tokens
from tests.state.support import FakeClock

KEY = Fernet.generate_key().decode()
LEASE = timedelta(seconds=30)


def _write(store: StateStore, owner: str, version: int, refresh: str | None = "r1") -> bool:
    return store.write_oauth_slot(
        "whiplash_default",
        owner,
        KEY,
        expected_version=version,
        refresh_token=refresh,
        access_token="a1",
        access_renew_at=store._now() + timedelta(hours=2),
        origin="fp",
    )


def test_one_lease_holder_at_a_time_until_it_expires(store: StateStore, clock: FakeClock) -> None:
    assert store.read_oauth_slot("whiplash_default", KEY) is None
    assert store.acquire_oauth_lease("whiplash_default", "p1", LEASE)
    assert not store.acquire_oauth_lease("whiplash_default", "p2", LEASE)
    assert store.acquire_oauth_lease("whiplash_default", "p1", LEASE)  # re-entrant for p1
    clock.advance(LEASE + timedelta(seconds=1))
    assert store.acquire_oauth_lease("whiplash_default", "p2", LEASE)  # p1 died
    store.release_oauth_lease("whiplash_default", "p1")  # not p1's any more: no effect
    assert not store.acquire_oauth_lease("whiplash_default", "p3", LEASE)
    store.release_oauth_lease("whiplash_default", "p2")
    assert store.acquire_oauth_lease("whiplash_default", "p3", LEASE)


def test_a_write_stores_encrypted_tokens_and_releases_the_lease(store: StateStore) -> None:
    assert store.acquire_oauth_lease("whiplash_default", "p1", LEASE)
    slot = store.read_oauth_slot("whiplash_default", KEY)
    assert slot is not None and slot.version == 0 and slot.lease_owner == "p1"
    assert _write(store, "p1", slot.version)
    slot = store.read_oauth_slot("whiplash_default", KEY)
    assert slot is not None
    assert (slot.refresh_token, slot.access_token, slot.origin) == ("r1", "a1", "fp")
    assert (slot.version, slot.lease_owner) == (1, None)
    assert "a1" not in repr(slot) and "r1" not in repr(slot)
    with store.engine.connect() as conn:
        stored = conn.execute(select(oauth_tokens.c.refresh_token, oauth_tokens.c.access_token))
        assert all(value not in ("r1", "a1") for row in stored for value in row)
    assert store.load_refresh_token("whiplash_default", KEY) == "r1"
    with pytest.raises(TokenKeyError):
        store.read_oauth_slot("whiplash_default", Fernet.generate_key().decode())


def test_a_write_based_on_an_old_version_is_refused_but_frees_its_lease(store: StateStore) -> None:
    assert store.acquire_oauth_lease("whiplash_default", "p1", LEASE)
    assert _write(store, "p1", 0)
    assert store.acquire_oauth_lease("whiplash_default", "p2", LEASE)
    assert not _write(store, "p2", 0)  # p2 read version 0 before p1 wrote
    slot = store.read_oauth_slot("whiplash_default", KEY)
    assert slot is not None and (slot.version, slot.lease_owner) == (1, None)


def test_clearing_forgets_the_stored_tokens(store: StateStore) -> None:
    store.acquire_oauth_lease("whiplash_default", "p1", LEASE)
    _write(store, "p1", 0)
    assert store.clear_oauth_token("whiplash_default")
    assert store.read_oauth_slot("whiplash_default", KEY) is None
    assert not store.clear_oauth_token("whiplash_default")
