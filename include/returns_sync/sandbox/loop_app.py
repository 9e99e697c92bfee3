"""The Loop simulator's HTTP layer: FastAPI routes over a `LoopBackend`.

Thin on purpose (moto's `responses.py`): check `X-Authorization`, parse the request, call the
backend and render its answer; a `LoopError` becomes its status and exact body. Served over
several shops (a mapping API key -> `LoopBackend`, one per merchant), the key picks the shop:
a request only ever sees and changes that shop's returns, notes and subscriptions. The same routes
are served under /api/v1 and /api/2026-07. The app carries no chaos; the orchestrator wraps it
with `chaos.with_chaos` when it wants rate limits and faults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from include.returns_sync.sandbox.corruption import HtmlErrorPage
from include.returns_sync.sandbox.loop_backend import LoopBackend
from include.returns_sync.sandbox.loop_listing import _list_query, _window
from include.returns_sync.sandbox.loop_records import NOT_FOUND, LoopError
from include.returns_sync.sandbox.loop_render import strict_view

API_PREFIXES = ("/api/v1", "/api/2026-07")

UNAUTHORIZED = {
    "error": {"code": "401", "http_code": "GEN-UNAUTHORIZED", "message": "Unauthorized."}
}


def build_loop_app(backends: LoopBackend | Mapping[str, LoopBackend]) -> FastAPI:
    """The Loop API over one shop, or over several (API key -> shop; the mapping is read on
    every request, so shops added later are served), under /api/v1 and /api/2026-07."""
    shops = backends if isinstance(backends, Mapping) else None
    app = FastAPI(
        title="Loop Returns API (sandbox)", docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.exception_handler(LoopError)
    async def loop_error(_: Request, exc: LoopError) -> Response:
        return JSONResponse(exc.body, status_code=exc.status)

    def authorized(request: Request) -> LoopBackend:
        key = request.headers.get("x-authorization")
        if shops is None:
            assert isinstance(backends, LoopBackend)
            if key == backends.api_key:
                return backends
        elif key is not None and key in shops:
            return shops[key]
        raise LoopError(401, UNAUTHORIZED)

    # A default, not an Annotated alias: this module's annotations are strings, and FastAPI
    # resolves them in the module's namespace, where a local alias does not exist.
    shop = Depends(authorized)
    router = APIRouter()

    @router.get("/warehouse/return/list")
    def detailed_list(request: Request, backend: LoopBackend = shop) -> Response:
        query = _list_query(request.query_params, backend.clock.now())
        returns, next_cursor, prev_cursor = backend.list_returns(query)
        if backend.strict:  # line items say outcome "default"; the label fields stay
            returns = [strict_view(view, details=False) for view in returns]
        if not query.paginate:
            return JSONResponse(returns)
        base = str(request.base_url).rstrip("/") + "/api/v1/warehouse/return/list?"

        def page_url(cursor: str | None) -> str | None:
            if cursor is None:
                return None
            # Loop's quirk: no `from`, `state` or `paginate` in the URL it hands back.
            keep = {"to": query.raw_to, "filter": query.column, "pageSize": str(query.page_size)}
            return base + urlencode({**keep, "cursor": cursor})

        return JSONResponse(
            {
                "returns": returns,
                "nextPageUrl": page_url(next_cursor),
                "previousPageUrl": page_url(prev_cursor),
            }
        )

    @router.get("/warehouse/return/details")
    def details(request: Request, backend: LoopBackend = shop) -> Response:
        body = backend.details(request.query_params)
        if isinstance(body, HtmlErrorPage):
            return Response(body.body, status_code=body.status, media_type="text/html")
        if backend.strict:  # no label fields (as Loop's example), line items outcome "default"
            body = strict_view(body, details=True)
        return JSONResponse(body)

    @router.get("/warehouse/reporting/asn")
    def asn(request: Request, backend: LoopBackend = shop) -> Response:
        start, end = _window(request.query_params, backend.clock.now())
        return JSONResponse(backend.asn_rows(start, end))

    @router.post("/warehouse/return/{return_id}/{action}")
    async def action(
        return_id: str, action: str, request: Request, backend: LoopBackend = shop
    ) -> Response:
        if action == "note":
            content = await _json_body(request)
            text = content.get("content") if isinstance(content, dict) else None
            return JSONResponse(backend.add_note(return_id, text))
        if action not in ("process", "flag", "cancel", "close"):
            raise LoopError(404, NOT_FOUND)
        return JSONResponse(backend.act(return_id, action))

    @router.post("/dispositioning/assess")
    async def assess_dispositions(request: Request, backend: LoopBackend = shop) -> Response:
        return JSONResponse(backend.assess_dispositions(await _json_body(request)))

    @router.get("/warehouse/return/{return_id}/notes")
    def notes(return_id: str, backend: LoopBackend = shop) -> Response:
        return JSONResponse(backend.get_notes(return_id))

    @router.get("/webhooks")
    def list_webhooks(backend: LoopBackend = shop) -> Response:
        return JSONResponse({"webhooks": backend.subscriptions()})

    @router.post("/webhooks")
    async def create_webhook(request: Request, backend: LoopBackend = shop) -> Response:
        created = backend.create_subscription(await _json_body(request))
        return JSONResponse(created, status_code=201)

    @router.put("/webhooks/{webhook_id}")
    async def update_webhook(
        webhook_id: str, request: Request, backend: LoopBackend = shop
    ) -> Response:
        backend.update_subscription(webhook_id, await _json_body(request))
        return Response(status_code=204)

    @router.delete("/webhooks/{webhook_id}")
    def delete_webhook(webhook_id: str, backend: LoopBackend = shop) -> Response:
        backend.delete_subscription(webhook_id)
        return Response(status_code=204)

    for prefix in API_PREFIXES:
        app.include_router(router, prefix=prefix)
    return app


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise LoopError(422, {"message": "The body must be valid JSON.", "errors": {}}) from exc
