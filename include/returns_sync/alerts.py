"""Failure alerting for every DAG: one log line an operator can grep and alert on.

Airflow calls `on_failure` when a task fails for good (after its retries). It logs the
merchant, DAG, task, run and exception at ERROR level with a stable prefix (with many merchants
in one deployment, the alert must say whose run failed); deployments that want email or
Slack add a notifier from those providers to `default_args` (see docs/OPERATIONS.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from include.returns_sync.merchants import merchant_for_dag_id

log = logging.getLogger("returns_sync.alerts")


def on_failure(context: Mapping[str, Any]) -> None:
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    log.error(
        "RETURNS_SYNC_ALERT merchant=%s dag=%s task=%s run=%s error=%s",
        merchant_for_dag_id(str(dag_id)),
        dag_id,
        task_id,
        context.get("run_id", "?"),
        context.get("exception"),
    )
