"""The `returns_sync_db` connection is accepted as a URI or as Airflow's JSON form."""

from __future__ import annotations

import json

import pytest

from include.returns_sync.state import StateConfigError, parse_connection


def test_sqlite_uri_with_absolute_path() -> None:
    url = parse_connection("sqlite:////var/lib/airflow/returns_sync/state.db")
    assert url.get_backend_name() == "sqlite"
    assert url.database == "/var/lib/airflow/returns_sync/state.db"


def test_sqlite_uri_as_airflow_connection_get_uri_writes_it() -> None:
    # Connection(conn_type="sqlite", host="/abs/path.db").get_uri() == "sqlite://%2Fabs%2Fpath.db"
    assert parse_connection("sqlite://%2Fabs%2Fpath.db").database == "/abs/path.db"


def test_postgres_uri_in_both_spellings_uses_psycopg2() -> None:
    for scheme in ("postgresql", "postgres"):
        url = parse_connection(f"{scheme}://rs:s3cret@db.internal:6432/returns")
        assert url.drivername == "postgresql+psycopg2"
        assert (url.username, url.password, url.host, url.port, url.database) == (
            "rs",
            "s3cret",
            "db.internal",
            6432,
            "returns",
        )


def test_postgres_uri_keeps_libpq_parameters_and_unpacks_airflow_extra() -> None:
    url = parse_connection(
        "postgres://u:p@h:5432/db?sslmode=require&__extra__=%7B%22application_name%22%3A%22x%22%7D"
    )
    assert url.query == {"sslmode": "require", "application_name": "x"}


def test_postgres_json_form_maps_schema_to_the_database() -> None:
    url = parse_connection(
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "db.internal",
                "login": "rs",
                "password": "p@ss/word",
                "schema": "returns",
                "port": 5432,
                "extra": {"options": "-csearch_path=returns_sync", "connect_timeout": 5},
            }
        )
    )
    assert url.drivername == "postgresql+psycopg2"
    assert url.password == "p@ss/word"
    assert url.database == "returns"
    assert url.port == 5432
    assert url.query == {"options": "-csearch_path=returns_sync", "connect_timeout": "5"}


def test_postgres_json_form_accepts_port_as_text_and_extra_as_json_text() -> None:
    raw = {"conn_type": "postgresql", "host": "h", "schema": "db", "port": "5433", "extra": "{}"}
    url = parse_connection(json.dumps(raw))
    assert url.port == 5433
    assert url.username is None


def test_sqlite_json_form_uses_host_as_the_path() -> None:
    url = parse_connection('{"conn_type": "sqlite", "host": "/data/state.db"}')
    assert url.database == "/data/state.db"


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_connection("  sqlite:////a.db\n").database == "/a.db"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("", "expected a URI or a JSON object"),
        ("mysql://u:p@h/db", "'mysql'"),
        ("just-a-name", "expected a URI"),
        ("sqlite:///relative/state.db", "must be absolute"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite://host/abs.db", "no host"),
        ("sqlite:////a.db?mode=ro", "no parameters"),
        ("postgresql://u:p@h:5432", "no database"),
        ("postgresql://u:p@h:notaport/db", "malformed"),
        ("postgresql:///db", "no host"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a URI"),
        ('{"conn_type": "mysql", "host": "h"}', "'conn_type'"),
        ('{"host": "h"}', "'conn_type'"),
        ('{"conn_type": "postgres", "hostname": "h", "schema": "db"}', "'hostname'"),
        ('{"conn_type": "postgres", "schema": "db"}', "'host' is required"),
        ('{"conn_type": "postgres", "host": "h"}', "'schema' is required"),
        ('{"conn_type": "postgres", "host": "h", "schema": "d", "port": "x"}', "'port'"),
        ('{"conn_type": "postgres", "host": "h", "schema": "d", "port": 70000}', "'port'"),
        ('{"conn_type": "postgres", "host": "h", "schema": "d", "port": true}', "'port'"),
        ('{"conn_type": "postgres", "host": 5, "schema": "d"}', "'host' must be a string"),
        ('{"conn_type": "postgres", "host": "h", "schema": "d", "extra": "{x"}', "'extra'"),
        ('{"conn_type": "postgres", "host": "h", "schema": "d", "extra": [1]}', "'extra'"),
        ('{"conn_type": "postgres", "host": "h", "schema": "d", "extra": {"o": [1]}}', "'o'"),
        ('{"conn_type": "sqlite"}', "'host' is required"),
        ('{"conn_type": "sqlite", "host": "state.db"}', "must be absolute"),
    ],
)
def test_bad_connection_is_rejected_with_an_error_naming_the_problem(
    value: str, named: str
) -> None:
    with pytest.raises(StateConfigError) as excinfo:
        parse_connection(value)
    assert named in str(excinfo.value)
    assert "returns_sync_db" in str(excinfo.value)


@pytest.mark.parametrize(
    "value",
    [
        '{"conn_type": "postgres", "host": "h", "password": "hunter22"}',
        "postgresql:/u:hunter22@h/db",
        "postgresql://u:hunter22@h:port/db",
    ],
)
def test_error_messages_never_echo_the_password(value: str) -> None:
    with pytest.raises(StateConfigError) as excinfo:
        parse_connection(value)
    assert "hunter22" not in str(excinfo.value)
