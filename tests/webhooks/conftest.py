"""Fixtures for the webhook tests: a real SQLite state store and the webhook app over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from include.returns_sync.state import StateStore
from include.returns_sync.webhooks.app import WebhookReceiver, create_app
from include.returns_sync.webhooks.secrets import SigningKeys, StaticSecrets
from tests.webhooks.support import (
    LOOP_SECRET,
    WHIPLASH_CLIENT_ID,
    WHIPLASH_SECRET,
    WebhookServer,
    serving,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """A migrated SQLite state store in a fresh file."""
    state = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    state.migrate()
    yield state
    state.dispose()


@pytest.fixture
def static_secrets() -> StaticSecrets:
    return StaticSecrets(
        {
            "loop": SigningKeys((LOOP_SECRET,)),
            "whiplash": SigningKeys((WHIPLASH_SECRET,), client_id=WHIPLASH_CLIENT_ID),
        }
    )


@pytest.fixture
def webhook_server(store: StateStore, static_secrets: StaticSecrets) -> Iterator[WebhookServer]:
    app = create_app(WebhookReceiver(store=lambda: store, secrets=static_secrets))
    with serving(app, store) as server:
        yield server
