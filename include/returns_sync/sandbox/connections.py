"""Airflow connections that point the pipeline at a running sandbox, as `AIRFLOW_CONN_*` JSON.

One definition for every place that runs the DAGs against the simulators: the demo, the DAG and
reliability tests, the end-to-end Airflow stacks and the benchmarks. Connection type `http`, as
PRODUCT.md documents for production; `extra` carries test knobs such as `rate_limit` or a
webhook secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: What the connections need from a sandbox: a `Sandbox`'s attributes, or the keys of the
#: `--urls-file` a sandbox in another process writes.
ENDPOINT_KEYS = (
    "loop_url",
    "loop_api_key",
    "whiplash_url",
    "whiplash_client_id",
    "whiplash_client_secret",
)


def airflow_connections(
    sandbox: Any,
    *,
    loop_extra: Mapping[str, Any] | None = None,
    whiplash_extra: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """`loop_default` and `whiplash_default` for `sandbox` (an object or a mapping of the keys)."""

    def endpoint(key: str) -> Any:
        return sandbox[key] if isinstance(sandbox, Mapping) else getattr(sandbox, key)

    loop: dict[str, Any] = {
        "conn_type": "http",
        "host": endpoint("loop_url"),
        "password": endpoint("loop_api_key"),
    }
    whiplash: dict[str, Any] = {
        "conn_type": "http",
        "host": endpoint("whiplash_url"),
        "login": endpoint("whiplash_client_id"),
        "password": endpoint("whiplash_client_secret"),
    }
    for connection, extra in ((loop, loop_extra), (whiplash, whiplash_extra)):
        if extra:
            connection["extra"] = dict(extra)
    return {
        "AIRFLOW_CONN_LOOP_DEFAULT": json.dumps(loop),
        "AIRFLOW_CONN_WHIPLASH_DEFAULT": json.dumps(whiplash),
    }
