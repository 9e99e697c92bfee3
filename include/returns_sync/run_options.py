"""What one DAG run does, settled once: `RunOptions`.

Each of the three DAGs starts with a `plan` task that builds the run's `RunOptions` with
`settle` (from the DAG's form, `params`, and the deployment's `RETURNS_SYNC_DRY_RUN`, which
`settings.py` reads) and hands them to every later task through XCom. `settle` is the only reader
of the form's `dry_run` and of the deployment's `Settings.dry_run`; the tasks act on
`RunOptions.dry_run` alone, so the two switches cannot behave differently (PRODUCT.md section
2.4).

Why the first task's XCom, and not each task resolving params + environment itself: a run is
settled once. A deployment whose shadow mode is switched off while a run is in flight would
otherwise run some tasks dry and some live (a dry `collect` that leaves the inbox alone, then a
live `report` that advances the watermark past returns nobody created); a retried or cleared
task sees exactly what its run decided.

A dry run reads and decides, and writes nothing that a live run would notice:
- nothing to Loop or Whiplash (no RMA, no Process / Flag / note / disposition);
- no webhook event consumed: the inbox is read without claiming, the events stay waiting for
  the first live run (and events that need no work stay unclosed);
- no watermark advanced;
- no record in the state store (claims, sync records, decisions, action intents): the run
  report (`summary.json` with `"dry_run": true`, plus its CSVs) is the record of what it would
  have done. The one state-store write a dry run may make is a rotated Whiplash refresh token
  (reading Whiplash needs a valid token).

So when shadow mode is switched off, the first live runs create every RMA and take every action
of the shadow period (up to the initial look-back, `RETURNS_SYNC_INITIAL_LOOKBACK_HOURS`, when
the deployment never ran live before).

Pure Python: no Airflow import except in `settle_or_fail`, which the task bodies use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from include.returns_sync.settings import Settings, SettingsError, settings

log = logging.getLogger(__name__)

#: The deployment-wide shadow-mode switch (`Settings.dry_run`).
DRY_RUN_ENV = Settings.dry_run.name
#: The DAG form's field (every DAG has it).
DRY_RUN_PARAM = "dry_run"
#: Who asked for a dry run.
FORM = "form"
DEPLOYMENT = "deployment"
#: Where a run's work comes from.
SOURCES = ("poll", "webhook", "manual", "backfill")


class RunOptionsError(ValueError):
    """The form or the deployment settings cannot be read; the message names the culprit."""


@dataclass(frozen=True)
class RunOptions:
    """Everything a run settles before it reads anything: one value, passed to every task.

    :param dry_run: read and decide, write nothing (see the module docstring).
    :param dry_run_by: which switches asked for it (`"form"`, `"deployment"`), for the logs.
    :param ids: explicit ids from the form (Loop return ids or Whiplash consumer return ids);
        a run with ids reads only those.
    :param window_start: start of the window on the vendor's `updated_at` (ISO), or None.
    :param window_end: its end (exclusive).
    :param source: `poll`, `webhook` (a run only webhooks started), `manual` (explicit ids) or
        `backfill`.
    :param inbox: the run takes the waiting webhook events of its vendor (a dry run only reads
        them).
    """

    dry_run: bool
    dry_run_by: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    window_start: str | None = None
    window_end: str | None = None
    source: str = "poll"
    inbox: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.dry_run, bool):
            raise RunOptionsError(f"dry_run must be true or false, got {self.dry_run!r}")
        if self.source not in SOURCES:
            raise RunOptionsError(f"source must be one of {SOURCES}, got {self.source!r}")
        if (self.window_start is None) != (self.window_end is None):
            raise RunOptionsError("a window needs both its start and its end")

    @property
    def window(self) -> dict[str, str] | None:
        """The window as the task bodies take it (`{"start", "end"}`), or None."""
        if self.window_start is None or self.window_end is None:
            return None
        return {"start": self.window_start, "end": self.window_end}

    @property
    def advances_watermark(self) -> bool:
        """Only a live poll moves its watermark (a backfill or an explicit run has none)."""
        return not self.dry_run and self.source == "poll" and self.window is not None

    def to_xcom(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "dry_run_by": list(self.dry_run_by),
            "ids": list(self.ids),
            "window": self.window,
            "source": self.source,
            "inbox": self.inbox,
        }

    @classmethod
    def of(cls, value: RunOptions | Mapping[str, Any]) -> RunOptions:
        """The options from their XCom form (or as they are). A value without `dry_run` is an
        error, never a live run by default."""
        if isinstance(value, RunOptions):
            return value
        if not isinstance(value, Mapping) or "dry_run" not in value:
            raise RunOptionsError(f"not the run options of a plan task: {value!r}"[:300])
        window = value.get("window") or {}
        return cls(
            dry_run=value["dry_run"],
            dry_run_by=tuple(value.get("dry_run_by") or ()),
            ids=tuple(str(i) for i in value.get("ids") or ()),
            window_start=window.get("start"),
            window_end=window.get("end"),
            source=value.get("source", "poll"),
            inbox=bool(value.get("inbox", False)),
        )


def dry_run_switches(
    params: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Which switches ask for a dry run: the form's `dry_run`, the deployment's
    `RETURNS_SYNC_DRY_RUN`. Either one is enough; a value that is neither true nor false is an
    error that names the field or variable (a typo must not silently run live)."""
    switches = []
    form = params.get(DRY_RUN_PARAM)
    if form is not None and not isinstance(form, bool):
        raise RunOptionsError(
            f"the form field {DRY_RUN_PARAM} must be true or false (got {form!r})"
        )
    if form:
        switches.append(FORM)
    deployment = settings() if environ is None else Settings.from_env(environ)
    try:
        if deployment.dry_run:
            switches.append(DEPLOYMENT)
    except SettingsError as exc:
        raise RunOptionsError(f"{exc}; fix it on every Airflow component") from None
    return tuple(switches)


def settle(
    params: Mapping[str, Any],
    *,
    source: str,
    ids: Sequence[str] = (),
    window: Mapping[str, str] | None = None,
    inbox: bool = False,
    environ: Mapping[str, str] | None = None,
) -> RunOptions:
    """The run's options: what the plan task decided (ids, window, source, inbox) plus the dry
    run, from the form and the deployment settings. Called once per run, by its first task."""
    switches = dry_run_switches(params, environ)
    return RunOptions(
        dry_run=bool(switches),
        dry_run_by=switches,
        ids=tuple(str(i) for i in ids),
        window_start=window["start"] if window else None,
        window_end=window["end"] if window else None,
        source=source,
        inbox=inbox,
    )


def settle_or_fail(params: Mapping[str, Any], **decided: Any) -> dict[str, Any]:
    """`settle` for a plan task: the options in XCom form; an unreadable setting fails the task
    at once, without retries (a retry cannot fix a configuration)."""
    try:
        options = settle(params, **decided)
    except RunOptionsError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"Invalid run options: {exc}") from exc
    if options.dry_run:
        log.warning(
            "DRY RUN (asked by %s): reading and deciding only; nothing is sent to Loop or "
            "Whiplash, no webhook event is consumed, no watermark moves",
            " and ".join(options.dry_run_by),
        )
    return options.to_xcom()


def plan_run(
    params: Mapping[str, Any],
    ids: Sequence[str],
    *,
    webhook_only: bool,
    poll_window: Callable[[], dict[str, str]],
) -> dict[str, Any]:
    """The `plan` task of a polling DAG: given ids -> only those (no window, no inbox); a run
    that only webhooks started -> the inbox alone; otherwise the poll window plus the inbox.
    `poll_window` is called only for a poll, since it reads the durable watermark."""
    if ids:
        return settle_or_fail(params, source="manual", ids=list(ids))
    if webhook_only:
        return settle_or_fail(params, source="webhook", inbox=True)
    return settle_or_fail(params, source="poll", window=poll_window(), inbox=True)
