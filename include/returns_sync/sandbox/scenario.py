"""The sandbox orchestrator: both simulators, served together, driven through scenarios.

`Sandbox` owns one clock, a `LoopBackend` and a `WhiplashBackend`, wraps each app with the chaos
middleware (faults, rate limits, call stats) and serves them on two ephemeral ports. Scenario
steps play the outside world: customers create returns (`seed_day`), carriers move labels
(`advance_labels`), the warehouse receives packages with planned discrepancies
(`receive_packages`). `SeedTruth` (truth.py) records what a correct pipeline must conclude, so
tests and benchmarks can check "nothing lost, nothing doubled" against it. The admin API
(admin.py) on the Loop server lets another process drive a running `Sandbox`.

Several merchants (`merchants=[ids]` or a number N -> m01..mNN; merchants.py): Loop serves one
shop per merchant on the same server (the API key picks the shop; each has its own shop id,
webhook secret, returns, notes, subscriptions and its own rate limit, since Loop limits per
key), Whiplash serves one account with one customer per merchant (`X-Customer-ID` scopes; one
rate limit for the account, shared by all its customers). Scenario steps take `merchant=` (None
= every merchant); `merchant_keys(id)` says what to configure for one. Without `merchants`
there is one merchant, `default`, and everything is exactly as it was: `sandbox.loop` is the
first merchant's shop, `sandbox.whiplash` the one account.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from types import TracebackType
from typing import Any

from include.returns_sync.sandbox.admin import add_admin_routes
from include.returns_sync.sandbox.chaos import ChaosMiddleware, with_chaos
from include.returns_sync.sandbox.clock import SandboxClock
from include.returns_sync.sandbox.faults import FaultConfig
from include.returns_sync.sandbox.loop import LoopBackend, build_loop_app
from include.returns_sync.sandbox.merchants import SandboxMerchant, build_merchants, merchant_ids
from include.returns_sync.sandbox.rate_limit import RateLimit
from include.returns_sync.sandbox.serving import RunningServer, serve_in_thread
from include.returns_sync.sandbox.stats import CallStats
from include.returns_sync.sandbox.strict import strict_from_env
from include.returns_sync.sandbox.truth import ReturnTruth, SeedTruth

ELIGIBLE_LABELS = frozenset({"pre_transit", "in_transit", "out_for_delivery", "delivered"})
LABEL_STEPS = {
    "pre_transit": "in_transit",
    "in_transit": "delivered",
    "out_for_delivery": "delivered",
}
DISCREPANCIES = ("exact", "missing", "extra", "damaged", "wrong_sku")
DEFAULT_MIX = {"exact": 0.8, "missing": 0.05, "extra": 0.05, "damaged": 0.05, "wrong_sku": 0.05}
# Reason codes a correct reconciliation gives under the default criteria, per discrepancy.
EXPECTED_REASONS = {
    "exact": [],
    "missing": ["MISSING_ITEMS"],
    "extra": ["EXTRA_ITEMS"],
    "damaged": ["DAMAGED"],
    "wrong_sku": ["MISSING_ITEMS", "UNEXPECTED_SKU"],
}
REASONS = ("Too small", "Too large", "Changed my mind", "Damaged in transit", "Not as pictured")


class Sandbox:
    """Loop + Whiplash simulators on 127.0.0.1, with scenario controls (a context manager)."""

    def __init__(
        self,
        seed: int = 0,
        rate_limits: bool = False,
        faults: FaultConfig | None = None,
        loop_api_key: str = "sandbox-loop-key",
        whiplash_client_id: str = "sandbox-client",
        whiplash_client_secret: str = "sandbox-secret",
        token_ttl_seconds: int = 7200,
        *,
        clock: SandboxClock | None = None,
        loop_webhook_secret: str = "sandbox-loop-webhook-secret",
        strict: bool | None = None,
        loop_rate_window_seconds: float = 60.0,
        merchants: Sequence[str] | int | None = None,
    ) -> None:
        from include.returns_sync.sandbox.whiplash import WhiplashBackend, build_whiplash_app

        self.seed = seed
        self.clock = clock or SandboxClock()
        strict = strict_from_env() if strict is None else strict
        self._rng = random.Random(seed)
        first_shop: list[LoopBackend] = []

        def make_shop(*, api_key: str, webhook_secret: str, shop_id: int) -> LoopBackend:
            shop = LoopBackend(
                clock=self.clock,
                api_key=api_key,
                webhook_secret=webhook_secret,
                shop_id=shop_id,
                strict=strict,
                # One webhook thread and one id space for every shop of the platform.
                dispatcher=first_shop[0].webhooks if first_shop else None,
                shares_ids_with=first_shop[0] if first_shop else None,
            )
            first_shop[:] = first_shop or [shop]
            return shop

        self._merchants = {
            merchant.id: merchant
            for merchant in build_merchants(
                merchant_ids(merchants),
                seed=seed,
                first_rng=self._rng,
                make_shop=make_shop,
                api_key=loop_api_key,
                webhook_secret=loop_webhook_secret,
            )
        }
        #: The first merchant's Loop shop (the only one without `merchants`).
        self.loop = first_shop[0]
        self.whiplash = WhiplashBackend(
            clock=self.clock,
            client_id=whiplash_client_id,
            client_secret=whiplash_client_secret,
            token_ttl_seconds=token_ttl_seconds,
            strict=strict,
            customer_ids=[m.customer_id for m in self._merchants.values()],
        )
        self.truth = SeedTruth()
        self._catalog: list[tuple[str, str, str]] = []
        self._received: set[int] = set()
        shops = {m.shop.api_key: m.shop for m in self._merchants.values()}
        self._loop_gate = self._gate(build_loop_app(shops), "loop", rate_limits, faults)
        self._loop_gate.key_header = b"x-authorization"  # Loop limits per API key
        for index, merchant in enumerate(self._merchants.values()):
            limit = RateLimit.loop(rate_limits, loop_rate_window_seconds)
            limit.fixed_window = strict  # strict: Loop's one-minute window
            if index == 0:
                self._loop_gate.rate_limit = limit
            self._loop_gate.keyed_limits[merchant.shop.api_key] = limit
        self._whiplash_gate = self._gate(
            build_whiplash_app(self.whiplash), "whiplash", rate_limits, faults
        )
        self._servers: list[RunningServer] = []

    def _gate(
        self, app: Any, vendor: str, rate_limits: bool, faults: FaultConfig | None
    ) -> ChaosMiddleware:
        if vendor == "loop":
            add_admin_routes(app, self)
        limit = RateLimit.loop(rate_limits) if vendor == "loop" else RateLimit.whiplash(rate_limits)
        return with_chaos(app, vendor=vendor, faults=faults, rate_limit=limit, stats=CallStats())

    # ----------------------------------------------------------------- serving

    def start(self, loop_port: int = 0, whiplash_port: int = 0, host: str = "127.0.0.1") -> Sandbox:
        """Serve both simulators (0 = any free port); returns self for chaining."""
        if self._servers:
            raise RuntimeError("the sandbox is already running")
        loop_server = serve_in_thread(self._loop_gate, host, loop_port)
        try:
            whiplash_server = serve_in_thread(self._whiplash_gate, host, whiplash_port)
        except Exception:
            loop_server.stop()
            raise
        self._servers = [loop_server, whiplash_server]
        return self

    def stop(self) -> None:
        """Stop both servers (in parallel) and the webhook threads."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.request_stop()
        for server in servers:
            server.stop()
        self.loop.webhooks.close()  # the one dispatcher every shop shares
        self.whiplash.close()

    def __enter__(self) -> Sandbox:
        return self.start() if not self._servers else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def loop_url(self) -> str:
        """Loop API base, e.g. http://127.0.0.1:PORT/api/v1 (the `loop_default` host)."""
        return f"{self._server(0).url}/api/v1"

    @property
    def loop_host_url(self) -> str:
        """The Loop server root (admin routes live under /_sandbox there)."""
        return self._server(0).url

    @property
    def whiplash_url(self) -> str:
        """Whiplash host, e.g. http://127.0.0.1:PORT (paths /api/v2/..., /oauth/token)."""
        return self._server(1).url

    def _server(self, index: int) -> RunningServer:
        if not self._servers:
            raise RuntimeError("the sandbox is not running; call start() first")
        return self._servers[index]

    @property
    def loop_api_key(self) -> str:
        return self.loop.api_key

    @property
    def whiplash_client_id(self) -> str:
        return self.whiplash.client_id

    @property
    def whiplash_client_secret(self) -> str:
        return self.whiplash.client_secret

    @property
    def loop_webhook_secret(self) -> str:
        return self.loop.webhook_secret

    @property
    def strict(self) -> bool:
        """True when both simulators follow the harsher reading of the vendor docs."""
        return all(m.shop.strict for m in self._merchants.values()) and self.whiplash.strict

    def set_strict(self, strict: bool) -> None:
        """Switch both simulators between the lenient and the strict reading (see `strict.py`)."""
        for merchant in self._merchants.values():
            merchant.shop.strict = strict
        self.whiplash.strict = strict
        for limit in self._loop_gate.all_limits():
            limit.fixed_window = strict  # Loop's one-minute window

    def loop_rate_limit(self, merchant: str | None = None) -> RateLimit:
        """Loop's limiter of one merchant's API key (default: the first merchant's):
        `storm()`, `arm_storm()`, `window_seconds` (scale it for tests)."""
        if merchant is None:
            return self._loop_gate.rate_limit
        return self._loop_gate.keyed_limits[self._merchant(merchant).shop.api_key]

    # ----------------------------------------------------------------- merchants

    @property
    def merchants(self) -> list[str]:
        """The merchant ids served, in order (["default"] without `merchants`)."""
        return list(self._merchants)

    def merchant_keys(self, merchant_id: str) -> dict[str, Any]:
        """What to configure for one merchant: loop_api_key, loop_webhook_secret,
        whiplash_customer_id, loop_shop_id (the Whiplash account is shared by all)."""
        return self._merchant(merchant_id).keys()

    def shop(self, merchant_id: str | None = None) -> LoopBackend:
        """One merchant's Loop shop (default: the first merchant's, `sandbox.loop`)."""
        return self.loop if merchant_id is None else self._merchant(merchant_id).shop

    def merchant_of_return(self, loop_return_id: str) -> str | None:
        """The merchant whose shop has this Loop return (None if no shop has it)."""
        for merchant in self._merchants.values():
            try:
                merchant.shop.get(loop_return_id)
            except KeyError:
                continue
            return merchant.id
        return None

    def _merchant(self, merchant_id: str) -> SandboxMerchant:
        merchant = self._merchants.get(merchant_id)
        if merchant is None:
            raise KeyError(
                f"unknown merchant {merchant_id!r}; this sandbox serves {self.merchants}"
            )
        return merchant

    def _targets(self, merchant_id: str | None) -> list[SandboxMerchant]:
        return (
            list(self._merchants.values()) if merchant_id is None else [self._merchant(merchant_id)]
        )

    # ----------------------------------------------------------------- chaos controls

    def set_faults(self, faults: FaultConfig, vendor: str | None = None) -> None:
        """Inject faults on both vendors, or only on `vendor` ("loop" / "whiplash")."""
        for gate in self._gates(vendor):
            gate.faults = faults

    def set_rate_limits(self, enabled: bool, vendor: str | None = None) -> None:
        for gate in self._gates(vendor):
            for limit in {id(limit): limit for limit in gate.all_limits()}.values():
                limit.enabled = enabled
                limit.reset()

    def stats(self) -> dict[str, Any]:
        """Calls and injected faults per vendor: {"loop": {...}, "whiplash": {...}}.

        `whiplash.oauth` counts token grants and refusals (`invalid_grant` among them).
        """
        return {
            "loop": self._loop_gate.stats.snapshot(),
            "whiplash": {
                **self._whiplash_gate.stats.snapshot(),
                "oauth": self.whiplash.tokens.stats(),
            },
        }

    def reset_stats(self) -> None:
        for gate in self._gates(None):
            gate.stats.reset()
        self.whiplash.tokens.reset_stats()

    def _gates(self, vendor: str | None) -> list[ChaosMiddleware]:
        gates = {"loop": self._loop_gate, "whiplash": self._whiplash_gate}
        if vendor is None:
            return list(gates.values())
        if vendor not in gates:
            raise ValueError(f"vendor must be 'loop' or 'whiplash', got {vendor!r}")
        return [gates[vendor]]

    # ----------------------------------------------------------------- scenarios

    def seed_day(
        self, n: int = 200, day: date | None = None, merchant: str | None = None
    ) -> SeedTruth:
        """Create `n` Loop returns spread over `day` (default: the 24 h before now), with the
        matching Whiplash catalog and orders; deterministic for a given seed.

        Mix: 1-4 units (some several of one SKU), mixed outcomes; labels mostly `pre_transit`,
        some already `in_transit`/`delivered`, some `new`/`failure`/`error`/none; ~10% not open;
        a few unmappable (SKU or order unknown to Whiplash, no line items).

        `merchant`: seed only that merchant's shop and customer and return its truth
        (`truth.for_merchant`); None seeds `n` returns for every merchant and returns the
        whole truth. Each merchant has its own Whiplash items (same SKUs as the others) and
        orders (same order names as the others: every store starts at #1001).
        """
        if n < 0:
            raise ValueError(f"seed_day needs n >= 0, got {n}")
        targets = self._targets(merchant)
        for target in targets:
            self._seed_merchant_day(target, n, day)
        return self.truth if merchant is None else self.truth.for_merchant(merchant)

    def _seed_merchant_day(self, merchant: SandboxMerchant, n: int, day: date | None) -> None:
        rng = merchant.rng
        self._ensure_catalog(merchant)
        if day is None:
            end = self.clock.now() - timedelta(minutes=1)
            start = end - timedelta(hours=23, minutes=58)
        else:
            start = datetime.combine(day, time(0, 0), tzinfo=UTC)
            end = start + timedelta(hours=23, minutes=59)
        span = (end - start).total_seconds()
        moments = sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(n))
        for created in moments:
            self._seed_one(merchant, created)

    def _ensure_catalog(self, merchant: SandboxMerchant) -> None:
        """The catalog (same SKUs for every merchant), in this merchant's Whiplash customer."""
        if not self._catalog:
            rng = random.Random(self.seed * 7919 + 1)
            for index in range(1, 41):
                sku = f"SKU-{self.seed % 1000:03d}-{index:03d}"
                fabric = rng.choice(("Linen", "Wool", "Canvas", "Denim"))
                title = f"{fabric} {rng.choice(('Shirt', 'Hat', 'Tote', 'Jacket'))} {index}"
                price = f"{rng.randint(12, 180)}.{rng.choice(('00', '50', '95'))}"
                self._catalog.append((sku, title, price))
        if not merchant.catalog_seeded:
            merchant.catalog_seeded = True
            for sku, title, price in self._catalog:
                self.whiplash.add_item(sku, title, price, customer_id=merchant.customer_id)

    def _seed_one(self, merchant: SandboxMerchant, created: datetime) -> None:
        rng = merchant.rng
        state = _pick(
            rng, {"open": 0.9, "closed": 0.04, "cancelled": 0.025, "expired": 0.025, "review": 0.01}
        )
        label = _pick(
            rng,
            {
                "pre_transit": 0.62,
                "in_transit": 0.1,
                "out_for_delivery": 0.02,
                "delivered": 0.05,
                "new": 0.08,
                "failure": 0.03,
                "error": 0.02,
                "none": 0.08,
            },
        )
        label_status = None if label == "none" else label
        unmappable = (
            _pick(rng, {"": 0.94, "UNKNOWN_SKU": 0.025, "UNKNOWN_ORDER": 0.02, "NO_ITEMS": 0.015})
            or None
        )
        units = self._draw_units(rng)
        order_name, provider_order_id = merchant.new_order()
        returned = dict(units)
        if unmappable == "UNKNOWN_SKU":
            returned[f"GHOST-{merchant.next_order:05d}"] = 1
        if unmappable == "NO_ITEMS":
            returned = {}
        if unmappable != "UNKNOWN_ORDER":
            ordered = [(sku, qty + rng.choice((0, 0, 1))) for sku, qty in units.items()]
            self.whiplash.add_order(
                str(provider_order_id), order_name, ordered, customer_id=merchant.customer_id
            )
        titles = {sku: title for sku, title, _ in self._catalog}
        prices = {sku: price for sku, _, price in self._catalog}
        label_at = None
        if label_status:  # a label moves after the return is created, but never in the future
            label_at = min(created + timedelta(minutes=rng.randint(1, 180)), self.clock.now())
        record = merchant.shop.add_return(
            order_name=order_name,
            provider_order_id=provider_order_id,
            items=list(returned.items()),
            outcome=_pick(
                rng, {"refund": 0.5, "exchange": 0.3, "store_credit": 0.15, "gift_card": 0.05}
            ),
            state=state,
            label_status=label_status,
            created_at=created,
            label_updated_at=label_at,
            customer=f"customer{merchant.next_order}@example.com",
            titles=titles,
            prices=prices,
            return_reason=rng.choice(REASONS),
        )
        self.truth.returns[record["id"]] = ReturnTruth(
            return_id=record["id"],
            state=state,
            label_status=label_status,
            eligible=state == "open" and label_status in ELIGIBLE_LABELS,
            unmappable=unmappable,
            expected_units=returned,
            merchant=merchant.id,
            whiplash_customer_id=merchant.customer_id,
        )

    def seed_missed(
        self, n: int = 3, age: timedelta = timedelta(hours=3), merchant: str | None = None
    ) -> list[str]:
        """Eligible, mappable returns whose label moved `age` ago and that no webhook announced:
        what a poll that already moved its watermark past them misses, and the daily backfill
        must catch. Recorded in the truth like every other return; `n` per merchant (or only
        for `merchant`)."""
        ids = []
        for target in self._targets(merchant):
            ids += self._seed_missed(target, n, age)
        return ids

    def _seed_missed(self, merchant: SandboxMerchant, n: int, age: timedelta) -> list[str]:
        self._ensure_catalog(merchant)
        moment = self.clock.now() - age
        ids = []
        for _ in range(n):
            units = self._draw_units(merchant.rng)
            order_name, provider_order_id = merchant.new_order()
            self.whiplash.add_order(
                str(provider_order_id),
                order_name,
                list(units.items()),
                customer_id=merchant.customer_id,
            )
            record = merchant.shop.add_return(
                order_name=order_name,
                provider_order_id=provider_order_id,
                items=list(units.items()),
                label_status="pre_transit",
                created_at=moment - timedelta(minutes=30),
                label_updated_at=moment,
                titles={sku: title for sku, title, _ in self._catalog},
                prices={sku: price for sku, _, price in self._catalog},
            )
            self.truth.returns[record["id"]] = ReturnTruth(
                return_id=record["id"],
                state="open",
                label_status="pre_transit",
                eligible=True,
                unmappable=None,
                expected_units=dict(units),
                merchant=merchant.id,
                whiplash_customer_id=merchant.customer_id,
            )
            ids.append(record["id"])
        return ids

    def seed_unknown_return(self, merchant: str | None = None, status: int = 300) -> int:
        """A consumer return the warehouse opened by hand under `merchant`'s Whiplash customer
        (default: the first merchant's): no Loop return and no originator behind it, received
        complete (`status`). A correct pipeline reports it once, in that merchant's runs only,
        as UNKNOWN_RETURN and acts on nothing; `truth.unknown` records it."""
        target = self._targets(merchant)[0] if merchant else next(iter(self._merchants.values()))
        self._ensure_catalog(target)
        sku = self._catalog[0][0]
        item = self.whiplash.item_by_sku(sku, target.customer_id)
        assert item is not None  # the catalog was just ensured for this customer
        created = self.whiplash.create_consumer_return(
            {
                "requires_label": False,
                "reference": f"WAREHOUSE-{len(self.truth.unknown) + 1:04d}",
                "shipnotice_items_attributes": [
                    {
                        "item_id": item.id,
                        "quantity": 1,
                        "return_action": "no_action_required",
                        "description": "Arrived without an RMA",
                    }
                ],
            },
            target.customer_id,
        )
        self.whiplash.receive(created["id"], [(sku, 1, 0)], status=status)
        self.truth.unknown[created["id"]] = target.id
        return int(created["id"])

    def _draw_units(self, rng: random.Random) -> dict[str, int]:
        """1-4 units over 1-3 SKUs; about a fifth of returns have several units of one SKU."""
        total = _pick(rng, {"1": 0.5, "2": 0.28, "3": 0.14, "4": 0.08})
        remaining = int(total)
        skus = rng.sample([sku for sku, _, _ in self._catalog], k=3)
        units: dict[str, int] = {}
        for sku in skus:
            if remaining == 0:
                break
            take = remaining if rng.random() < 0.6 else rng.randint(1, remaining)
            units[sku] = take
            remaining -= take
        return units

    def advance_labels(self, merchant: str | None = None) -> int:
        """Carriers move one step: pre_transit -> in_transit -> delivered (open returns only),
        in every merchant's shop (or only `merchant`'s).

        Each move fires the shop's Loop `label.updated` webhook; returns how many labels moved.
        """
        moved = 0
        for target in self._targets(merchant):
            moved += self._advance_labels(target.shop)
        return moved

    def _advance_labels(self, shop: LoopBackend) -> int:
        moved = 0
        for record in shop.all_returns():
            step = LABEL_STEPS.get(record["label_status"] or "")
            if record["state"] != "open" or step is None:
                continue
            shop.set_label_status(record["id"], step)
            truth = self.truth.returns.get(record["id"])
            if truth is not None:
                truth.label_status = step
            moved += 1
        return moved

    def receive_packages(
        self, mix: dict[str, float] | None = None, merchant: str | None = None
    ) -> dict[int, str]:
        """The warehouse receives every not-yet-received consumer return our pipeline created,
        each with a discrepancy drawn from `mix` (default mostly "exact"), and records the
        verdict a correct reconciliation reaches under the default criteria.

        Returns {consumer_return_id: discrepancy}. Consumer returns that point at no Loop
        return the sandbox knows are left alone (nobody ships them), and so are those filed
        under another Whiplash customer than their Loop return's merchant (a pipeline that
        crossed merchants: that package never arrives for that customer). `merchant`: only
        that merchant's.
        """
        wanted = None if merchant is None else self._merchant(merchant).id
        weights = dict(mix or DEFAULT_MIX)
        unknown = sorted(set(weights) - set(DISCREPANCIES))
        if unknown or not weights or sum(weights.values()) <= 0:
            raise ValueError(f"mix keys must be among {DISCREPANCIES} with positive total weight")
        received: dict[int, str] = {}
        for rma in sorted(self.whiplash.consumer_returns(), key=lambda r: r["id"]):
            if rma["id"] in self._received or rma["status"] == 300:
                continue
            return_id = _loop_return_id(rma)
            truth = self.truth.returns.get(return_id) if return_id else None
            if truth is None or wanted not in (None, truth.merchant):
                continue
            expected_customer = truth.whiplash_customer_id
            if expected_customer is not None and rma["customer_id"] != expected_customer:
                continue
            kind = _pick(self._rng, weights)
            lines = self._plan_receipt(kind, truth.expected_units)
            self.whiplash.receive(rma["id"], lines)
            self._received.add(rma["id"])
            loop_state = self._merchant(truth.merchant).shop.get(truth.return_id)["state"]
            truth.consumer_return_id = rma["id"]
            truth.discrepancy = kind
            truth.received = lines
            truth.expected_reasons = list(EXPECTED_REASONS[kind])
            if loop_state != "open":  # a return that is not open is never acted on
                truth.expected_reasons = ["NOT_ACTIONABLE"]
                truth.expected_verdict = "skip"
            else:
                truth.expected_verdict = "process" if not truth.expected_reasons else "flag"
            received[rma["id"]] = kind
        return received

    def _plan_receipt(self, kind: str, expected: dict[str, int]) -> list[tuple[str, int, int]]:
        """(sku, good, damaged) lines for one package with the planned discrepancy."""
        lines = {sku: [qty, 0] for sku, qty in expected.items()}
        target = self._rng.choice(sorted(lines)) if lines else None
        if target is None or kind == "exact":
            pass
        elif kind == "missing":
            lines[target][0] -= 1
        elif kind == "extra":
            lines[target][0] += 1
        elif kind == "damaged":
            lines[target] = [lines[target][0] - 1, 1]
        elif kind == "wrong_sku":
            lines[target][0] -= 1
            others = [sku for sku, _, _ in self._catalog if sku not in lines]
            lines[self._rng.choice(others)] = [1, 0]
        return [(sku, good, damaged) for sku, (good, damaged) in lines.items()]


def _loop_return_id(rma: dict[str, Any]) -> str | None:
    """The Loop return id our pipeline stamped on a consumer return (reference or originator)."""
    originator = rma.get("originator") or {}
    value = originator.get("original_id") or rma.get("reference")
    return str(value) if value else None


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[name] for name in names], k=1)[0]
