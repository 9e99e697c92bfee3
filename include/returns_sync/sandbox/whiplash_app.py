"""The Whiplash simulator's HTTP layer: FastAPI routes over a `WhiplashBackend`.

Thin on purpose (moto's `responses.py`): parse the request, call the backend, render the answer
the way Whiplash does: bare JSON arrays for lists, `{"message": ...}` for API errors, Doorkeeper's
`{"error": ...}` on the token endpoint. `X-Customer-ID` becomes the customer scope every backend
call gets (`WhiplashBackend.customer_scope`, read once per request). The app carries no chaos; the orchestrator wraps it with
`chaos.with_chaos(app, vendor="whiplash", ...)` when it wants rate limits and faults.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from include.returns_sync.sandbox.asgi import UNSENDABLE_STATUS
from include.returns_sync.sandbox.whiplash_backend import ApiCall, WhiplashBackend
from include.returns_sync.sandbox.whiplash_oauth import InsufficientScope, OAuthError, TokenRejected
from include.returns_sync.sandbox.whiplash_records import WhiplashApiError
from include.returns_sync.sandbox.whiplash_search import (
    MAX_PER_PAGE,
    STRICT_MAX_PER_PAGE,
    SearchError,
    parse_page,
    select_fields,
)

API = "/api/v2"


def build_whiplash_app(backend: WhiplashBackend) -> FastAPI:
    """A FastAPI app serving the Whiplash V2 subset we use, over `backend`'s state."""
    app = FastAPI(title="Whiplash sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    _install_error_handlers(app)
    _install_call_log(app, backend)
    app.add_api_route("/oauth/token", _token_endpoint(backend), methods=["POST"])
    app.include_router(_api_router(backend))
    return app


def _api_router(backend: WhiplashBackend) -> APIRouter:
    async def authorized(request: Request) -> None:
        write = request.method not in ("GET", "HEAD", "OPTIONS")
        backend.tokens.check(request.headers.get("authorization"), write=write)
        backend.last_customer_id = request.headers.get("x-customer-id", backend.last_customer_id)
        backend.last_shop_id = request.headers.get("x-shop-id", backend.last_shop_id)
        returns_write = write and "/consumer_returns" in request.url.path
        request.state.customer = backend.customer_scope(
            request.headers.get("x-customer-id"), write=returns_write
        )

    router = APIRouter(prefix=API, dependencies=[Depends(authorized)])

    def listing(resource: str) -> Callable[[Request], Awaitable[Response]]:
        async def list_endpoint(request: Request) -> Response:
            params = request.query_params
            page = parse_page(params.get("page"), params.get("per_page"), _max_per_page(backend))
            rows = backend.search(
                resource, params.get("search"), params.get("sort"), page, _customer(request)
            )
            body = [select_fields(row, params.get("fields")) for row in rows]
            headers = _paging_headers(request, backend, resource, page.number, page.size)
            return JSONResponse(body, headers=headers)

        return list_endpoint

    def counting(resource: str) -> Callable[[Request], Awaitable[dict[str, int]]]:
        async def count_endpoint(request: Request) -> dict[str, int]:
            search = request.query_params.get("search")
            return {"count": backend.count(resource, search, _customer(request))}

        return count_endpoint

    def fetching(resource: str) -> Callable[[int, Request], Awaitable[dict[str, Any]]]:
        async def get_endpoint(id: int, request: Request) -> dict[str, Any]:
            return backend.get(resource, id, _customer(request))

        return get_endpoint

    for resource in ("items", "orders", "consumer_returns", "notification_subscriptions"):
        router.add_api_route(f"/{resource}/count", counting(resource), methods=["GET"])
    for resource in (
        "items",
        "orders",
        "consumer_returns",
        "notification_events",
        "notification_subscriptions",
    ):
        router.add_api_route(f"/{resource}", listing(resource), methods=["GET"])
        router.add_api_route(f"/{resource}/{{id}}", fetching(resource), methods=["GET"])

    @router.post("/consumer_returns", status_code=201)
    async def create_consumer_return(request: Request) -> dict[str, Any]:
        return backend.create_consumer_return(await _json_object(request), _customer(request))

    @router.put("/consumer_returns/{id}")
    async def update_consumer_return(id: int, request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        return backend.update_consumer_return(id, body, _customer(request))

    @router.delete("/consumer_returns/{id}", status_code=204)
    async def delete_consumer_return(id: int, request: Request) -> Response:
        backend.delete_consumer_return(id, _customer(request))
        return Response(status_code=204)

    @router.put("/simulate/consumer_returns/{consumer_return_id}/processing")
    async def simulate_processing(consumer_return_id: int, request: Request) -> dict[str, Any]:
        body = await _json_object(request, allow_empty=True)
        finalize = body.get("finalize", False)
        if not isinstance(finalize, bool):
            raise WhiplashApiError(
                400, f"finalize is invalid: expected true or false, got {finalize!r}"
            )
        return backend.simulate_processing(consumer_return_id, finalize, _customer(request))

    @router.get("/originators")
    async def list_originators(request: Request) -> Response:
        params = request.query_params
        originated_type = params.get("originated_type")
        if not originated_type:
            raise WhiplashApiError(400, "originated_type is missing")
        page = parse_page(params.get("page"), params.get("per_page"), _max_per_page(backend))
        rows = backend.originators(
            originated_type, params.get("search"), params.get("sort"), page, _customer(request)
        )
        return JSONResponse(rows)

    @router.post("/notification_subscriptions", status_code=201)
    async def create_subscription(request: Request) -> dict[str, Any]:
        return backend.create_subscription(await _json_object(request), _customer(request))

    @router.put("/notification_subscriptions/{id}")
    async def update_subscription(id: int, request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        return backend.update_subscription(id, body, _customer(request))

    @router.delete("/notification_subscriptions/{id}", status_code=204)
    async def delete_subscription(id: int, request: Request) -> Response:
        backend.delete_subscription(id, _customer(request))
        return Response(status_code=204)

    @router.get("/notification_subscriptions/{id}/test")
    async def test_subscription(id: int, request: Request) -> dict[str, Any]:
        return backend.test_subscription(id, _customer(request))

    return router


def _customer(request: Request) -> int | None:
    """The customer scope `authorized` read from `X-Customer-ID` (None = every customer)."""
    customer: int | None = request.state.customer
    return customer


def _max_per_page(backend: WhiplashBackend) -> int:
    """The silent `per_page` cap: 250 lenient, 50 strict (see `strict.py`)."""
    return STRICT_MAX_PER_PAGE if backend.strict else MAX_PER_PAGE


def _token_endpoint(backend: WhiplashBackend) -> Callable[[Request], Awaitable[Response]]:
    async def token(request: Request) -> Response:
        params: dict[str, Any] = dict(request.query_params)
        raw = await request.body()
        if "json" in request.headers.get("content-type", ""):
            try:
                decoded = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                decoded = None
            if not isinstance(decoded, dict):
                body = OAuthError(400, "invalid_request", "The request body is not a JSON object.")
                return JSONResponse(body.body(), status_code=400)
            params.update(decoded)
        else:
            params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        params.update(_basic_credentials(request.headers.get("authorization")))
        try:
            answer = backend.tokens.grant(params)
        except OAuthError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=_no_store())
        if backend.tokens.take_lost_answer():
            # Granted (and rotated), but the client never hears back: the connection drops.
            return Response(status_code=UNSENDABLE_STATUS)
        return JSONResponse(answer, headers=_no_store())

    return token


def _basic_credentials(header: str | None) -> dict[str, str]:
    """client_secret_basic: `Authorization: Basic base64(client_id:client_secret)`."""
    if not header or not header.lower().startswith("basic "):
        return {}
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return {}
    client_id, _, client_secret = decoded.partition(":")
    return {"client_id": client_id, "client_secret": client_secret}


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def _json_object(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip() and allow_empty:
        return {}
    try:
        decoded = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WhiplashApiError(
            400, f"There was a problem in the JSON you submitted: {exc}"
        ) from exc
    if not isinstance(decoded, dict):
        raise WhiplashApiError(400, "The request body must be a JSON object")
    return decoded


def _paging_headers(
    request: Request, backend: WhiplashBackend, resource: str, page: int, per_page: int
) -> dict[str, str]:
    """`page_total` -> `Total`; `page_links` -> `Link` (header names unconfirmed by Whiplash).

    Lenient: every list also says its page size in `Per-Page`. Strict: no page-size header at
    all (Whiplash promises none), so a capped page looks like any other page.
    """
    params = request.query_params
    headers: dict[str, str] = {} if backend.strict else {"Per-Page": str(per_page)}
    wants_total = params.get("page_total", "").lower() == "true"
    wants_links = params.get("page_links", "").lower() == "true"
    if not (wants_total or wants_links):
        return headers
    total = backend.count(resource, params.get("search"), _customer(request))
    if wants_total:
        headers["Total"] = str(total)
    if wants_links:
        last = max((total + per_page - 1) // per_page, 1)
        links = []
        for rel, number in (("first", 1), ("prev", page - 1), ("next", page + 1), ("last", last)):
            if 1 <= number <= last:
                query = urlencode({**dict(params), "page": number})
                links.append(f'<{request.url.replace(query=query)}>; rel="{rel}"')
        headers["Link"] = ", ".join(links)
    return headers


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WhiplashApiError)
        return JSONResponse({"message": exc.message}, status_code=exc.status)

    async def search_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"message": str(exc)}, status_code=400)

    async def token_rejected(request: Request, exc: Exception) -> Response:
        challenge = f'Bearer realm="Doorkeeper", error="invalid_token", error_description="{exc}"'
        return JSONResponse(
            {"message": str(exc)}, status_code=401, headers={"WWW-Authenticate": challenge}
        )

    async def insufficient_scope(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InsufficientScope)
        challenge = (
            'Bearer realm="Doorkeeper", error="insufficient_scope", '
            f'error_description="{exc}", scope="app_manage"'
        )
        return JSONResponse(exc.body(), status_code=403, headers={"WWW-Authenticate": challenge})

    async def bad_parameter(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        names = [str(error["loc"][-1]) for error in exc.errors()] or ["request"]
        return JSONResponse({"message": f"{', '.join(names)} is invalid"}, status_code=400)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"message": str(exc.detail)}, status_code=exc.status_code)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(WhiplashApiError, api_error)
    app.add_exception_handler(SearchError, search_error)
    app.add_exception_handler(TokenRejected, token_rejected)
    app.add_exception_handler(InsufficientScope, insufficient_scope)
    app.add_exception_handler(RequestValidationError, bad_parameter)


def _install_call_log(app: FastAPI, backend: WhiplashBackend) -> None:
    @app.middleware("http")
    async def record_call(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        backend.call_log.append(
            ApiCall(
                request.method,
                request.url.path,
                request.url.query,
                response.status_code,
                backend.clock.now(),
            )
        )
        return response
