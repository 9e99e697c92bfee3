"""Failures no retry can fix, turned into Airflow's fail-now (no retries, the alert fires).

The client layer raises plain exceptions (`clients/errors.py` imports no Airflow); only the
task layer knows that a refused credential, a missing connection or a merchant that is no longer
in the merchants file (or whose entry is now invalid) means "fail the task now".
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from include.returns_sync.clients.errors import ConnectionNotDefined, VendorAuthError
from include.returns_sync.merchants import MerchantsFileError, UnknownMerchantError

P = ParamSpec("P")
R = TypeVar("R")


def fails_fast(body: Callable[P, R]) -> Callable[P, R]:
    """Wrap a task body: `VendorAuthError` / `ConnectionNotDefined` and the merchants file's
    `UnknownMerchantError` / `MerchantsFileError` become `AirflowFailException`.

    The message is the raiser's (it names the connection or merchant and what to check).
    """

    @functools.wraps(body)
    def task_body(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return body(*args, **kwargs)
        except (
            VendorAuthError,
            ConnectionNotDefined,
            UnknownMerchantError,
            MerchantsFileError,
        ) as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc

    return task_body
