"""Watermarks never move backwards; refresh tokens are encrypted at rest."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from include.returns_sync.state import StateStore, TokenKeyError
from include.returns_sync.state.schema import oauth_tokens

T0 = datetime(2026, 3, 1, tzinfo=UTC)
_names = itertools.count()


def test_an_unknown_watermark_is_none(store: StateStore) -> None:
    assert store.get_watermark("loop_returns_to_whiplash") is None


def test_a_watermark_moves_forward_but_never_backwards(store: StateStore) -> None:
    assert store.advance_watermark("loop", T0) == T0
    assert store.advance_watermark("loop", T0 + timedelta(minutes=5)) == T0 + timedelta(minutes=5)
    assert store.advance_watermark("loop", T0) == T0 + timedelta(minutes=5)
    assert store.get_watermark("loop") == T0 + timedelta(minutes=5)
    assert store.get_watermark("whiplash") is None


def test_watermarks_compare_instants_not_wall_clock_text(store: StateStore) -> None:
    store.advance_watermark("w", datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    # 20:00 in UTC+9 is 11:00 UTC: earlier, although its wall-clock reads later
    earlier = datetime(2026, 3, 1, 20, 0, tzinfo=timezone(timedelta(hours=9)))
    assert store.advance_watermark("w", earlier) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_naive_watermark_is_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="value must be a timezone-aware datetime"):
        store.advance_watermark("w", datetime(2026, 3, 1))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.datetimes(
            min_value=datetime(2000, 1, 1),
            max_value=datetime(2100, 1, 1),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone.max]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_property_the_stored_watermark_is_the_latest_value_ever_offered(
    store: StateStore, steps: list[datetime]
) -> None:
    name = f"prop-{next(_names)}"
    for n, value in enumerate(steps, start=1):
        stored = store.advance_watermark(name, value)
        assert stored == max(steps[:n])
        assert stored.tzinfo is UTC
    assert store.get_watermark(name) == max(steps)


def test_the_refresh_token_is_encrypted_at_rest_and_round_trips(store: StateStore) -> None:
    key = Fernet.generate_key().decode()
    assert store.load_refresh_token("whiplash_default", key) is None
    store.save_refresh_token("whiplash_default", "rt-first-0123456789", key)
    store.save_refresh_token("whiplash_default", "rt-rotated-9876543210", key)
    assert store.load_refresh_token("whiplash_default", key) == "rt-rotated-9876543210"
    with store.engine.connect() as conn:
        raw = conn.execute(select(oauth_tokens.c.refresh_token)).scalars().all()
    assert len(raw) == 1
    assert "rt-rotated" not in raw[0] and "9876543210" not in raw[0]
    assert Fernet(key.encode()).decrypt(raw[0].encode()) == b"rt-rotated-9876543210"


def test_airflow_style_key_rotation_lists_still_decrypt_old_tokens(store: StateStore) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    store.save_refresh_token("whiplash_default", "rt-old", old)
    assert store.load_refresh_token("whiplash_default", f"{new},{old}") == "rt-old"


def test_a_wrong_or_missing_key_is_a_clear_error_not_a_silent_none(store: StateStore) -> None:
    store.save_refresh_token("whiplash_default", "rt-x", Fernet.generate_key())
    with pytest.raises(TokenKeyError, match="'whiplash_default' cannot be decrypted"):
        store.load_refresh_token("whiplash_default", Fernet.generate_key())
    with pytest.raises(TokenKeyError, match="fernet_key is empty"):
        store.save_refresh_token("whiplash_default", "rt-y", "")
    with pytest.raises(TokenKeyError, match="not a valid Fernet key"):
        store.save_refresh_token("whiplash_default", "rt-y", "not-a-key")
