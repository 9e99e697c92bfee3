"""What the sandbox vendors and the state store hold, read from outside the pipeline.

The end-to-end tests and the merchants benchmark judge the pipeline by these reads, never by
what the pipeline says about itself: Whiplash's consumer returns over its HTTP API (every
customer's: no `X-Customer-ID`), and rows of the PostgreSQL state store over plain SQL.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def whiplash_consumer_returns(sandbox: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every consumer return of the sandbox's Whiplash account, paged; 429s are waited out."""
    token = requests.post(
        f"{sandbox['whiplash_url']}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox["whiplash_client_id"],
            "client_secret": sandbox["whiplash_client_secret"],
        },
        timeout=30,
    ).json()["access_token"]
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = requests.get(
            f"{sandbox['whiplash_url']}/api/v2/consumer_returns",
            params={"page": page, "per_page": 250},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        if answer.status_code == 429:
            time.sleep(1.0)
            continue
        answer.raise_for_status()
        rows = answer.json()
        if not rows:  # a strict sandbox caps per_page silently: only empty is the end
            return found
        found += rows
        page += 1


def loop_return_id(rma: Mapping[str, Any]) -> str:
    """The Loop return a Whiplash consumer return was created for (its originator)."""
    return str((rma.get("originator") or {}).get("original_id"))


def rmas_per_loop_return(sandbox: Mapping[str, Any]) -> Counter[str]:
    """How many consumer returns Whiplash holds per Loop return id."""
    return Counter(loop_return_id(rma) for rma in whiplash_consumer_returns(sandbox))


def state_rows(
    state_url: str, sql: str, params: Mapping[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """The rows of one query on the PostgreSQL state store at `state_url`."""
    engine = create_engine(make_url(state_url).set(drivername="postgresql+psycopg2"))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), dict(params or {})).all()]
    finally:
        engine.dispose()
