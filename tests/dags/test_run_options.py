"""`RunOptions`: a run's dry run is settled once, from the form and `RETURNS_SYNC_DRY_RUN` alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.run_options import (
    DRY_RUN_ENV,
    RunOptions,
    RunOptionsError,
    settle,
    settle_or_fail,
)

ROOT = Path(__file__).resolve().parents[2]
ABSENT = object()

FORM = {True: ("form",), False: (), ABSENT: ()}
ENV = {"true": ("deployment",), "false": (), ABSENT: ()}


def _params(form: Any) -> dict[str, Any]:
    return {} if form is ABSENT else {"dry_run": form}


def _environ(env: Any) -> dict[str, str]:
    return {} if env is ABSENT else {DRY_RUN_ENV: env}


@pytest.mark.parametrize("form", [True, False, ABSENT], ids=["form-on", "form-off", "no-form"])
@pytest.mark.parametrize("env", ["true", "false", ABSENT], ids=["env-on", "env-off", "no-env"])
def test_either_switch_makes_a_dry_run_and_says_which(form: Any, env: Any) -> None:
    options = settle(_params(form), source="poll", environ=_environ(env))
    assert options.dry_run_by == FORM[form] + ENV[env]
    assert options.dry_run is bool(FORM[form] + ENV[env])


@pytest.mark.parametrize("form", [True, False, ABSENT], ids=["form-on", "form-off", "no-form"])
def test_an_unreadable_deployment_setting_is_an_error_naming_the_variable(form: Any) -> None:
    with pytest.raises(RunOptionsError, match=rf"{DRY_RUN_ENV} must be true or false.*'maybe'"):
        settle(_params(form), source="poll", environ={DRY_RUN_ENV: "maybe"})


@pytest.mark.parametrize("raw", ["1", "TRUE", " yes ", "on"])
def test_the_deployment_setting_reads_like_every_other_boolean_setting(raw: str) -> None:
    assert settle({}, source="poll", environ={DRY_RUN_ENV: raw}).dry_run
    assert not settle({}, source="poll", environ={DRY_RUN_ENV: ""}).dry_run


def test_a_form_value_that_is_not_a_boolean_is_an_error_naming_the_field() -> None:
    with pytest.raises(RunOptionsError, match="form field dry_run must be true or false"):
        settle({"dry_run": "no"}, source="poll", environ={})


def test_the_process_environment_is_read_when_no_mapping_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DRY_RUN_ENV, "true")
    assert settle({}, source="poll").dry_run_by == ("deployment",)
    monkeypatch.setenv(DRY_RUN_ENV, "nope")
    with pytest.raises(RunOptionsError, match=DRY_RUN_ENV):
        settle({}, source="poll")


def test_a_plan_task_fails_at_once_on_an_unreadable_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv(DRY_RUN_ENV, "sometimes")
    with pytest.raises(AirflowFailException, match=DRY_RUN_ENV):
        settle_or_fail({}, source="poll")


def test_the_options_travel_through_xcom_unchanged() -> None:
    window = {"start": "2026-10-01T00:00:00+00:00", "end": "2026-10-02T00:00:00+00:00"}
    options = settle(
        {"dry_run": True},
        source="poll",
        window=window,
        inbox=True,
        environ={DRY_RUN_ENV: "true"},
    )
    assert RunOptions.of(options.to_xcom()) == options
    assert options.window == window
    explicit = settle({}, source="manual", ids=["48000001"], environ={})
    assert RunOptions.of(explicit.to_xcom()) == explicit
    assert explicit.window is None and explicit.ids == ("48000001",)


def test_options_without_a_dry_run_are_refused_never_taken_as_live() -> None:
    with pytest.raises(RunOptionsError):
        RunOptions.of({"window": None, "source": "poll"})
    with pytest.raises(RunOptionsError):
        RunOptions.of({"dry_run": "false"})


@pytest.mark.parametrize(
    ("dry_run", "source", "window", "advances"),
    [
        (False, "poll", True, True),
        (True, "poll", True, False),
        (False, "webhook", False, False),
        (False, "manual", False, False),
        (False, "backfill", True, False),
    ],
)
def test_only_a_live_poll_advances_its_watermark(
    dry_run: bool, source: str, window: bool, advances: bool
) -> None:
    span = {"start": "2026-10-01T00:00:00+00:00", "end": "2026-10-02T00:00:00+00:00"}
    options = settle(
        {"dry_run": dry_run}, source=source, window=span if window else None, environ={}
    )
    assert options.advances_watermark is advances


def test_no_other_code_reads_the_dry_run_switches() -> None:
    """The form's `dry_run` and the deployment's `Settings.dry_run` are read in `run_options`
    alone (and `RETURNS_SYNC_DRY_RUN` itself in `settings` alone: tests/test_settings.py)."""
    reads = re.compile(
        r"""params(\.get\(|\[)\s*["']dry_run["']"""
        r"""|settings\(\)\.dry_run|Settings\.from_env\([^\n]*\)\.dry_run"""
    )
    files = [*ROOT.glob("dags/*.py"), *ROOT.glob("include/**/*.py")]
    offenders = [
        str(path.relative_to(ROOT))
        for path in files
        if path.name not in ("run_options.py", "settings.py")
        and reads.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
