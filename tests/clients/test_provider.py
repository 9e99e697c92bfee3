"""Provider metadata and the hooks' connection contract (class attributes, forms, no I/O)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest

from include.returns_sync.clients.loop import LoopHook
from include.returns_sync.clients.whiplash import WhiplashHook
from include.returns_sync.provider import CONNECTION_FIELDS, get_provider_info

AIRFLOW_DIR = Path(airflow.__file__).parent


def test_provider_info_validates_against_airflows_provider_info_schema() -> None:
    schema = json.loads((AIRFLOW_DIR / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_connection_types_validate_against_the_declarative_provider_yaml_schema() -> None:
    """Airflow >= 3.2 renders forms from `conn-fields` / `ui-field-behaviour` in this shape."""
    schema = json.loads((AIRFLOW_DIR / "provider.yaml.schema.json").read_text())
    jsonschema.validate(
        get_provider_info()["connection-types"], schema["properties"]["connection-types"]
    )


def test_provider_registers_both_hooks_under_their_connection_types() -> None:
    info = get_provider_info()
    assert info["package-name"] == "returns-sync"
    registered = {entry["connection-type"]: entry for entry in info["connection-types"]}
    assert set(registered) == {"loop", "whiplash"}
    for conn_type, entry in registered.items():
        module_name, _, class_name = entry["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module_name), class_name)
        assert hook.conn_type == conn_type
        assert entry["hook-name"] == hook.hook_name
    assert sorted(info["hook-class-names"]) == sorted(
        entry["hook-class-name"] for entry in info["connection-types"]
    )


def test_provider_info_is_cheap_to_import() -> None:
    """ProvidersManager imports it during discovery: it must not pull in hooks or HTTP libraries."""
    probe = (
        "import sys, include.returns_sync.provider as p; p.get_provider_info(); "
        "print([m for m in sys.modules if m.split('.')[0] in ('requests', 'airflow', 'aiohttp') "
        "or '.clients' in m])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    ).stdout.strip()
    assert loaded == "[]"


@pytest.mark.parametrize(
    ("hook", "attr", "default", "conn_type"),
    [
        (LoopHook, "loop_conn_id", "loop_default", "loop"),
        (WhiplashHook, "whiplash_conn_id", "whiplash_default", "whiplash"),
    ],
)
def test_hooks_declare_the_connection_contract(
    hook: type[Any], attr: str, default: str, conn_type: str
) -> None:
    assert hook.conn_name_attr == attr
    assert hook.default_conn_name == default
    assert hook.conn_type == conn_type
    assert hook.hook_name


def test_creating_a_hook_reads_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """`__init__` does no I/O: a hook for a connection that does not exist is fine until used."""
    monkeypatch.delenv("AIRFLOW_CONN_NOWHERE", raising=False)
    loop, whiplash = LoopHook("nowhere"), WhiplashHook("nowhere")
    assert loop.calls == {} and whiplash.calls == {}
    ok, message = loop.test_connection()
    assert not ok and "nowhere" in message


def test_ui_field_behaviour_relabels_and_prefills_the_production_host() -> None:
    loop = LoopHook.get_ui_field_behaviour()
    assert loop["relabeling"]["password"] == "API key"
    assert loop["placeholders"]["host"] == "https://api.loopreturns.com/api/v1"
    assert "login" in loop["hidden_fields"]
    whiplash = WhiplashHook.get_ui_field_behaviour()
    assert whiplash["relabeling"]["login"] == "OAuth client ID"
    assert whiplash["relabeling"]["password"] == "OAuth client secret"
    assert whiplash["placeholders"]["host"] == "https://www.getwhiplash.com"


class _Field:
    def __init__(self, label: str, **kwargs: Any) -> None:
        self.label = label
        self.kwargs = kwargs


class StringField(_Field):
    pass


class PasswordField(_Field):
    pass


class _Widget:
    pass


@pytest.fixture
def fake_form_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins for wtforms / flask_appbuilder / flask_babel (FAB is not installed here)."""
    wtforms = types.ModuleType("wtforms")
    wtforms.StringField = StringField  # type: ignore[attr-defined]
    wtforms.PasswordField = PasswordField  # type: ignore[attr-defined]
    widgets = types.ModuleType("flask_appbuilder.fieldwidgets")
    widgets.BS3TextFieldWidget = type("BS3TextFieldWidget", (_Widget,), {})  # type: ignore[attr-defined]
    widgets.BS3PasswordFieldWidget = type("BS3PasswordFieldWidget", (_Widget,), {})  # type: ignore[attr-defined]
    babel = types.ModuleType("flask_babel")
    babel.lazy_gettext = lambda text: text  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wtforms", wtforms)
    monkeypatch.setitem(sys.modules, "flask_appbuilder", types.ModuleType("flask_appbuilder"))
    monkeypatch.setitem(sys.modules, "flask_appbuilder.fieldwidgets", widgets)
    monkeypatch.setitem(sys.modules, "flask_babel", babel)


@pytest.mark.usefixtures("fake_form_libraries")
def test_whiplash_form_has_a_password_refresh_token_and_plain_scope_fields() -> None:
    fields = WhiplashHook.get_connection_form_widgets()
    assert set(fields) == {
        "refresh_token",
        "scope",
        "customer_id",
        "shop_id",
        "rate_limit",
        "webhook_secret",
    }
    assert isinstance(fields["refresh_token"], PasswordField)
    assert isinstance(fields["webhook_secret"], PasswordField)
    assert type(fields["refresh_token"].kwargs["widget"]).__name__ == "BS3PasswordFieldWidget"
    assert isinstance(fields["customer_id"], StringField)
    assert fields["shop_id"].label == "Shop ID"


@pytest.mark.usefixtures("fake_form_libraries")
def test_loop_form_matches_its_declarative_fields() -> None:
    fields = LoopHook.get_connection_form_widgets()
    assert set(fields) == set(CONNECTION_FIELDS["loop"]) == {"rate_limit", "webhook_secret"}
    assert isinstance(fields["webhook_secret"], PasswordField)


def test_form_libraries_are_imported_only_inside_the_form_methods() -> None:
    source = (Path(__file__).parents[2] / "include/returns_sync/provider.py").read_text()
    top_level = source.split("def get_provider_info", 1)[0]
    assert "wtforms" not in top_level.replace("WTForms", "")
    assert "flask_appbuilder" not in top_level
