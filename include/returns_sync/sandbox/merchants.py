"""The merchants one sandbox serves: a Loop shop each, one customer each in one Whiplash account.

A deployment serving many merchants (issue 13) talks to one Loop shop per merchant (its own API
key, shop id and webhook secret) and, when a 3PL serves them, to one Whiplash account in which
each merchant is a customer (`X-Customer-ID`). `SandboxMerchant` is one such merchant as the
sandbox plays it: its `LoopBackend`, its Whiplash customer id, and the scenario state that must
not leak between merchants (its random stream, its next order number).

Credentials are derived, not random, so a test or a second process can predict them:

- merchant `default` keeps the single-merchant sandbox's values exactly (the `Sandbox` API key
  and webhook secret, shop 65432, customer `CUSTOMER_ID` = 200), so `Sandbox()` is unchanged;
- any other merchant gets `<api key>-<id>`, `<webhook secret>-<id>`, and the next shop id and
  customer id after the default's (65433, 201, ... in the order of the list).

`Sandbox(merchants=3)` means ids `m01`, `m02`, `m03` (`merchant_ids`). Order names (#1001, ...)
and SKUs repeat across merchants, as they do across real brands; Loop return ids and Shopify
order ids do not (both are global ids at their vendors).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from include.returns_sync.sandbox.loop_backend import LoopBackend
from include.returns_sync.sandbox.whiplash_records import CUSTOMER_ID

DEFAULT_MERCHANT = "default"
MERCHANT_ID = re.compile(r"[a-z0-9_]{1,40}")
DEFAULT_SHOP_ID = 65432
#: Shopify order ids of different shops never collide: each merchant has its own range.
ORDER_ID_BASE = 5_400_000_000_000
ORDER_ID_STRIDE = 100_000_000


def merchant_ids(merchants: Sequence[str] | int | None) -> list[str]:
    """The merchant ids a sandbox serves: None -> ["default"]; N -> ["m01", ..., "mNN"];
    a list is checked (ids as in the merchants file, `[a-z0-9_]{1,40}`, distinct, not empty)."""
    if merchants is None:
        return [DEFAULT_MERCHANT]
    if isinstance(merchants, int) and not isinstance(merchants, bool):
        if merchants < 1:
            raise ValueError(f"merchants must be >= 1, got {merchants}")
        return [f"m{index:02d}" for index in range(1, merchants + 1)]
    if isinstance(merchants, str):
        raise ValueError("merchants must be a list of merchant ids or a number, not one string")
    ids = [str(merchant) for merchant in merchants]
    bad = [merchant for merchant in ids if not MERCHANT_ID.fullmatch(merchant)]
    if bad or not ids or len(set(ids)) != len(ids):
        raise ValueError(
            f"merchants must be distinct ids matching [a-z0-9_]{{1,40}}, got {ids!r}"
            + (f" (bad: {bad!r})" if bad else "")
        )
    return ids


@dataclass
class SandboxMerchant:
    """One merchant as the sandbox plays it: its Loop shop and its Whiplash customer."""

    id: str
    index: int
    shop: LoopBackend
    customer_id: int
    rng: random.Random
    next_order: int = 1001
    catalog_seeded: bool = False

    @property
    def order_id_base(self) -> int:
        return ORDER_ID_BASE + self.index * ORDER_ID_STRIDE

    def new_order(self) -> tuple[str, int]:
        """The next (order name, Shopify order id) of this merchant's store."""
        number = self.next_order
        self.next_order += 1
        return f"#{number}", self.order_id_base + number * 37

    def keys(self) -> dict[str, Any]:
        """What a deployment configures for this merchant (the `merchant_keys` of `Sandbox`)."""
        return {
            "loop_api_key": self.shop.api_key,
            "loop_webhook_secret": self.shop.webhook_secret,
            "whiplash_customer_id": self.customer_id,
            "loop_shop_id": self.shop.shop_id,
        }


def build_merchants(
    ids: Sequence[str],
    *,
    seed: int,
    first_rng: random.Random,
    make_shop: Any,
    api_key: str,
    webhook_secret: str,
) -> list[SandboxMerchant]:
    """One `SandboxMerchant` per id; `make_shop(api_key=, webhook_secret=, shop_id=)` builds
    its Loop backend. The first merchant draws from `first_rng` (the sandbox's own stream, so a
    single-merchant sandbox seeds exactly as before); the others from streams of their own."""
    merchants = []
    offset = 0
    for index, merchant_id in enumerate(ids):
        if merchant_id == DEFAULT_MERCHANT:
            key, secret, shop_id, customer = api_key, webhook_secret, DEFAULT_SHOP_ID, CUSTOMER_ID
        else:
            offset += 1
            key, secret = f"{api_key}-{merchant_id}", f"{webhook_secret}-{merchant_id}"
            shop_id, customer = DEFAULT_SHOP_ID + offset, CUSTOMER_ID + offset
        rng = first_rng if index == 0 else random.Random(f"{seed}/{merchant_id}")
        shop = make_shop(api_key=key, webhook_secret=secret, shop_id=shop_id)
        merchants.append(SandboxMerchant(merchant_id, index, shop, customer, rng))
    return merchants
