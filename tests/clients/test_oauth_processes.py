"""Refresh-token rotation across OS processes, against a sandbox that revokes a refresh token
once its successor is used (strict): six processes with one connection and one state store
(SQLite file, and PostgreSQL) all need a new token at the same moment, round after round.

Without the shared slot and its lease each process would refresh with the same token; the first
one to use its new token revokes the others' (strict), so some process meets `invalid_grant`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from include.returns_sync.clients.oauth import (
    GrantedToken,
    OAuthCredentials,
    OAuthSession,
    StateStoreTokenStore,
)
from include.returns_sync.sandbox import Sandbox
from include.returns_sync.state import InboxSource, StateStore, parse_connection
from include.returns_sync.state.engine import build_engine
from tests.clients.conftest import set_connection
from tests.clients.oauth_workers import run_workers
from tests.support.postgres import pg_admin, pg_url  # noqa: F401 (fixtures)

WORKERS = 6
ROUNDS = 3
TTL_SECONDS = 3  # the sandbox's access-token lifetime
MARGIN_SECONDS = 0.5  # renewed 2.5 s after the grant ...
PAUSE_SECONDS = 2.7  # ... and every round starts later than that after the previous one


@pytest.fixture
def strict_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(seed=0, token_ttl_seconds=TTL_SECONDS, strict=True) as sandbox:
        set_connection(
            monkeypatch,
            "whiplash_default",
            conn_type="whiplash",
            host=sandbox.whiplash_url,
            login=sandbox.whiplash_client_id,
            password=sandbox.whiplash_client_secret,
            extra={"refresh_token": "sandbox-refresh-0"},
        )
        yield sandbox


def _rotate_together(sandbox: Sandbox, state_url: str) -> None:
    store = StateStore.from_url(state_url)
    store.migrate()
    key = Fernet.generate_key().decode()
    try:
        reports = run_workers(
            state_url,
            key,
            workers=WORKERS,
            rounds=ROUNDS,
            pause_seconds=PAUSE_SECONDS,
            margin=MARGIN_SECONDS,
        )
        errors = [error for _pid, _tokens, errs, _grants in reports for error in errs]
        assert errors == []
        oauth = sandbox.stats()["whiplash"]["oauth"]
        assert oauth["invalid_grant"] == 0
        # one refresh per round, whichever process did it; everyone else adopted it
        assert oauth["grants"] == {"refresh_token": ROUNDS}
        assert sum(grants for *_rest, grants in reports) == ROUNDS
        per_round = [{tokens[i] for _pid, tokens, *_ in reports} for i in range(ROUNDS)]
        assert all(len(tokens) == 1 and None not in tokens for tokens in per_round)
        assert "401" not in sandbox.stats()["whiplash"]["statuses"]
        slot = store.read_oauth_slot("whiplash_default", key)
        assert slot is not None and slot.refresh_token == sandbox.whiplash.current_refresh_token
    finally:
        store.dispose()


def test_processes_sharing_a_sqlite_store_rotate_without_invalid_grant(
    strict_sandbox: Sandbox, tmp_path: Path
) -> None:
    _rotate_together(strict_sandbox, f"sqlite:///{tmp_path / 'state.db'}")


@pytest.mark.postgres
def test_processes_sharing_a_postgres_store_rotate_without_invalid_grant(
    strict_sandbox: Sandbox,
    pg_url: str,  # noqa: F811
) -> None:
    _rotate_together(strict_sandbox, pg_url)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_refresh_in_flight_holds_no_transaction_so_the_inbox_stays_writable(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    store = StateStore.from_url(url)
    # A short busy timeout: a write lock held across the HTTP call fails this write fast.
    inbox = StateStore(build_engine(parse_connection(url), sqlite_busy_timeout_s=2))
    store.migrate()
    in_flight, written = threading.Event(), threading.Event()

    def slow_token_endpoint(form: Mapping[str, str]) -> GrantedToken:
        in_flight.set()
        # The webhook endpoint stores a delivery while the refresh waits for its answer.
        assert written.wait(10), "the inbox write was blocked by the refresh"
        return GrantedToken("access-1", 7200, "refresh-1")

    def store_a_delivery() -> None:
        assert in_flight.wait(10)
        inbox.inbox_put(
            InboxSource.WHIPLASH, "delivery-1", "consumer_return.completed", "1", {"id": 1}
        )
        written.set()

    try:
        key = Fernet.generate_key().decode()
        credentials = OAuthCredentials("whiplash_default", "http://x/oauth/token", "c", "s", "r0")
        session = OAuthSession(
            credentials, slow_token_endpoint, token_store=StateStoreTokenStore(store, key)
        )
        writer = threading.Thread(target=store_a_delivery)
        writer.start()
        assert session.bearer_token() == "access-1"
        writer.join(10)
        assert written.is_set()
    finally:
        store.dispose()
        inbox.dispose()
