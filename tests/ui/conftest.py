"""Fixtures for the views' fast tests: the app over HTTP (TestClient) with Airflow's real token
checks, a test auth manager (tests/ui/standin.py) and the stand-in data."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.ui.standin import StandInData

MERCHANTS = ["default", "acme"]
# One secret per session: Airflow caches its token validator on the auth manager class.
JWT_SECRET = secrets.token_urlsafe(32)


@pytest.fixture
def auth_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Airflow's auth manager set up as in the API server, with a per-run JWT secret."""
    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER", "tests.ui.standin.MerchantScopedAuthManager")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    from airflow.api_fastapi import app as airflow_app

    airflow_app.purge_cached_app()
    manager = airflow_app.create_auth_manager()
    yield manager
    airflow_app.purge_cached_app()


@pytest.fixture
def token(auth_manager: Any) -> Callable[..., str]:
    """A signed Airflow session token for a user name and SimpleAuthManager role."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    def make(username: str = "viewer", role: str | None = "viewer") -> str:
        user = SimpleAuthManagerUser(username=username, role=role)
        return str(auth_manager.generate_jwt(user))

    return make


@pytest.fixture
def data() -> StandInData:
    return StandInData()


@pytest.fixture
def client(auth_manager: Any, data: StandInData) -> Iterator[TestClient]:
    from include.returns_sync.views.app import create_app
    from include.returns_sync.views.auth import Authorizer

    app = create_app(data, Authorizer(merchant_ids=lambda: MERCHANTS))
    with TestClient(app, follow_redirects=False) as http:
        yield http
