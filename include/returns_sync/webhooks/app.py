"""The webhook FastAPI app: `POST /webhooks/loop[/<merchant id>]` and `POST /webhooks/whiplash`.

The plugin mounts it at `/returns-sync` in the Airflow API server, which applies no Airflow
authentication to plugin apps: every request is authenticated here, by its signature.

Per request, in this order: body over 1 MiB -> 413 (checked on Content-Length, then while
reading, so a large body is never buffered); merchants file unreadable, or a Loop URL naming a
merchant whose entry in it is invalid -> 503 (the vendor retries until it is fixed); a Loop URL
naming a merchant we do not serve -> 404 (nothing stored); no usable secret -> 503 (misconfiguration,
the vendor retries); missing or wrong signature -> 401; not a payload we accept -> 400 with the
reason; storing fails -> 503; otherwise the event is in the state store, with its merchant
(`routing.py`), and the answer is 200 (`accepted`, `duplicate` or `ignored` when it needs no
work) naming that merchant. Logs carry the vendor, merchant, event, resource id and inbox id;
never a secret, a header value or the body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from include.returns_sync.merchants import DEFAULT_MERCHANT_ID
from include.returns_sync.webhooks.inbox import InboxStore, accept
from include.returns_sync.webhooks.payloads import (
    LOOP,
    WHIPLASH,
    PayloadError,
    WebhookEvent,
    parse_loop,
    parse_whiplash,
    whiplash_customer_id,
)
from include.returns_sync.webhooks.routing import (
    MerchantLike,
    MerchantsUnavailable,
    UnknownMerchant,
    WhiplashAccount,
    configured_merchants,
    ignored_merchant_ids,
    merchant_by_id,
    route_whiplash,
    whiplash_accounts,
)
from include.returns_sync.webhooks.secrets import (
    ConnectionSecrets,
    SecretSource,
    SecretsUnavailable,
    SigningKeys,
)
from include.returns_sync.webhooks.signatures import (
    LOOP_SIGNATURE_HEADER,
    WHIPLASH_SIGNATURE_HEADER,
    verify_loop,
    verify_whiplash,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_HEADERS = {LOOP: LOOP_SIGNATURE_HEADER, WHIPLASH: WHIPLASH_SIGNATURE_HEADER}
_PARSERS: dict[str, Callable[[bytes], WebhookEvent]] = {LOOP: parse_loop, WHIPLASH: parse_whiplash}


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any] = field(default_factory=dict)


class _Refused(Exception):
    """A delivery answered before it is stored (404, 401, 400, 503 with a `detail`)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.reply = Reply(status, {"detail": detail})


@dataclass(frozen=True)
class Signer:
    """A connection whose secret may sign a delivery, and the merchants it stands for."""

    conn_id: str
    merchants: tuple[MerchantLike, ...]


def _default_store() -> InboxStore:
    """The whole store (every merchant): the endpoint names each event's merchant itself."""
    from include.returns_sync import runtime

    store: InboxStore = runtime.shared_state_store()
    return store


class WebhookReceiver:
    """Everything an endpoint does once the body is read: verify, validate, route, store.

    :param store: returns the (unscoped) state store (called per request; `runtime` caches).
    :param secrets: where the signing secrets come from (default: the Airflow connections).
    :param merchants: returns the configured merchants in file order (default: the merchants
        file, `RETURNS_SYNC_MERCHANTS`; without one, the single merchant `default`).
    """

    def __init__(
        self,
        store: Callable[[], InboxStore] = _default_store,
        secrets: SecretSource | None = None,
        merchants: Callable[[], Sequence[MerchantLike]] = configured_merchants,
        ignored: Callable[[], Collection[str]] = ignored_merchant_ids,
    ) -> None:
        self._store = store
        self._secrets = secrets if secrets is not None else ConnectionSecrets()
        self._merchants = merchants
        self._ignored = ignored

    def receive(
        self, source: str, body: bytes, signature: str | None, merchant_id: str | None = None
    ) -> Reply:
        """The answer to one delivery from `source` ("loop" or "whiplash"); `merchant_id` is
        the merchant a Loop URL names (None: the bare `/webhooks/loop`, merchant `default`)."""
        try:
            signers = self._signers(source, body, signature, self._candidates(source, merchant_id))
            try:
                event = _PARSERS[source](body)
            except PayloadError as exc:
                log.warning("Rejected %s webhook: %s", source, exc.reason)
                raise _Refused(400, exc.reason) from None
            return self._store_event(event, signers)
        except _Refused as refused:
            return refused.reply

    def _candidates(self, source: str, merchant_id: str | None) -> list[Signer]:
        """Who may have signed: the merchant the Loop URL names, or every Whiplash account."""
        try:
            merchants = self._merchants()
        except MerchantsUnavailable as exc:
            log.error("Cannot route %s webhooks: %s", source, exc)
            raise _Refused(503, "the merchants file cannot be read; retry later") from None
        if source == WHIPLASH:
            return [Signer(a.conn_id, a.merchants) for a in whiplash_accounts(merchants)]
        wanted = merchant_id or DEFAULT_MERCHANT_ID
        try:
            merchant = merchant_by_id(wanted, merchants)
        except UnknownMerchant as exc:
            if wanted in self._ignored():  # a bad entry: keep the vendor retrying until fixed
                log.error(
                    "Loop webhook for merchant %r: its merchants-file entry is invalid", wanted
                )
                raise _Refused(503, "this merchant is not available; retry later") from None
            log.warning("Rejected Loop webhook: %s", exc)
            raise _Refused(404, str(exc)) from None
        return [Signer(merchant.loop_conn_id, (merchant,))]

    def _signers(
        self, source: str, body: bytes, signature: str | None, candidates: list[Signer]
    ) -> list[Signer]:
        """The candidates whose secret made `signature` (none: 401; no secret at all: 503)."""
        header = SIGNATURE_HEADERS[source]
        keyed: list[tuple[Signer, SigningKeys]] = []
        problems: list[str] = []
        for candidate in candidates:
            try:
                keyed.append((candidate, self._secrets.keys(source, conn_id=candidate.conn_id)))
            except SecretsUnavailable as exc:
                problems.append(str(exc))
        if not keyed:
            log.error("Cannot verify %s webhooks: %s", source, "; ".join(problems))
            raise _Refused(503, f"{source} webhook verification is not configured")
        if problems:  # another account's secret is missing: it cannot sign, the rest still can
            log.error("Some %s webhook secrets are unavailable: %s", source, "; ".join(problems))
        if not signature:
            log.warning("Rejected %s webhook: no %s header", source, header)
            raise _Refused(401, f"missing {header} header")
        signers = [
            candidate
            for candidate, keys in keyed
            if self._verified(source, body, signature, candidate.conn_id, keys)
        ]
        if not signers:
            log.warning("Rejected %s webhook: %s does not match the body", source, header)
            raise _Refused(401, f"{header} does not match the request body")
        return signers

    def _store_event(self, event: WebhookEvent, signers: list[Signer]) -> Reply:
        """Store `event` as its merchant's (the Loop URL's, or Whiplash's routing)."""
        try:
            store = self._store()
            if event.source == WHIPLASH:
                accounts = [WhiplashAccount(s.conn_id, s.merchants) for s in signers]
                route = route_whiplash(
                    accounts, event.resource_id, whiplash_customer_id(event), store
                )
                owner = route.merchant_id
                log.info(
                    "Whiplash %s for %s routed to %s (%s)",
                    event.topic,
                    event.resource_id,
                    owner,
                    route.reason,
                )
            else:
                owner = signers[0].merchants[0].id
            accepted = accept(store, event, merchant=owner)
        except Exception as exc:  # database down or locked: the vendor retries
            # The type only: a database error's text can carry the statement's parameters.
            log.error(
                "Could not store %s webhook %s: %s", event.source, event.topic, type(exc).__name__
            )
            return Reply(503, {"detail": "the event could not be stored; retry later"})
        return Reply(
            200,
            {
                "status": accepted.outcome,
                "inbox_id": accepted.inbox_id,
                "merchant": owner,
                **({"reason": accepted.no_work_reason} if accepted.no_work_reason else {}),
            },
        )

    def _verified(
        self, source: str, body: bytes, signature: str, conn_id: str, keys: SigningKeys
    ) -> bool:
        if _check(source, body, signature, keys):
            return True
        try:  # the secret may just have been rotated: re-read once, then decide
            fresh = self._secrets.keys(source, conn_id=conn_id, refresh=True)
        except SecretsUnavailable:
            return False
        return fresh != keys and _check(source, body, signature, fresh)


def _check(source: str, body: bytes, signature: str, keys: SigningKeys) -> bool:
    if source == LOOP:
        return verify_loop(body, signature, keys.secrets)
    return verify_whiplash(body, signature, keys.secrets, keys.client_id)


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (BodyTooLarge) anything over `limit` bytes without buffering it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    receiver: WebhookReceiver | None = None, *, max_body_bytes: int = MAX_BODY_BYTES
) -> FastAPI:
    """The app the plugin mounts (no docs or schema routes: nothing to browse, less to probe)."""
    handler = receiver if receiver is not None else WebhookReceiver()
    app = FastAPI(title="returns-sync webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    async def deliver(
        source: str, request: Request, merchant_id: str | None = None
    ) -> JSONResponse:
        try:
            body = await read_body(request, max_body_bytes)
        except BodyTooLarge:
            log.warning("Rejected %s webhook: body over %d bytes", source, max_body_bytes)
            return JSONResponse(
                {"detail": f"request body exceeds {max_body_bytes} bytes"}, status_code=413
            )
        signature = request.headers.get(SIGNATURE_HEADERS[source])
        reply = await run_in_threadpool(handler.receive, source, body, signature, merchant_id)
        return JSONResponse(reply.body, status_code=reply.status)

    @app.post("/webhooks/loop")
    async def loop_webhook(request: Request) -> JSONResponse:
        """A Loop webhook of the merchant `default` (`X-Loop-Signature`: base64 HMAC-SHA256
        of the body with that merchant's Loop `webhook_secret`)."""
        return await deliver(LOOP, request)

    @app.post("/webhooks/loop/{merchant_id}")
    async def merchant_loop_webhook(merchant_id: str, request: Request) -> JSONResponse:
        """A Loop webhook of merchant `merchant_id`, signed with that merchant's secret; an id
        the merchants file does not configure is a 404 and nothing is stored."""
        return await deliver(LOOP, request, merchant_id)

    @app.post("/webhooks/whiplash")
    async def whiplash_webhook(request: Request) -> JSONResponse:
        """A Whiplash webhook (`X-WHIPLASH-SIGNATURE`: hex HMAC-SHA256 with the webhook secret
        or the client secret). `consumer_return.*` events are ours; any other well-signed,
        well-named event is answered 200 `ignored` (a 4xx counts toward Whiplash disabling
        the subscription) and recorded in the inbox as done with its reason."""
        return await deliver(WHIPLASH, request)

    return app
