"""Parse the `returns_sync_db` connection into a SQLAlchemy URL.

Two spellings are accepted, because Airflow hands connections around in both:

* a URI: `sqlite:////abs/path.db`, `postgresql://user:pw@host:5432/db`, Airflow's own
  `postgres://...` and the `sqlite://%2Fabs%2Fpath.db` that `Connection.get_uri()` produces;
* Airflow's JSON form: `{"conn_type": "postgres", "host": ..., "login": ..., "password": ...,
  "schema": "db", "port": 5432, "extra": {...}}` or `{"conn_type": "sqlite", "host": "/abs.db"}`.
  As in Airflow, `schema` is the *database* name. PostgreSQL `extra` keys are passed to libpq,
  e.g. `{"options": "-csearch_path=returns_sync"}` to keep the tables in their own schema.

SQLite paths must be absolute: Airflow runs tasks from varying working directories, and an
in-memory database cannot be shared between task processes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from include.returns_sync.state.errors import StateConfigError

CONN_ID = "returns_sync_db"

_JSON_FIELDS = frozenset(
    {"conn_type", "host", "login", "password", "schema", "port", "extra", "description", "conn_id"}
)
_POSTGRES_TYPES = frozenset({"postgres", "postgresql"})


def parse_connection(value: str) -> URL:
    """Return the SQLAlchemy URL for a `returns_sync_db` connection in URI or JSON form."""
    if not isinstance(value, str) or not value.strip():
        raise StateConfigError(f"{CONN_ID}: expected a URI or a JSON object, got {value!r}")
    text = value.strip()
    if text.startswith("{"):
        return _from_json(text)
    return _from_uri(text)


def describe(url: URL) -> str:
    """The URL with its password masked, for logs and error messages."""
    return url.render_as_string(hide_password=True)


def _from_json(text: str) -> URL:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateConfigError(f"{CONN_ID}: not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(raw, dict):
        raise StateConfigError(f"{CONN_ID}: the JSON form must be an object")
    unknown = sorted(set(raw) - _JSON_FIELDS)
    if unknown:
        raise StateConfigError(
            f"{CONN_ID}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(_JSON_FIELDS))}"
        )
    conn_type = raw.get("conn_type")
    if conn_type == "sqlite":
        return _sqlite_url(_text_field(raw, "host", required=True) or "", field="host")
    if conn_type in _POSTGRES_TYPES:
        database = _text_field(raw, "schema", required=True)
        return URL.create(
            "postgresql+psycopg2",
            username=_text_field(raw, "login"),
            password=_text_field(raw, "password"),
            host=_text_field(raw, "host", required=True),
            port=_port(raw.get("port"), field="port"),
            database=database,
            query=_extra_query(raw.get("extra")),
        )
    raise StateConfigError(
        f"{CONN_ID}: field 'conn_type' must be 'postgres' or 'sqlite'; got {conn_type!r}"
    )


def _from_uri(text: str) -> URL:
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise StateConfigError(
            f"{CONN_ID}: expected a URI like 'postgresql://user:pw@host:5432/db' or "
            "'sqlite:////abs/path.db', or a JSON object (value not shown: it may hold a secret)"
        )
    scheme = scheme.lower()
    if scheme in {"sqlite", "sqlite+pysqlite"}:
        path, _, params = rest.partition("?")
        if params:
            raise StateConfigError(f"{CONN_ID}: SQLite URIs take no parameters; got {params!r}")
        # `sqlite:////abs/db` has an empty authority before the path; Airflow's
        # Connection.get_uri() instead puts the percent-encoded path where the host goes.
        host, _, tail = path.partition("/")
        if host and tail:
            raise StateConfigError(
                f"{CONN_ID}: SQLite URIs have no host; write 'sqlite:////abs/path.db'"
            )
        return _sqlite_url(unquote(host or tail), field="path")
    if scheme in _POSTGRES_TYPES or scheme.startswith("postgresql+"):
        driver = "postgresql+psycopg2" if scheme in _POSTGRES_TYPES else scheme
        try:
            url = make_url(f"{driver}://{rest}")
            port = url.port
        except (ArgumentError, ValueError) as exc:
            raise StateConfigError(f"{CONN_ID}: malformed PostgreSQL URI ({exc})") from None
        if not url.database:
            raise StateConfigError(f"{CONN_ID}: the URI names no database (add '/<database>')")
        if not url.host:
            raise StateConfigError(f"{CONN_ID}: the URI names no host")
        query = dict(url.query)
        extra = query.pop("__extra__", None)
        if extra is not None:
            query.update(_extra_query(extra if isinstance(extra, str) else extra[0]))
        return url.set(port=port, query=query)
    raise StateConfigError(
        f"{CONN_ID}: unsupported URI scheme {scheme!r}; use 'postgresql' (or 'postgres') "
        "or 'sqlite'"
    )


def _sqlite_url(path: str, *, field: str) -> URL:
    if not path or path == ":memory:":
        raise StateConfigError(
            f"{CONN_ID}: SQLite {field} is empty; give an absolute file path (an in-memory "
            "database cannot be shared between Airflow task processes)"
        )
    if not PurePosixPath(path).is_absolute():
        raise StateConfigError(
            f"{CONN_ID}: SQLite {field} must be absolute (Airflow tasks run from varying "
            f"working directories); got {path!r}"
        )
    return URL.create("sqlite+pysqlite", database=path)


def _text_field(raw: Mapping[str, Any], field: str, *, required: bool = False) -> str | None:
    value = raw.get(field)
    if value is None or value == "":
        if required:
            raise StateConfigError(f"{CONN_ID}: field {field!r} is required")
        return None
    if not isinstance(value, str):
        raise StateConfigError(f"{CONN_ID}: field {field!r} must be a string; got {value!r}")
    return value


def _port(value: object, *, field: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        port = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        port = -1
    if isinstance(value, bool) or not 0 < port < 65536:
        raise StateConfigError(f"{CONN_ID}: field {field!r} must be a port number; got {value!r}")
    return port


def _extra_query(extra: object) -> dict[str, str]:
    """Airflow's `extra` (a dict or a JSON string) as libpq connection parameters."""
    if extra is None or extra == "":
        return {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError:
            raise StateConfigError(f"{CONN_ID}: field 'extra' is not valid JSON") from None
    if not isinstance(extra, dict):
        raise StateConfigError(f"{CONN_ID}: field 'extra' must be a JSON object")
    query: dict[str, str] = {}
    for key, item in extra.items():
        if isinstance(item, bool):
            query[key] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            query[key] = str(item)
        else:
            raise StateConfigError(
                f"{CONN_ID}: extra field {key!r} must be a string or number; got {item!r}"
            )
    return query
