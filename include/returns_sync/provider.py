"""Airflow provider metadata: registers the `loop` and `whiplash` connection types.

Airflow discovers it through the `apache_airflow_provider` entry point
(`provider_info = "include.returns_sync.provider:get_provider_info"`). Since Airflow 3.2 the UI
reads connection forms declaratively from here (`conn-fields`, `ui-field-behaviour`) without
importing the hooks; the hooks' `get_connection_form_widgets()` / `get_ui_field_behaviour()`
build the same form from the same definitions below for older UIs. This module imports nothing
heavy: Airflow calls it while discovering providers.

Both connections may also keep type `http` (PRODUCT.md section 3); the hooks accept either.
"""

from __future__ import annotations

import copy
from typing import Any

PACKAGE_NAME = "returns-sync"
VERSION = "0.1.0"

LOOP_DEFAULT_HOST = "https://api.loopreturns.com/api/v1"
#: The shared limiter's defaults, 8 % under the vendor limits (Loop 300/min per key, Whiplash
#: 10/s per account; `clients/limiter.py` HEADROOM): shown as the form's hint.
LOOP_DEFAULT_RATE = 4.6
WHIPLASH_DEFAULT_RATE = 9.2
WHIPLASH_DEFAULT_HOST = "https://www.getwhiplash.com"


def _rate_limit_field(default: float) -> dict[str, Any]:
    return {
        "label": "Rate limit (requests/second)",
        "description": (
            "Requests per second for this account, shared by every worker process (the "
            "deployment's shared limiter); 0 disables it."
        ),
        "schema": {"type": ["number", "null"], "minimum": 0, "default": default},
    }


_WEBHOOK_SECRET_FIELD: dict[str, Any] = {
    "label": "Webhook secret",
    "description": "Secret that signs this vendor's webhooks (verified by the webhook endpoint).",
    "schema": {"type": ["string", "null"], "format": "password"},
}

#: Extra fields per connection type, in provider.yaml `conn-fields` form.
CONNECTION_FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    "loop": {
        "rate_limit": _rate_limit_field(LOOP_DEFAULT_RATE),
        "webhook_secret": _WEBHOOK_SECRET_FIELD,
    },
    "whiplash": {
        "refresh_token": {
            "label": "Refresh token",
            "description": (
                "OAuth refresh token from the one-time authorization. Leave empty to use the "
                "client-credentials grant. Rotated tokens are kept in the state store."
            ),
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        "scope": {
            "label": "OAuth scope",
            "description": (
                "Asked for with the client-credentials grant (default app_manage; a token "
                "without a scope may be read-only). Empty: ask for none."
            ),
            "schema": {"type": ["string", "null"]},
        },
        "customer_id": {
            "label": "Customer ID",
            "description": "Sent as X-Customer-ID (partner / 3PL users acting for one customer).",
            "schema": {"type": ["string", "null"]},
        },
        "shop_id": {
            "label": "Shop ID",
            "description": "Sent as X-Shop-ID (scopes requests to one shop).",
            "schema": {"type": ["string", "null"]},
        },
        "rate_limit": _rate_limit_field(WHIPLASH_DEFAULT_RATE),
        "webhook_secret": _WEBHOOK_SECRET_FIELD,
    },
}

#: Standard-field behaviour per connection type, in provider.yaml `ui-field-behaviour` form.
FIELD_BEHAVIOURS: dict[str, dict[str, Any]] = {
    "loop": {
        "hidden-fields": ["schema", "port", "login"],
        "relabeling": {"host": "API base URL", "password": "API key"},
        "placeholders": {"host": LOOP_DEFAULT_HOST, "password": "Loop API key (Returns scope)"},
    },
    "whiplash": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {
            "host": "Whiplash host",
            "login": "OAuth client ID",
            "password": "OAuth client secret",
        },
        "placeholders": {"host": WHIPLASH_DEFAULT_HOST, "login": "application id"},
    },
}

_HOOKS = {
    "loop": ("include.returns_sync.clients.loop.LoopHook", "Loop Returns"),
    "whiplash": ("include.returns_sync.clients.whiplash.WhiplashHook", "Whiplash / Rydership"),
}


def get_provider_info() -> dict[str, Any]:
    """The provider info dict Airflow's ProvidersManager reads (schema: provider_info.schema.json)."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "Returns Sync",
        "description": (
            "Hooks and connection types for Loop Returns and the Whiplash / Rydership warehouse, "
            "used by the returns-sync pipelines."
        ),
        "versions": [VERSION],
        "connection-types": [
            {
                "connection-type": conn_type,
                "hook-class-name": hook_class,
                "hook-name": hook_name,
                "ui-field-behaviour": copy.deepcopy(FIELD_BEHAVIOURS[conn_type]),
                "conn-fields": copy.deepcopy(CONNECTION_FIELDS[conn_type]),
            }
            for conn_type, (hook_class, hook_name) in _HOOKS.items()
        ],
        "hook-class-names": [hook_class for hook_class, _ in _HOOKS.values()],
    }


def connection_form_widgets(conn_type: str) -> dict[str, Any]:
    """WTForms fields for a hook's `get_connection_form_widgets()` (FAB-based UIs).

    Imports flask_appbuilder / wtforms here, not at module level: only the UI needs them.
    """
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import PasswordField, StringField

    widgets: dict[str, Any] = {}
    for name, spec in CONNECTION_FIELDS[conn_type].items():
        label = lazy_gettext(spec["label"])
        description = spec.get("description", "")
        if spec["schema"].get("format") == "password":
            widgets[name] = PasswordField(
                label, widget=BS3PasswordFieldWidget(), description=description
            )
        else:
            widgets[name] = StringField(label, widget=BS3TextFieldWidget(), description=description)
    return widgets


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """The hook-method form (snake_case keys) of `FIELD_BEHAVIOURS`."""
    behaviour = FIELD_BEHAVIOURS[conn_type]
    return {
        "hidden_fields": list(behaviour["hidden-fields"]),
        "relabeling": dict(behaviour["relabeling"]),
        "placeholders": dict(behaviour["placeholders"]),
    }
