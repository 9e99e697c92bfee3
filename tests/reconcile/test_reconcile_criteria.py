"""Specification of the merchant criteria file: defaults, overrides and load-time validation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from include.returns_sync.domain.dispositions import Dispositions
from include.returns_sync.reconcile import (
    CRITERIA_ENV_VAR,
    Criteria,
    CriteriaError,
    load_criteria,
    parse_criteria,
)
from include.returns_sync.reconcile.criteria import SHIPPED_CRITERIA


def write(tmp_path: Path, text: str, name: str = "criteria.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_file_holds_the_product_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CRITERIA_ENV_VAR, raising=False)
    assert Path(__file__).resolve().parents[2] / "include" / "criteria.yaml" == SHIPPED_CRITERIA
    shipped = load_criteria()
    assert shipped == Criteria()
    assert shipped.model_dump() == {
        "version": 1,
        "on_damaged": "flag",
        "on_shortfall": "flag",
        "on_overage": "flag",
        "on_unexpected_sku": "flag",
        "value_threshold": None,
        "final_statuses": (300,),
        "sku_aliases": {},
        "dispositions": {
            "enabled": False,
            "good": "back_to_stock",
            "damaged": "resale_hold",
            "not_received": "missing",
            "return_processor": None,
        },
    }


def test_the_shipped_file_documents_every_option() -> None:
    text = SHIPPED_CRITERIA.read_text(encoding="utf-8")
    for option in Criteria.model_fields:
        assert f"\n{option}:" in text, option
    assert text.count("#") > 3 * len(Criteria.model_fields)


def test_every_option_can_be_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\n"
        "on_damaged: process\n"
        "on_shortfall: process\n"
        "on_overage: ignore\n"
        "on_unexpected_sku: ignore\n"
        "value_threshold: 250.50\n"
        "final_statuses: [300, 250]\n"
        "sku_aliases:\n"
        "  ' tshirt red m ': ts-red-m\n"
        "  12345: TS-RED-M\n"
        "dispositions:\n"
        "  enabled: true\n"
        "  good: resale_hold\n"
        "  damaged: recycle\n"
        "  not_received: donate\n"
        "  return_processor: returns@warehouse.example\n",
    )
    loaded = load_criteria(path)
    assert loaded == Criteria(
        on_damaged="process",
        on_shortfall="process",
        on_overage="ignore",
        on_unexpected_sku="ignore",
        value_threshold=Decimal("250.50"),
        final_statuses=(300, 250),
        sku_aliases={"TSHIRT RED M": "TS-RED-M", "12345": "TS-RED-M"},
        dispositions=Dispositions(
            enabled=True,
            good="resale_hold",
            damaged="recycle",
            not_received="donate",
            return_processor="returns@warehouse.example",
        ),
    )


def test_omitted_options_take_the_defaults(tmp_path: Path) -> None:
    assert load_criteria(write(tmp_path, "version: 1\n")) == Criteria()


def test_the_path_comes_from_the_argument_then_the_environment_then_the_shipped_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = write(tmp_path, "version: 1\non_damaged: process\n", "env.yaml")
    from_arg = write(tmp_path, "version: 1\non_overage: ignore\n", "arg.yaml")
    monkeypatch.setenv(CRITERIA_ENV_VAR, str(from_env))
    assert load_criteria().on_damaged == "process"
    assert load_criteria(from_arg) == Criteria(on_overage="ignore")
    assert load_criteria(str(from_arg)) == Criteria(on_overage="ignore")
    monkeypatch.setenv(CRITERIA_ENV_VAR, "  ")
    assert load_criteria() == Criteria()


def test_a_final_status_is_one_the_criteria_list() -> None:
    assert Criteria().is_final(300)
    assert not Criteria().is_final(200)
    assert not Criteria().is_final(None)
    assert Criteria(final_statuses=(250, 300)).is_final(250)


BAD_FILES = [
    ("on_damaged: maybe", "on_damaged: must be one of flag, process (got 'maybe')"),
    ("on_shortfall: ignore", "on_shortfall: must be one of flag, process (got 'ignore')"),
    ("on_overage: process", "on_overage: must be one of flag, ignore (got 'process')"),
    ("on_unexpected_sku: yes", "on_unexpected_sku: must be one of flag, ignore (got True)"),
    ("value_threshold: -1", "value_threshold: must be a non-negative amount or null (got -1)"),
    ("value_threshold: lots", "value_threshold: must be a non-negative amount or null"),
    ("value_threshold: .nan", "value_threshold: must be a non-negative amount or null"),
    ("value_threshold: true", "value_threshold: must be a non-negative amount or null"),
    ("final_statuses: 300", "final_statuses: must be a non-empty list of Whiplash status codes"),
    ("final_statuses: []", "final_statuses: must be a non-empty list of Whiplash status codes"),
    ("final_statuses: [300, '250']", "final_statuses: '250' is not a Whiplash status code"),
    ("final_statuses: [0]", "final_statuses: 0 is not a Whiplash status code"),
    ("sku_aliases: [A, B]", "sku_aliases: must be a mapping of alias SKU -> canonical SKU"),
    ("sku_aliases: {A: ' '}", "sku_aliases: 'A': ' ': a SKU cannot be blank"),
    ("sku_aliases: {a: A}", "sku_aliases: 'a' is mapped onto itself"),
    (
        "sku_aliases: {a: X, ' A ': Y}",
        "sku_aliases: ' A ' and 'a' are the same SKU but map to different canonical SKUs",
    ),
    (
        "sku_aliases: {a: b, b: c}",
        "sku_aliases: 'a' maps to 'B', which is itself an alias of 'C'; map 'a' straight to 'C'",
    ),
    ("sku_aliases: {a: [b]}", "sku_aliases: ['b'] is not a SKU"),
    ("on_damage: flag", "on_damage: unknown key (allowed keys: version, on_damaged,"),
    (
        "dispositions: {good: shelf}",
        "dispositions.good: must be one of back_to_stock, resale_hold, recycle, donate, missing "
        "(got 'shelf')",
    ),
    (
        "dispositions: {enable: true}",
        "dispositions.enable: unknown key (allowed keys: enabled, good, damaged, not_received,",
    ),
    ("dispositions: {enabled: maybe}", "dispositions.enabled: Input should be a valid boolean"),
]


@pytest.mark.parametrize(("line", "message"), BAD_FILES)
def test_a_bad_option_fails_naming_the_file_the_key_and_the_problem(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write(tmp_path, f"version: 1\n{line}\n")
    with pytest.raises(CriteriaError) as failure:
        load_criteria(path)
    assert str(failure.value).startswith(f"{path}: ")
    assert message in str(failure.value)


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\non_damaged: maybe\non_overage: sometimes\ncolour: red\n")
    with pytest.raises(CriteriaError) as failure:
        load_criteria(path)
    problems = str(failure.value).splitlines()
    assert problems == [
        f"{path}: on_damaged: must be one of flag, process (got 'maybe')",
        f"{path}: on_overage: must be one of flag, ignore (got 'sometimes')",
        f"{path}: colour: unknown key (allowed keys: version, on_damaged, on_shortfall, "
        "on_overage, on_unexpected_sku, value_threshold, final_statuses, sku_aliases, "
        "dispositions)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("on_damaged: flag\n", "version: required key is missing (this release reads version 1)"),
        ("version: 2\n", "version: unsupported criteria version 2 (this release reads version 1)"),
        ("version: '1'\n", "version: unsupported criteria version '1'"),
        ("version: true\n", "version: unsupported criteria version True"),
    ],
)
def test_the_version_field_is_required_and_checked(text: str, message: str) -> None:
    with pytest.raises(CriteriaError) as failure:
        parse_criteria(text, source="criteria.yaml")
    assert str(failure.value).startswith("criteria.yaml: ")
    assert message in str(failure.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "criteria.yaml: must be a mapping of criteria options (got NoneType)"),
        ("- version: 1\n", "criteria.yaml: must be a mapping of criteria options (got list)"),
        ("version: 1\non_damaged: [\n", "criteria.yaml: not valid YAML: "),
        (
            "version: 1\non_damaged: flag\non_damaged: process\n",
            "criteria.yaml: not valid YAML: key 'on_damaged' is given twice (line 3, column 1)",
        ),
    ],
)
def test_a_file_that_is_not_a_criteria_mapping_is_rejected(text: str, message: str) -> None:
    with pytest.raises(CriteriaError) as failure:
        parse_criteria(text, source="criteria.yaml")
    assert message in str(failure.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(CriteriaError) as failure:
        load_criteria(missing)
    assert str(failure.value) == f"{missing}: criteria file not found"


def test_criteria_cannot_be_changed_after_loading() -> None:
    with pytest.raises(ValueError, match="frozen"):
        Criteria().on_damaged = "process"  # type: ignore[misc]
