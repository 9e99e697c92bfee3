"""docker-compose.yaml and .env.example, checked statically (our machines have no Docker engine).

The file is interpolated with `.env.example` the way Compose does it, parsed with PyYAML
(anchors and merge keys included) and its structure asserted: the services of the production
topology, healthchecks, start-up order, scalable workers, named volumes, separate databases,
and secrets that only ever come from `.env`. The Celery end-to-end test runs the same topology
for real, without containers.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from include.returns_sync.state import parse_connection
from tests.deploy.static_files import (
    MissingVariable,
    interpolate,
    read_env_file,
    variable_uses,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
AIRFLOW_SERVICES = {
    "airflow-init": None,
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(env_example: dict[str, str]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(interpolate(COMPOSE.read_text(), env_example))
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def test_the_stack_has_every_component_of_the_production_topology(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) == {"postgres", "redis", *AIRFLOW_SERVICES}
    for name, command in AIRFLOW_SERVICES.items():
        if command:
            assert services[name]["command"] == command, name


def test_every_airflow_service_runs_our_image_with_celery(
    services: dict[str, dict[str, Any]],
) -> None:
    images = {services[name]["image"] for name in AIRFLOW_SERVICES}
    assert len(images) == 1
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["build"] == ".", f"{name} builds the repository's Dockerfile"
        env = environment(service)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert make_url(env["AIRFLOW__CELERY__BROKER_URL"]).host == "redis"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
            "http://airflow-apiserver:8080/"
        )


def test_metadata_and_state_store_are_separate_databases_on_the_postgres_service(
    services: dict[str, dict[str, Any]],
) -> None:
    env = environment(services["airflow-worker"])
    metadata = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    results = make_url(env["AIRFLOW__CELERY__RESULT_BACKEND"].removeprefix("db+"))
    state = parse_connection(env["AIRFLOW_CONN_RETURNS_SYNC_DB"])
    assert metadata.host == results.host == state.host == "postgres"
    assert metadata.database == results.database == "airflow"
    assert state.database and state.database != metadata.database
    assert state.get_backend_name() == "postgresql"
    assert environment(services["postgres"])["POSTGRES_DB"] == metadata.database


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name == "airflow-init":
            assert service["restart"] == "no", "the init job runs once"
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} needs a healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL")
        assert {"interval", "timeout", "retries"} <= set(check), name
    assert "8974/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    scheduler_env = environment(services["airflow-scheduler"])
    assert scheduler_env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    worker_check = " ".join(services["airflow-worker"]["healthcheck"]["test"])
    app_module = re.search(r"--app (\S+)\.app\b", worker_check)
    assert app_module and importlib.util.find_spec(app_module[1]) is not None


def test_airflow_starts_after_its_databases_and_the_init_job(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        if name != "airflow-init":
            assert depends["airflow-init"]["condition"] == "service_completed_successfully"


def test_the_init_job_migrates_creates_the_pools_and_prepares_the_state_store(
    services: dict[str, dict[str, Any]],
) -> None:
    init = services["airflow-init"]
    script = init["command"][-1]
    assert init["entrypoint"] == "/bin/bash" and script.startswith("set -euo pipefail")
    assert "airflow db migrate" in script
    pools_in_dags = set()
    for dag_file in (ROOT / "dags").glob("*.py"):
        pools_in_dags |= set(re.findall(r'pool="([^"]+)"', dag_file.read_text()))
    assert pools_in_dags == {"loop_api", "whiplash_api"}
    for pool in pools_in_dags:
        assert re.search(rf"airflow pools set {pool} ", script), f"pool {pool} is not created"
    assert "python -m include.returns_sync.deploy.state_db create" in script
    assert "python -m include.returns_sync.deploy.state_db upgrade" in script
    assert importlib.util.find_spec("include.returns_sync.deploy.state_db") is not None


def test_workers_scale_with_the_scale_flag(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: a fixed name prevents --scale"
    worker = services["airflow-worker"]
    assert "ports" not in worker, "replicas would fight over a host port"
    assert "deploy" not in worker or "replicas" not in worker["deploy"]
    assert environment(worker)["DUMB_INIT_SETSID"] == "0", "a warm shutdown on SIGTERM"
    assert "celery@${HOSTNAME}" in worker["healthcheck"]["test"][-1], "pings its own replica"


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert not source.startswith(("/", ".")), f"{name}: {mount} is a bind mount"
            used.add(source)
    assert used == declared
    mounts = {m.split(":")[1] for m in compose["services"]["postgres"]["volumes"]}
    assert "/var/lib/postgresql/data" in mounts
    worker_mounts = {m.split(":")[1] for m in compose["services"]["airflow-worker"]["volumes"]}
    assert {"/opt/airflow/logs", "/opt/airflow/returns_sync"} <= worker_mounts


def test_the_api_server_is_published_on_loopback_by_default(
    services: dict[str, dict[str, Any]],
) -> None:
    ports = services["airflow-apiserver"]["ports"]
    assert ports == ["127.0.0.1:8080:8080"]
    for name, service in services.items():
        if name != "airflow-apiserver":
            assert "ports" not in service, f"{name} must not be published"


def test_secrets_only_come_from_the_env_file(services: dict[str, dict[str, Any]]) -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, service in raw["services"].items():
        if name in AIRFLOW_SERVICES:
            assert service["env_file"] == [".env"], name
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key or "@" in str(value):  # a password, or a URL with credentials
                assert "${" in str(value), f"{name}.{key} holds a literal secret"
    text = COMPOSE.read_text()
    for secret in (
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW_CONN_LOOP_DEFAULT",
        "AIRFLOW_CONN_WHIPLASH_DEFAULT",
    ):
        assert f"{secret}:" not in text, f"{secret} belongs in .env, not in the compose file"


def test_env_example_defines_every_variable_the_stack_needs(env_example: dict[str, str]) -> None:
    uses = variable_uses(COMPOSE.read_text())
    required = {name for name, ops in uses.items() if ops & {"", ":?", "?"}}
    assert required <= set(env_example), f"missing in .env.example: {required - set(env_example)}"
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
        interpolate(COMPOSE.read_text(), {"POSTGRES_USER": "x", "REDIS_PASSWORD": "y"})
    for name in (
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "_AIRFLOW_WWW_USER_PASSWORD",
        "RETURNS_SYNC_API_POOL_SLOTS",
    ):
        assert name in env_example, f"{name} must be documented in .env.example"


def test_env_example_holds_placeholders_and_valid_connections(
    env_example: dict[str, str],
) -> None:
    for name, value in env_example.items():
        if re.search(r"PASSWORD|SECRET|FERNET|_KEY$", name):
            assert value == "change-me", f"{name}: .env.example must not hold a real secret"
    loop = json.loads(env_example["AIRFLOW_CONN_LOOP_DEFAULT"])
    whiplash = json.loads(env_example["AIRFLOW_CONN_WHIPLASH_DEFAULT"])
    assert loop["host"] == "https://api.loopreturns.com/api/v1" and loop["password"]
    assert whiplash["host"] == "https://www.getwhiplash.com" and whiplash["login"]
    assert loop["extra"]["webhook_secret"] == "change-me"
    for conn in (loop, whiplash):
        assert conn["conn_type"] == "http"
        assert all(v == "change-me" for k, v in conn.items() if k in ("password", "login"))


def test_env_files_are_never_committed_or_built_into_the_image() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    assert ENV_EXAMPLE.exists()
