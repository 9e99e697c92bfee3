"""Airflow connections that point the pipeline at a running sandbox, as `AIRFLOW_CONN_*` JSON.

One definition for every place that runs the DAGs against the simulators: the demo, the DAG and
reliability tests, the end-to-end Airflow stacks and the benchmarks. Connection type `http`, as
PRODUCT.md documents for production; `extra` carries test knobs such as `rate_limit` or a
webhook secret.

Several merchants (a sandbox started with `merchants`): `merchant_connections` gives each
merchant its Loop connection (`loop_<id>`, `loop_default` for `default`, with that shop's key
and webhook secret) beside the one shared `whiplash_default`, and `merchants_file` the entries
of the RETURNS_SYNC_MERCHANTS file (PRODUCT.md section 3.1) that tie each merchant to its Loop
connection and its Whiplash customer.
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


def loop_conn_id(merchant_id: str) -> str:
    """The Loop connection id of a merchant, as the merchants file defaults it."""
    return "loop_default" if merchant_id == "default" else f"loop_{merchant_id}"


def _merchant_keys(sandbox: Any) -> dict[str, dict[str, Any]]:
    """{merchant id: keys} from a `Sandbox` or from its `--urls-file` mapping."""
    if isinstance(sandbox, Mapping):
        return dict(sandbox["merchants"])
    return {merchant: sandbox.merchant_keys(merchant) for merchant in sandbox.merchants}


def merchant_connections(
    sandbox: Any, *, whiplash_extra: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """`AIRFLOW_CONN_*` for every merchant's Loop shop, plus the shared `whiplash_default`."""

    def endpoint(key: str) -> Any:
        return sandbox[key] if isinstance(sandbox, Mapping) else getattr(sandbox, key)

    connections = {
        "AIRFLOW_CONN_WHIPLASH_DEFAULT": airflow_connections(
            sandbox, whiplash_extra=whiplash_extra
        )["AIRFLOW_CONN_WHIPLASH_DEFAULT"]
    }
    for merchant, keys in _merchant_keys(sandbox).items():
        loop = {
            "conn_type": "http",
            "host": endpoint("loop_url"),
            "password": keys["loop_api_key"],
            "extra": {"webhook_secret": keys["loop_webhook_secret"]},
        }
        connections[f"AIRFLOW_CONN_{loop_conn_id(merchant).upper()}"] = json.dumps(loop)
    return connections


def merchants_file(sandbox: Any) -> dict[str, Any]:
    """The merchants file (as a mapping to dump as YAML) for every merchant of the sandbox,
    all sharing `whiplash_default`, each its own Whiplash customer."""
    return {
        "merchants": [
            {
                "id": merchant,
                "loop_conn_id": loop_conn_id(merchant),
                "whiplash_conn_id": "whiplash_default",
                "whiplash_customer_id": keys["whiplash_customer_id"],
            }
            for merchant, keys in _merchant_keys(sandbox).items()
        ]
    }
