"""How single observations become rows: the verdict rules, without any HTTP."""

from __future__ import annotations

import json

import pytest

from include.returns_sync.doctor.checks import CheckResult, Status, exit_code
from include.returns_sync.doctor.loop_checks import LoopListing, page_size_row
from include.returns_sync.doctor.probes import TokenGrant
from include.returns_sync.doctor.report import redact, to_json, to_table
from include.returns_sync.doctor.whiplash_checks import Page, per_page_row, scope_row


def _grant(granted: str | None, requested: str | None = None) -> TokenGrant:
    return TokenGrant("client_credentials", requested, granted, granted is not None, False)


@pytest.mark.parametrize(
    ("granted", "status"),
    [
        ("app_manage", Status.OK),
        ("user_manage offline_access", Status.OK),
        ("app_read", Status.BLOCKING),
        ("user_read", Status.BLOCKING),
        ("public", Status.WARN),
        (None, Status.INCONCLUSIVE),
    ],
)
def test_scope_verdicts(granted: str | None, status: Status) -> None:
    assert scope_row(_grant(granted)).status is status


def test_scope_row_says_what_was_asked() -> None:
    row = scope_row(_grant("app_manage", requested="app_manage"))

    assert "asked for scope app_manage" in row.observed
    assert row.details["requested_scope"] == "app_manage"


def _orders(count: int, header: str | None = None) -> Page:
    return Page([{"id": i} for i in range(count)], {"Per-Page": header} if header else {})


@pytest.mark.parametrize(
    ("rows", "total", "header", "status", "cap"),
    [
        (30, 30, "250", Status.INCONCLUSIVE, None),  # too few orders to see a cap at 50
        (50, 50, None, Status.INCONCLUSIVE, None),
        (250, 900, "250", Status.OK, None),
        (120, 120, "250", Status.OK, None),
        (250, None, None, Status.OK, None),
        (50, 900, None, Status.WARN, 50),  # strict Whiplash: silent cap, no header
        (100, 900, "100", Status.WARN, 100),
    ],
)
def test_per_page_verdicts(
    rows: int, total: int | None, header: str | None, status: Status, cap: int | None
) -> None:
    row = per_page_row(_orders(rows, header), total)

    assert row.status is status, row.observed
    assert row.details.get("cap") == cap


def test_loop_page_size_refused_above_the_setting_blocks() -> None:
    listing = LoopListing(250, [{"id": "1"}], False, refused=[750])

    assert page_size_row(listing, 750).status is Status.BLOCKING
    assert "RETURNS_SYNC_LOOP_PAGE_SIZE=250" in page_size_row(listing, 750).consequence
    assert page_size_row(listing, 250).status is Status.WARN


def test_loop_silent_page_cap_is_a_warning() -> None:
    listing = LoopListing(750, [{"id": str(i)} for i in range(100)], True)

    assert page_size_row(listing, 750).status is Status.WARN


def _row(status: Status, name: str = "loop.key", observed: str = "x") -> CheckResult:
    return CheckResult(name, "assumed", observed, "none", status)


def test_exit_code_only_counts_blocking_rows() -> None:
    calm = [_row(s) for s in (Status.OK, Status.WARN, Status.INCONCLUSIVE, Status.SKIPPED)]

    assert exit_code(calm) == 0
    assert exit_code([*calm, _row(Status.BLOCKING)]) == 1


def test_redaction_reaches_every_field() -> None:
    leaky = CheckResult(
        "whiplash.grant",
        "uses s3cr3t-value",
        "sent s3cr3t-value",
        "rotate s3cr3t-value",
        Status.BLOCKING,
        {"nested": ["s3cr3t-value"]},
    )

    (clean,) = redact([leaky], ["s3cr3t-value", ""])

    assert "s3cr3t-value" not in json.dumps(clean.to_dict())


def test_table_and_json_carry_every_row() -> None:
    rows = [_row(Status.OK), _row(Status.BLOCKING, "whiplash.filter.id_gt", "ignored " * 30)]

    table = to_table(rows, merchant="default", width=140)
    document = json.loads(to_json(rows, merchant="default"))

    assert "loop.key" in table and "whiplash.filter.id_gt" in table
    assert max(len(line) for line in table.splitlines()[:-1]) <= 140
    assert "Exit 1" in table.splitlines()[-1]
    assert [c["name"] for c in document["checks"]] == ["loop.key", "whiplash.filter.id_gt"]
    assert document["summary"]["blocking"] == 1 and document["exit_code"] == 1
