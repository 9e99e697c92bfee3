"""The Returns views: a read-only FastAPI app the plugin mounts in the Airflow API server.

Pages (server-rendered HTML, shown by Airflow's UI in its plugin frame):

* `/` Search: exact, case-insensitive, on a Loop return id, order name, tracking number or
  Whiplash consumer return id; one visible hit goes straight to its timeline.
* `/returns/{merchant}/{loop_return_id}` the timeline of one return.
* `/queues` needs attention, flagged, backfill misses: counts, oldest age, the returns.
* `/trend` the last 30 days as a chart (Chart.js, shipped under static/vendor: no CDN).
* `/runs/{dag_id}/{run_id}` the "Returns sync" tab of a DAG run; says so when it is not ours.

Why server-rendered: every vendor value (SKUs, notes, names) goes through Jinja2 with autoescape
on for every template, and the only script data (the trend) is embedded with `tojson`, which
escapes `<`, `>` and `&`; a strict Content-Security-Policy (scripts from this app only, no inline
script) stops anything that slipped through from running. Only GET routes exist (read-only),
and nothing here reads a connection's secret: the data are the state store's records.

Authentication and per-merchant authorization: `auth.py` (Airflow's `get_user` and auth
manager). Every page needs a logged-in user (none: 401 before any data is read); only `/static`
(our CSS, `trend.js`, Chart.js) is served without a session, as it holds no data. The data come from `views/queries.py` through `ViewData`; tests pass a stand-in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool

from include.returns_sync.views.auth import (
    Authorizer,
    Viewer,
    merchant_of_dag,
    visible,
)

HERE = Path(__file__).parent
MOUNT = "/returns-sync-ui"  # where plugins/returns_sync_views.py mounts this app
TREND_DAYS = 30
MAX_QUERY_CHARS = 200
SECURITY_HEADERS = {
    # Only this app's own files: no CDN, no inline script, no plugin frames of other origins.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class ViewData(Protocol):
    """What the pages read; the production implementation is `StoreViewData`."""

    def search(self, q: str) -> Sequence[Any]: ...
    def timeline(self, merchant: str, loop_return_id: str) -> Any: ...
    def queues(self, merchant: str | None) -> Any: ...
    def trend(self, merchant: str | None, days: int) -> Sequence[Any]: ...
    def run_summary(self, dag_id: str, run_id: str) -> Any: ...


class StoreViewData:
    """`views/queries.py` over the deployment's state store (`returns_sync_db`)."""

    def __init__(self, store: Callable[[], Any] | None = None) -> None:
        self._store = store

    def _s(self) -> Any:
        if self._store is not None:
            return self._store()
        from include.returns_sync import runtime

        return runtime.state_store()

    @staticmethod
    def _q() -> Any:
        from include.returns_sync.views import queries  # SQLAlchemy + models: on first use

        return queries

    def search(self, q: str) -> Sequence[Any]:
        result: Sequence[Any] = self._q().search(self._s(), q)
        return result

    def timeline(self, merchant: str, loop_return_id: str) -> Any:
        return self._q().timeline(self._s(), merchant, loop_return_id)

    def queues(self, merchant: str | None) -> Any:
        return self._q().queues(self._s(), merchant)

    def trend(self, merchant: str | None, days: int) -> Sequence[Any]:
        result: Sequence[Any] = self._q().trend(self._s(), merchant, days=days)
        return result

    def run_summary(self, dag_id: str, run_id: str) -> Any:
        return self._q().run_summary(self._s(), dag_id, run_id)


def plain(value: Any) -> Any:
    """A query result as plain JSON-able data (pydantic model, dataclass, or already plain)."""
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return json.loads(json.dumps(asdict(value), default=str))
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- template helpers


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def duration(seconds: Any) -> str:
    """`3 d 4 h`, `2 h 5 min`, `40 s`: how people read an age or a delay."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "–"
    s = int(float(seconds))
    if s < 0:
        s = 0
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def age(value: Any, now: datetime | None = None) -> str:
    """How long ago a timestamp was."""
    when = _parse_time(value)
    if when is None:
        return "–"
    return duration(((now or datetime.now(UTC)) - when).total_seconds())


def when(value: Any) -> str:
    """A timestamp as `2026-12-06 13:05:09 UTC`."""
    moment = _parse_time(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "–"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name: vendor data are untrusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(age=age, when=when, duration=duration, urlpart=lambda v: quote(str(v), ""))
    return env


# --------------------------------------------------------------------------- the app


def create_app(data: ViewData | None = None, authorizer: Authorizer | None = None) -> FastAPI:
    """The app the plugin mounts (`data`/`authorizer` given by tests; defaults for production)."""
    from airflow.api_fastapi.core_api.security import get_user

    source: ViewData = data if data is not None else StoreViewData()
    access = authorizer if authorizer is not None else Authorizer()
    env = _environment()
    app = FastAPI(title="returns-sync views", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    # Dependencies as default values: this module uses postponed annotations, and FastAPI
    # cannot resolve an `Annotated[...]` naming a function local to `create_app`.
    signed_in = Depends(get_user)

    async def current_viewer(user: Any = signed_in) -> Viewer:
        return await run_in_threadpool(access.viewer, user)

    viewing = Depends(current_viewer)

    def render(request: Request, template: str, viewer: Viewer | None, **context: Any) -> Any:
        base = request.scope.get("root_path", "").rstrip("/")
        # Airflow's own pages (DAG runs) live at the API server's root, above our mount point.
        airflow = base[: -len(MOUNT)] if base.endswith(MOUNT) else ""
        html = env.get_template(template).render(
            base=base,
            airflow=airflow,
            viewer=viewer,
            now=datetime.now(UTC),
            request_path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=context.get("status_code", 200))

    def chosen_merchant(viewer: Viewer, merchant: str | None) -> str | None:
        """The merchant a queue/trend page shows: the one asked for if visible, else all when
        the viewer may see all, else their first merchant."""
        if merchant and viewer.may_see(merchant):
            return merchant
        if viewer.all_merchants:
            return None
        return viewer.merchants[0] if viewer.merchants else None

    @app.get("/", response_class=HTMLResponse)
    async def search_page(
        request: Request, viewer: Viewer = viewing, q: Annotated[str, Query(max_length=500)] = ""
    ) -> Any:
        query = q.strip()[:MAX_QUERY_CHARS]
        hits: list[dict[str, Any]] = []
        if query and viewer.merchants:
            found = await run_in_threadpool(source.search, query)
            hits = visible(plain(list(found)), viewer)
        if len(hits) == 1:
            hit = hits[0]
            root = request.scope.get("root_path", "")
            merchant, return_id = (quote(str(hit[k]), "") for k in ("merchant", "loop_return_id"))
            target = f"{root}/returns/{merchant}/{return_id}"
            return RedirectResponse(target, status_code=303)
        return render(request, "search.html", viewer, q=query, hits=hits, page="search")

    @app.get("/returns/{merchant}/{loop_return_id}", response_class=HTMLResponse)
    async def timeline_page(
        request: Request, merchant: str, loop_return_id: str, viewer: Viewer = viewing
    ) -> Any:
        story = None
        if viewer.may_see(merchant):  # an unknown merchant and a hidden one look the same
            story = plain(await run_in_threadpool(source.timeline, merchant, loop_return_id))
        if story is None:
            return render(
                request,
                "message.html",
                viewer,
                page="search",
                title="Return not found",
                message=f"No return {loop_return_id} of merchant {merchant} that you may see.",
                status_code=404,
            )
        return render(request, "timeline.html", viewer, t=story, page="search")

    @app.get("/queues", response_class=HTMLResponse)
    async def queues_page(
        request: Request, viewer: Viewer = viewing, merchant: str | None = None
    ) -> Any:
        shown = chosen_merchant(viewer, merchant)
        queues = None
        if viewer.merchants:
            queues = plain(await run_in_threadpool(source.queues, shown))
        return render(request, "queues.html", viewer, qs=queues, merchant=shown, page="queues")

    @app.get("/trend", response_class=HTMLResponse)
    async def trend_page(
        request: Request, viewer: Viewer = viewing, merchant: str | None = None
    ) -> Any:
        shown = chosen_merchant(viewer, merchant)
        days: list[dict[str, Any]] = []
        if viewer.merchants:
            days = plain(list(await run_in_threadpool(source.trend, shown, TREND_DAYS)))
        return render(
            request,
            "trend.html",
            viewer,
            days=days,
            chart=trend_chart(days),
            merchant=shown,
            page="trend",
        )

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse)
    async def run_tab(request: Request, dag_id: str, run_id: str, user: Any = signed_in) -> Any:
        merchant = merchant_of_dag(dag_id)
        if merchant is None:
            return render(
                request,
                "message.html",
                None,
                page="run",
                title="Not a returns-sync run",
                message=(
                    f"{dag_id} is not one of the returns-sync DAGs, so this run has no "
                    "returns to show."
                ),
            )
        if not await run_in_threadpool(access.may_read_runs, user, dag_id):
            raise HTTPException(status_code=403, detail="Forbidden")
        viewer = await run_in_threadpool(access.viewer, user)
        summary = plain(await run_in_threadpool(source.run_summary, dag_id, run_id))
        return render(
            request,
            "run.html",
            viewer,
            page="run",
            dag_id=dag_id,
            run_id=run_id,
            merchant=merchant,
            s=summary,
        )

    return app


TRIGGER_COLOURS = {
    "webhook": "#2b6cb0",
    "poll": "#4c9f70",
    "backfill": "#d69e2e",
    "manual": "#805ad5",
}


def trend_chart(days: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The chart's data for static/trend.js: labels, one stacked bar per trigger, lines.

    RMAs whose run recorded no trigger (rows from before revision 0008) stack as "unknown", so
    the bars always add up to the day's RMAs."""
    triggers: list[str] = []
    for day in days:
        for name in day.get("rmas_by_trigger") or {}:
            if name not in triggers:
                triggers.append(name)
    ordered = [t for t in TRIGGER_COLOURS if t in triggers] + [
        t for t in triggers if t not in TRIGGER_COLOURS
    ]

    def unknown(day: Mapping[str, Any]) -> int:
        return max(0, int(day.get("rmas") or 0) - sum((day.get("rmas_by_trigger") or {}).values()))

    created = [
        {
            "label": f"RMAs created ({name})",
            "colour": TRIGGER_COLOURS.get(name, "#718096"),
            "data": [int((day.get("rmas_by_trigger") or {}).get(name, 0)) for day in days],
        }
        for name in ordered
    ]
    if any(unknown(day) for day in days):
        created.append(
            {
                "label": "RMAs created (unknown)",
                "colour": "#a0aec0",
                "data": [unknown(d) for d in days],
            }
        )
    median = [day.get("median_label_to_rma_seconds") for day in days]
    return {
        "labels": [str(day.get("day"))[5:] for day in days],  # "12-06": the year is in the title
        "created": created,
        "processed": [int(day.get("processed") or 0) for day in days],
        "flagged": [int(day.get("flagged") or 0) for day in days],
        "misses": [int(day.get("misses") or 0) for day in days],
        "median_minutes": [None if m is None else round(float(m) / 60, 1) for m in median],
    }
