"""The merchant's own configuration: its criteria file and its Whiplash customer id.

With a merchants file (PRODUCT.md section 3.1) each merchant may bring its own criteria file and
must name its `whiplash_customer_id` when it shares a Whiplash account with other merchants. Both
are read here exactly as the DAGs read them, so a typo in one merchant's criteria shows up in the
doctor before it fails that merchant's receipts runs. The Whiplash checks themselves then run as
that customer (`X-Customer-ID`), so a wrong customer id shows up as a refused read there.
"""

from __future__ import annotations

from collections.abc import Sequence

from include.returns_sync.doctor.checks import CheckResult, Status, check


def criteria_row(criteria: str | None) -> CheckResult:
    """The merchant's criteria file loads and validates (as `reconcile_and_act` loads it)."""
    from include.returns_sync.reconcile.criteria import CriteriaError, criteria_path, load_criteria

    row = check(
        "merchant.criteria",
        "The merchant's criteria file (its `criteria` entry, else RETURNS_SYNC_CRITERIA, else "
        "the shipped include/criteria.yaml) loads and validates.",
    )
    source = str(criteria_path(criteria))
    try:
        load_criteria(criteria)
    except CriteriaError as error:
        return row(
            str(error),
            "every receipts run of this merchant fails (no Loop action is taken) until it is "
            "fixed; options are in docs/CRITERIA.md",
            Status.BLOCKING,
            {"path": source},
        )
    return row(f"{source} is valid", "none", Status.OK, {"path": source})


def customer_row(
    whiplash_conn_id: str, customer_id: int | None, account_peers: Sequence[str]
) -> CheckResult:
    """The merchant's Whiplash customer id is set where the account is shared."""
    row = check(
        "merchant.whiplash_customer",
        "Merchants sharing one Whiplash account each name their whiplash_customer_id, sent as "
        "X-Customer-ID on every Whiplash call made for them.",
    )
    details = {
        "whiplash_conn_id": whiplash_conn_id,
        "customer_id": customer_id,
        "shared_with": list(account_peers),
    }
    shared = f"{whiplash_conn_id} is shared with {', '.join(account_peers)}"
    if customer_id is None and account_peers:
        return row(
            f"{shared}, and this merchant names no whiplash_customer_id",
            "it would read every customer's returns in that account: set whiplash_customer_id",
            Status.BLOCKING,
            details,
        )
    if customer_id is None:
        return row(
            f"no customer id: {whiplash_conn_id} serves this merchant alone",
            "none",
            Status.OK,
            details,
        )
    where = shared if account_peers else f"{whiplash_conn_id} serves this merchant alone"
    return row(
        f"X-Customer-ID {customer_id} on every Whiplash call; {where}",
        "none (the Whiplash rows below ran as this customer)",
        Status.OK,
        details,
    )


def merchant_rows(
    *,
    criteria: str | None,
    whiplash_conn_id: str,
    whiplash_customer_id: int | None,
    account_peers: Sequence[str],
) -> list[CheckResult]:
    """Both rows, in report order."""
    return [
        criteria_row(criteria),
        customer_row(whiplash_conn_id, whiplash_customer_id, account_peers),
    ]
