"""Run every check in order and return the rows; the CLI (`__main__`) only parses and prints."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from include.returns_sync.clients.oauth import TokenStore
from include.returns_sync.doctor import (
    airflow_checks,
    loop_checks,
    merchant_checks,
    whiplash_checks,
)
from include.returns_sync.doctor.checks import CheckResult, Status, check
from include.returns_sync.doctor.probes import (
    DoctorLoopHook,
    DoctorWhiplashHook,
    doctor_retry_policy,
)
from include.returns_sync.doctor.report import redact
from include.returns_sync.doctor.webhook_checks import loop_webhooks_row, whiplash_webhooks_row
from include.returns_sync.merchants import (
    DEFAULT_MERCHANT_ID,
    Merchant,
    MerchantsFile,
    MerchantsFileError,
    load_merchants,
)
from include.returns_sync.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_MERCHANT = DEFAULT_MERCHANT_ID
MERCHANTS_ENV = Settings.merchants.name


class UnknownMerchant(ValueError):
    """`--merchant` names a merchant this deployment does not have (or the file is unusable)."""


@dataclass(frozen=True)
class Options:
    merchant: str = DEFAULT_MERCHANT
    #: The Airflow API server's public base URL (as for webhooks.register), if known.
    webhook_base_url: str | None = None
    loop_conn_id: str = "loop_default"
    whiplash_conn_id: str = "whiplash_default"
    whiplash_customer_id: int | None = None
    #: The merchant's criteria file; None: RETURNS_SYNC_CRITERIA, else the shipped default.
    criteria: str | None = None
    #: Other merchants of the same Whiplash account (they need customer ids to stay apart).
    account_peers: tuple[str, ...] = ()


def options_for_merchant(
    merchant: str, webhook_base_url: str | None, environ: dict[str, str]
) -> Options:
    """The connections, customer id and criteria of `merchant` (any merchant of the merchants
    file named by `RETURNS_SYNC_MERCHANTS` in `environ`; without a file only `default`)."""
    path = Settings.from_env(environ).merchants
    if path is None:
        loaded = MerchantsFile(None, (Merchant.default(),))
    else:
        try:
            loaded = load_merchants(path)
        except MerchantsFileError as error:
            raise UnknownMerchant(f"the merchants file cannot be used: {error}") from None
    chosen = next((m for m in loaded.merchants if m.id == merchant), None)
    if chosen is None:
        problem = next((p for p in loaded.problems if p.merchant_id == merchant), None)
        if problem is not None:
            raise UnknownMerchant(
                f"merchant {merchant!r}: its entry in {path} is ignored ({problem}); fix it, "
                "then run the doctor again"
            )
        known = ", ".join(repr(m.id) for m in loaded.merchants)
        where = f"the merchants file {path}" if path else f"this deployment (no {MERCHANTS_ENV})"
        raise UnknownMerchant(f"unknown merchant {merchant!r} in {where}; configured: {known}")
    peers = tuple(
        m.id
        for m in loaded.merchants
        if m.whiplash_conn_id == chosen.whiplash_conn_id and m.id != chosen.id
    )
    return Options(
        merchant=chosen.id,
        webhook_base_url=webhook_base_url,
        loop_conn_id=chosen.loop_conn_id,
        whiplash_conn_id=chosen.whiplash_conn_id,
        whiplash_customer_id=chosen.whiplash_customer_id,
        criteria=chosen.criteria,
        account_peers=peers,
    )


def run_checks(options: Options) -> list[CheckResult]:
    """Every row of the report, secrets redacted. Never raises for a vendor's behaviour."""
    from include.returns_sync import runtime
    from include.returns_sync.deploy.pools import deployment_slots

    secrets: list[str] = []
    loop_conn, loop_resolved = airflow_checks.vendor_connection(
        options.loop_conn_id, ("password",), "Loop API key"
    )
    whiplash_conn, whiplash_resolved = airflow_checks.vendor_connection(
        options.whiplash_conn_id, ("login", "password"), "Whiplash OAuth client"
    )
    for resolved in (loop_resolved, whiplash_resolved):
        if resolved is not None:
            secrets.extend(resolved.secrets)
    state = airflow_checks.state_store()
    airflow_rows = [
        *merchant_checks.merchant_rows(
            criteria=options.criteria,
            whiplash_conn_id=options.whiplash_conn_id,
            whiplash_customer_id=options.whiplash_customer_id,
            account_peers=options.account_peers,
        ),
        loop_conn,
        whiplash_conn,
        airflow_checks.state_connection(),
        state.result,
        *airflow_checks.pool_rows(deployment_slots()),
    ]

    rows: list[CheckResult] = []
    policy = doctor_retry_policy()
    if loop_conn.status is Status.OK:
        loop_hook = DoctorLoopHook(options.loop_conn_id, retry_policy=policy)
        rows += _guarded(
            "loop.key",
            lambda: loop_checks.inspect_loop(
                loop_hook, configured_page_size=runtime.poll_settings().loop_page_size
            ),
        )
        rows += _after(
            rows,
            "loop.key",
            "loop.webhooks",
            lambda: [loop_webhooks_row(loop_hook, options.webhook_base_url, options.merchant)],
        )
    else:
        rows.append(_skipped("loop.key", f"{options.loop_conn_id} does not resolve"))
    if whiplash_conn.status is Status.OK:
        token_store, blocker = _token_store(state)
        whiplash_hook = DoctorWhiplashHook(
            options.whiplash_conn_id,
            token_store=token_store,
            retry_policy=policy,
            customer_id=options.whiplash_customer_id,
        )
        rows += _guarded(
            "whiplash.grant",
            lambda: whiplash_checks.inspect_whiplash(whiplash_hook, refresh_blocker=blocker),
        )
        # Only with a token in hand: a second grant attempt could rotate a refresh token the
        # first one refused to (see `_token_store`).
        rows += _after(
            rows,
            "whiplash.grant",
            "whiplash.webhooks",
            lambda: [whiplash_webhooks_row(whiplash_hook, options.webhook_base_url)],
        )
    else:
        rows.append(_skipped("whiplash.grant", f"{options.whiplash_conn_id} does not resolve"))
    if state.store is not None:
        state.store.dispose()
    return redact([*rows, *airflow_rows], secrets)


def _token_store(
    state: airflow_checks.StateStoreState,
) -> tuple[TokenStore | None, tuple[Status, str] | None]:
    """Where a rotated refresh token goes (as in the tasks), or why it cannot go anywhere."""
    from include.returns_sync import runtime
    from include.returns_sync.clients.whiplash import StateStoreTokenStore

    key = runtime.fernet_key()
    if not key:
        return None, (
            Status.BLOCKING,
            "no Fernet key (AIRFLOW__CORE__FERNET_KEY): the pipeline cannot persist a rotated "
            "refresh token either, so the second task would present a spent one",
        )
    if state.store is None or state.result.status is not Status.OK:
        return None, (
            Status.INCONCLUSIVE,
            "the state store is not at the code's revision, so a rotated refresh token could "
            "not be saved; run `python -m include.returns_sync.deploy.state_db upgrade`, then "
            "the doctor again",
        )
    return StateStoreTokenStore(state.store, key), None


def _guarded(name: str, run: Callable[[], list[CheckResult]]) -> list[CheckResult]:
    """A bug in one group of checks becomes a blocking row, not a traceback."""
    try:
        return run()
    except Exception as error:
        log.debug("doctor check %s crashed", name, exc_info=True)
        return [
            check(name, "The check runs to completion.")(
                f"the check itself failed: {type(error).__name__}: {error}",
                "not decided; report this as a bug in returns-sync",
                Status.BLOCKING,
            )
        ]


def _after(
    rows: list[CheckResult], needed: str, name: str, run: Callable[[], list[CheckResult]]
) -> list[CheckResult]:
    """Run `run` only when the row `needed` passed; otherwise one skipped row `name`."""
    if any(row.name == needed and row.status is Status.OK for row in rows):
        return _guarded(name, run)
    return [_skipped(name, f"{needed} did not pass")]


def _skipped(name: str, reason: str) -> CheckResult:
    return check(name, "Runs once the row it depends on passes.")(
        f"not checked: {reason}", "fix that row first", Status.SKIPPED
    )
