"""The merchants file (`RETURNS_SYNC_MERCHANTS`): what is accepted, and what each mistake costs.

A bad entry costs that merchant only and is named by position, id and key; a file that cannot
be used at all is one clear error. Plain Python: no Airflow, no sandbox.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from include.returns_sync.merchants import (
    DEFAULT_MERCHANT_ID,
    Merchant,
    MerchantsFileError,
    UnknownMerchantError,
    account_owner,
    configured_merchants,
    get_merchant,
    load_merchants,
    merchant_for_dag_id,
    parse_merchants,
)


def parse(text: str, source: Path | None = None):
    return parse_merchants(textwrap.dedent(text), source)


def test_no_file_means_the_default_merchant_with_todays_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RETURNS_SYNC_MERCHANTS", raising=False)
    assert configured_merchants() == [Merchant.default()]
    merchant = get_merchant(DEFAULT_MERCHANT_ID)
    assert (merchant.loop_conn_id, merchant.whiplash_conn_id) == (
        "loop_default",
        "whiplash_default",
    )
    assert merchant.dag_id("loop_returns_to_whiplash") == "loop_returns_to_whiplash"


def test_a_full_entry_and_the_defaults_of_a_minimal_one(tmp_path: Path) -> None:
    loaded = parse(
        """
        merchants:
          - id: acme
            loop_conn_id: loop_acme_shop
            whiplash_conn_id: whiplash_shared
            whiplash_customer_id: 4711
            criteria: criteria/acme.yaml
            warehouse_id: 3
            rma_every_minutes: 10
            receipts_every_minutes: 30
            backfill_at: "03:30"
          - id: globex
            whiplash_conn_id: whiplash_shared
            whiplash_customer_id: 4712
          - id: default
        """,
        tmp_path / "merchants.yaml",
    )
    assert loaded.problems == ()
    acme, globex, default = loaded.merchants
    assert acme == Merchant(
        id="acme",
        loop_conn_id="loop_acme_shop",
        whiplash_conn_id="whiplash_shared",
        whiplash_customer_id=4711,
        criteria=str(tmp_path / "criteria/acme.yaml"),  # relative to the merchants file
        warehouse_id=3,
        rma_every_minutes=10,
        receipts_every_minutes=30,
        backfill_at="03:30",
        order=0,
    )
    assert (globex.loop_conn_id, globex.criteria, globex.order) == ("loop_globex", None, 1)
    assert (default.loop_conn_id, default.whiplash_conn_id) == ("loop_default", "whiplash_default")
    assert acme.dag_id("loop_asn_backfill") == "loop_asn_backfill__acme"
    assert default.dag_id("loop_asn_backfill") == "loop_asn_backfill"
    assert acme.tag == "merchant:acme"


BAD_ENTRIES = [
    # (entry as YAML, key named, words in the message)
    ("{id: Acme}", "id", "[a-z0-9_]{1,40}"),
    ("{id: a-b}", "id", "[a-z0-9_]{1,40}"),
    ("{id: " + "x" * 41 + "}", "id", "[a-z0-9_]{1,40}"),
    ("{id: a__b}", "id", "'__'"),
    ("{id: 12}", "id", "must be text"),
    ("{loop_conn_id: loop_x}", "id", "required"),
    ("{id: acme, warehouse: 3}", "warehouse", "unknown key (did you mean 'warehouse_id'?"),
    ("{id: acme, whiplash_customer_id: '4711'}", "whiplash_customer_id", "integer"),
    ("{id: acme, whiplash_customer_id: 0}", "whiplash_customer_id", "greater than or equal"),
    ("{id: acme, warehouse_id: three}", "warehouse_id", "integer"),
    ("{id: acme, loop_conn_id: ''}", "loop_conn_id", "at least 1"),
    ("{id: acme, rma_every_minutes: 7}", "rma_every_minutes", "divide an hour"),
    ("{id: acme, receipts_every_minutes: 90}", "receipts_every_minutes", "divide an hour"),
    ("{id: acme, backfill_at: '25:00'}", "backfill_at", "HH:MM"),
    ("{id: acme, backfill_at: 3:30}", "backfill_at", 'quoted UTC time of day, e.g. "03:30"'),
    ("{id: acme, backfill_at: [3]}", "backfill_at", "string"),
    ("just-a-string", None, "must be a mapping"),
]


@pytest.mark.parametrize(("entry", "key", "words"), BAD_ENTRIES, ids=[e[0] for e in BAD_ENTRIES])
def test_a_bad_entry_costs_only_that_entry_and_names_it_and_the_key(
    entry: str, key: str | None, words: str
) -> None:
    good_one = "{id: good_one, whiplash_conn_id: w1}"
    good_two = "{id: good_two, whiplash_conn_id: w2}"
    loaded = parse(f"merchants:\n  - {good_one}\n  - {entry}\n  - {good_two}\n")
    assert [m.id for m in loaded.merchants] == ["good_one", "good_two"]
    assert [m.order for m in loaded.merchants] == [0, 1]
    (problem,) = loaded.problems
    assert problem.index == 2
    assert problem.key == key
    assert words in problem.message, problem.message
    assert str(problem).startswith("entry 2")
    assert words in loaded.describe_problems()


def test_a_repeated_id_or_loop_connection_keeps_the_first_entry() -> None:
    loaded = parse(
        """
        merchants:
          - {id: acme, whiplash_customer_id: 1}
          - {id: acme, whiplash_customer_id: 2}
          - {id: globex, loop_conn_id: loop_acme, whiplash_customer_id: 3}
          - {id: initech, whiplash_customer_id: 4}
        """
    )
    assert [m.id for m in loaded.merchants] == ["acme", "initech"]
    assert [(p.index, p.merchant_id, p.key) for p in loaded.problems] == [
        (2, "acme", "id"),
        (3, "globex", "loop_conn_id"),
    ]
    assert "repeats entry 1" in loaded.problems[0].message


def test_merchants_sharing_a_whiplash_account_must_each_name_their_customer() -> None:
    loaded = parse(
        """
        merchants:
          - {id: acme, whiplash_customer_id: 4711}
          - {id: globex}
          - {id: initech, whiplash_conn_id: whiplash_initech}
        """
    )
    assert [m.id for m in loaded.merchants] == ["acme", "initech"]
    (problem,) = loaded.problems
    assert (problem.index, problem.merchant_id, problem.key) == (
        2,
        "globex",
        "whiplash_customer_id",
    )
    assert "share whiplash_conn_id 'whiplash_default'" in problem.message


def test_one_customer_of_one_account_cannot_be_two_merchants() -> None:
    loaded = parse(
        """
        merchants:
          - {id: acme, whiplash_customer_id: 4711}
          - {id: globex, whiplash_customer_id: 4711}
          - {id: initech, whiplash_customer_id: 4711, whiplash_conn_id: other_account}
        """
    )
    assert [m.id for m in loaded.merchants] == ["acme", "initech"]
    assert [(p.merchant_id, p.key) for p in loaded.problems] == [("globex", "whiplash_customer_id")]


UNUSABLE_FILES = [
    ("merchants: [\n", "not valid YAML"),
    ("- id: acme\n", "'merchants' list"),
    ("merchant:\n  - id: acme\n", "'merchants' list"),
    ("merchants: []\n", "non-empty list"),
    ("merchants:\n  - id: acme\nextra: 1\n", "unknown top-level keys ['extra']"),
    ("merchants:\n  - id: acme\n    id: other\n", "given twice"),
]


@pytest.mark.parametrize(("text", "words"), UNUSABLE_FILES, ids=[w for _, w in UNUSABLE_FILES])
def test_a_file_that_cannot_be_used_is_one_clear_error(text: str, words: str) -> None:
    with pytest.raises(MerchantsFileError, match=r"merchants\.yaml") as raised:
        parse_merchants(text, Path("/etc/merchants.yaml"))
    assert words in str(raised.value)


def test_a_missing_file_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETURNS_SYNC_MERCHANTS", str(tmp_path / "nope.yaml"))
    with pytest.raises(MerchantsFileError, match="RETURNS_SYNC_MERCHANTS"):
        configured_merchants()


def test_an_edit_of_the_file_is_seen_by_the_next_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "merchants.yaml"
    path.write_text("merchants:\n  - id: acme\n")
    monkeypatch.setenv("RETURNS_SYNC_MERCHANTS", str(path))
    assert [m.id for m in configured_merchants()] == ["acme"]
    path.write_text("merchants:\n  - id: acme\n  - id: globex\n    whiplash_conn_id: w2\n")
    assert [m.id for m in configured_merchants()] == ["acme", "globex"]
    assert load_merchants(path).merchants[1].whiplash_conn_id == "w2"


def test_an_unknown_or_ignored_merchant_is_a_key_error_that_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "merchants.yaml"
    path.write_text("merchants:\n  - id: acme\n  - {id: globex, warehouse: 1}\n")
    # (globex is ignored, so acme alone uses whiplash_default: no customer id needed)
    monkeypatch.setenv("RETURNS_SYNC_MERCHANTS", str(path))
    with pytest.raises(UnknownMerchantError, match="'initech' is not configured"):
        get_merchant("initech")
    with pytest.raises(KeyError, match=r"'globex': its entry .* is ignored: entry 2"):
        get_merchant("globex")


@pytest.mark.parametrize(
    ("dag_id", "merchant"),
    [
        ("loop_returns_to_whiplash", "default"),
        ("loop_returns_to_whiplash__acme", "acme"),
        ("whiplash_receipts_to_loop__m_01", "m_01"),
        ("loop_asn_backfill__", "default"),
    ],
)
def test_the_merchant_of_a_dag_id(dag_id: str, merchant: str) -> None:
    assert merchant_for_dag_id(dag_id) == merchant


def test_an_accounts_unclaimed_returns_belong_to_its_customer_else_its_first_merchant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "merchants.yaml"
    path.write_text(
        "merchants:\n"
        "  - {id: solo, whiplash_conn_id: whiplash_solo}\n"
        "  - {id: acme, whiplash_customer_id: 4711}\n"
        "  - {id: globex, whiplash_customer_id: 4712}\n"
    )
    monkeypatch.setenv("RETURNS_SYNC_MERCHANTS", str(path))
    owner = account_owner
    assert owner("whiplash_default", 4712).id == "globex"
    assert owner("whiplash_default", 9999).id == "acme"  # the first listed for the account
    assert owner("whiplash_default").id == "acme"
    assert owner("whiplash_solo", 4712).id == "solo"
    assert owner("whiplash_other") is None
