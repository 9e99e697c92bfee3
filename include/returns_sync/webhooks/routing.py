"""Which merchant a webhook belongs to (PRODUCT.md section 3.1, docs/WEBHOOKS.md#merchants).

Loop: each merchant's shop posts to its own URL (`/webhooks/loop/<merchant id>`; the bare
`/webhooks/loop` is the merchant `default`), so the URL names the merchant and that merchant's
Loop connection holds the secret that must have signed it. An id that is not configured is a
404 and nothing is stored: a shop we do not serve (or a removed merchant) must not fill the
inbox.

Whiplash: one endpoint per deployment, since one Whiplash account serves many merchants. The
signature says which account sent it (the merchants' distinct `whiplash_conn_id`s are tried in
file order); the event then goes to, in this order:
1. the merchant whose RMA it is (`store.merchant_of_whiplash_return`), when that merchant is in
   the signing account;
2. the merchant of that account whose `whiplash_customer_id` the payload names;
3. the first merchant listed for that account: a return that belongs to nobody is then
   reconciled (and reported as `UNKNOWN_RETURN`) by exactly one merchant, not by all of them.

Airflow-free: it takes the merchants and the store as arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from include.returns_sync.merchants import DEFAULT_MERCHANT_ID


class MerchantLike(Protocol):
    """The fields of `merchants.Merchant` routing reads."""

    @property
    def id(self) -> str: ...
    @property
    def loop_conn_id(self) -> str: ...
    @property
    def whiplash_conn_id(self) -> str: ...
    @property
    def whiplash_customer_id(self) -> int | None: ...
    @property
    def order(self) -> int: ...


class UnknownMerchant(LookupError):
    """The URL names a merchant this deployment does not serve (answered 404)."""


class MerchantsUnavailable(RuntimeError):
    """The merchants file cannot be read at all (answered 503: the vendor retries)."""


class RmaOwners(Protocol):
    """The part of `StateStore` that knows whose RMA a Whiplash consumer return is."""

    def merchant_of_whiplash_return(self, whiplash_return_id: int) -> str | None: ...


def configured_merchants() -> list[MerchantLike]:
    """The deployment's merchants in file order; MerchantsUnavailable for an unusable file."""
    from include.returns_sync import merchants

    try:
        return list(merchants.configured_merchants())
    except merchants.MerchantsFileError as exc:  # the message names the file and the problem
        raise MerchantsUnavailable(str(exc)) from None


def ignored_merchant_ids() -> frozenset[str]:
    """Ids of merchants-file entries left out because they are invalid (a typo in one entry).

    Their Loop webhooks are answered 503, not 404: the vendor retries, and once the entry is
    fixed nothing was lost (a 404 could make the vendor drop the delivery or the subscription).
    """
    from include.returns_sync import merchants

    try:
        problems = merchants.load_merchants().problems
    except merchants.MerchantsFileError:
        return frozenset()
    return frozenset(p.merchant_id for p in problems if p.merchant_id)


def merchant_by_id(merchant_id: str, merchants: Sequence[MerchantLike]) -> MerchantLike:
    """The configured merchant `merchant_id`, or UnknownMerchant with a message for the 404.

    The message never lists the configured merchants: the caller is not authenticated yet.
    """
    for merchant in merchants:
        if merchant.id == merchant_id:
            return merchant
    if merchant_id == DEFAULT_MERCHANT_ID:
        raise UnknownMerchant(
            "this deployment has no merchant 'default': Loop webhooks go to "
            "/returns-sync/webhooks/loop/<merchant id>"
        )
    shown = merchant_id if len(merchant_id) <= 40 else merchant_id[:40] + "..."
    raise UnknownMerchant(f"unknown merchant {shown!r}: no such id in the merchants file")


@dataclass(frozen=True)
class WhiplashAccount:
    """One Whiplash connection and the merchants it serves, in file order."""

    conn_id: str
    merchants: tuple[MerchantLike, ...]


def whiplash_accounts(merchants: Sequence[MerchantLike]) -> list[WhiplashAccount]:
    """The distinct Whiplash accounts, ordered by their first merchant in the file."""
    grouped: dict[str, list[MerchantLike]] = {}
    for merchant in sorted(merchants, key=lambda m: m.order):
        grouped.setdefault(merchant.whiplash_conn_id, []).append(merchant)
    return [WhiplashAccount(conn_id, tuple(members)) for conn_id, members in grouped.items()]


@dataclass(frozen=True)
class Route:
    """Where a Whiplash event goes and why (logged with the event)."""

    merchant_id: str
    reason: str  # "rma" | "customer" | "first merchant of the account"


def route_whiplash(
    accounts: Sequence[WhiplashAccount],
    return_id: str | None,
    customer_id: int | None,
    owners: RmaOwners,
) -> Route:
    """The merchant of a Whiplash event signed by (one of) `accounts` (see the module doc).

    `accounts` are the accounts whose secret verified the signature (more than one only when
    two connections share a secret); never empty.
    """
    if not accounts:
        raise ValueError("route_whiplash needs the account(s) that signed the event")
    members = [merchant for account in accounts for merchant in account.merchants]
    if return_id is not None:
        owner = owners.merchant_of_whiplash_return(int(return_id))
        if owner is not None and any(m.id == owner for m in members):
            return Route(owner, "rma")
    if customer_id is not None:
        for merchant in members:
            if merchant.whiplash_customer_id == customer_id:
                return Route(merchant.id, "customer")
    return Route(accounts[0].merchants[0].id, "first merchant of the account")
