"""Failures no retry can fix, turned into Airflow's fail-now (no retries, the alert fires).

The client layer raises plain exceptions (`clients/errors.py` imports no Airflow); only the
task layer knows that a refused credential or a missing connection means "fail the task now".
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from include.returns_sync.clients.errors import ConnectionNotDefined, VendorAuthError

P = ParamSpec("P")
R = TypeVar("R")


def fails_fast(body: Callable[P, R]) -> Callable[P, R]:
    """Wrap a task body: `VendorAuthError` / `ConnectionNotDefined` become `AirflowFailException`.

    The message is the client's (it names the connection and what to check), unchanged.
    """

    @functools.wraps(body)
    def task_body(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return body(*args, **kwargs)
        except (VendorAuthError, ConnectionNotDefined) as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc

    return task_body
