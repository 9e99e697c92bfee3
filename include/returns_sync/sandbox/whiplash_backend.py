"""The Whiplash simulator's backend: all state, behind one lock, with no HTTP in it.

Like a moto backend: the FastAPI layer (`whiplash_app`) only translates HTTP to these methods,
and the orchestrator and tests call them directly to seed the catalog, have the warehouse
receive a package (`receive`), or check what happened (`creates_count`, `webhook_deliveries`).
Every method that answers the API returns vendor JSON (dicts) or raises `WhiplashApiError`.

Customers. One backend is one Whiplash account. By default it has one customer (`CUSTOMER_ID`)
and ignores `X-Customer-ID`, as it always did. With several (`customer_ids=[...]`, one per
merchant when a 3PL serves many brands from one account) every item, order, consumer return and
originator belongs to one customer, and the API methods take `customer`, the scope the HTTP layer
read from `X-Customer-ID` (`customer_scope`; None = every customer):

- reads (lists, counts, gets, originators) see only that customer's records; another customer's
  record answers 404 as if it did not exist. Without the header a multi-customer user sees every
  customer's records, as a 3PL user acting for all of them would (whiplash-api.md section 2.3:
  the header is optional and scopes a user who can act for several customers);
- SKUs, Shopify order ids and order names repeat across customers: the unique keys are
  (customer, SKU), (customer, order originator id) and, for consumer returns, (customer,
  provider, originator original_id), so a 409 is per customer and provider (section 7);
- a consumer return created under `X-Customer-ID` belongs to that customer, and its order and
  items must be that customer's (422 "does not exist" otherwise, since that customer cannot see
  them); created without the header it belongs to its order's customer (else its items'), and
  items of another customer are refused (422);
- a header naming a customer the account does not have is 403; strict (the harsher reading
  where the docs are silent): writes to consumer returns without the header are 422;
- webhook subscriptions belong to a customer (body `customer_id`, else the header) and receive
  only that customer's events; one made without either receives every customer's (3PL);
  webhooks carry the record's `customer_id`;
- the rate limit stays one per account (the chaos gate in front of the app), shared by all.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from include.returns_sync.sandbox.clock import SandboxClock
from include.returns_sync.sandbox.corruption import Corruptions, Mutator
from include.returns_sync.sandbox.delivery import WebhookDelivery, WebhookDispatcher
from include.returns_sync.sandbox.whiplash_notify import Notifier, as_shipnotice
from include.returns_sync.sandbox.whiplash_oauth import TokenIssuer
from include.returns_sync.sandbox.whiplash_records import (
    CONSUMER_RETURN_FIELDS,
    CUSTOMER_ID,
    EVENT_FIELDS,
    ITEM_FIELDS,
    ORDER_FIELDS,
    ORIGINATOR_FIELDS,
    STATUS_NAMES,
    SUBSCRIPTION_FIELDS,
    ConsumerReturn,
    Item,
    NotificationEvent,
    NotificationSubscription,
    Order,
    OrderItem,
    Originator,
    WhiplashApiError,
)
from include.returns_sync.sandbox.whiplash_render import (
    render_consumer_return,
    render_event,
    render_item,
    render_order,
    render_originator,
    render_subscription,
    ruby_decimal,
)
from include.returns_sync.sandbox.whiplash_returns import ReturnFactory
from include.returns_sync.sandbox.whiplash_search import (
    Fields,
    Page,
    parse_search,
    sort_records,
)


@dataclass(frozen=True)
class ApiCall:
    """One request the simulator answered (the backend's view, before any injected fault)."""

    method: str
    path: str
    query: str
    status: int
    at: datetime


@dataclass(frozen=True)
class _Resource:
    records: Callable[[], list[Any]]
    fields: Fields
    render: Callable[[Any], dict[str, Any]]


class WhiplashBackend:
    """State of one Whiplash customer account: catalog, orders, returns, webhooks, tokens."""

    def __init__(
        self,
        clock: SandboxClock | None = None,
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",
        token_ttl_seconds: int = 7200,
        refresh_token: str | None = "sandbox-refresh-0",
        *,
        revoke_access_on_refresh: bool = True,
        webhook_timeout: float = 2.0,
        strict: bool = False,
        api_key: str = "sandbox-api-key",
        customer_ids: Sequence[int] = (CUSTOMER_ID,),
    ) -> None:
        if not customer_ids or len(set(customer_ids)) != len(customer_ids):
            raise ValueError(f"customer_ids must be distinct and not empty, got {customer_ids!r}")
        #: The account's customers; the first one owns what is seeded without a customer.
        self.customer_ids: tuple[int, ...] = tuple(int(c) for c in customer_ids)
        self.clock = clock or SandboxClock()
        #: The harsher reading of what Whiplash's docs leave open (see `strict.py`).
        self.strict = strict
        #: Test knob (any mode): search predicates the list and count endpoints drop as unknown,
        #: e.g. {"id_gt", "updated_at_gt"}; Whiplash may ignore a predicate it does not support.
        self.ignored_predicates: set[str] = set()
        self.client_id = client_id
        self.client_secret = client_secret
        #: The account's API key: strict signs `version: 1` webhooks with it (whiplash_notify).
        self.api_key = api_key
        self.tokens = TokenIssuer(
            self.clock,
            client_id,
            client_secret,
            token_ttl_seconds,
            refresh_token,
            revoke_access_on_refresh=revoke_access_on_refresh,
            strict=lambda: self.strict,
        )
        self.call_log: list[ApiCall] = []
        self.last_customer_id: str | None = None
        self.last_shop_id: str | None = None
        self._lock = threading.RLock()
        self._ids: dict[str, int] = {}
        self._items: dict[int, Item] = {}
        self._orders: dict[int, Order] = {}
        # Unique keys, as the vendor's database indexes them, per customer: SKU, Shopify order
        # id, and the consumer return's (provider, originator original_id).
        self._sku_index: dict[tuple[int, str], Item] = {}
        self._order_index: dict[tuple[int, str], Order] = {}
        self._return_index: dict[tuple[int, str, str], ConsumerReturn] = {}
        self._returns: dict[int, ConsumerReturn] = {}
        self._originators: dict[int, Originator] = {}
        self._creates: Counter[tuple[int, str]] = Counter()
        self.notifier = Notifier(
            self._now,
            self.next_id,
            client_secret,
            WebhookDispatcher(timeout=webhook_timeout),
            api_key=api_key,
            strict=lambda: self.strict,
        )
        self.webhooks = self.notifier.dispatcher
        self._factory = ReturnFactory(self)
        #: Opt-in bad payloads per consumer return id, applied to API answers only.
        self.corruptions = Corruptions()
        self._resources = {
            "items": _Resource(lambda: list(self._items.values()), ITEM_FIELDS, render_item),
            "orders": _Resource(lambda: list(self._orders.values()), ORDER_FIELDS, render_order),
            "consumer_returns": _Resource(
                lambda: list(self._returns.values()),
                CONSUMER_RETURN_FIELDS,
                lambda record: self.corruptions.in_list(record.id, render_consumer_return(record)),
            ),
            "notification_events": _Resource(
                lambda: list(self.notifier.events.values()), EVENT_FIELDS, render_event
            ),
            "notification_subscriptions": _Resource(
                self.notifier.live_subscriptions,
                SUBSCRIPTION_FIELDS,
                render_subscription,
            ),
        }

    # ------------------------------------------------------------------ seeding (orchestrator)

    @property
    def multi_customer(self) -> bool:
        """True when the account has several customers (then `X-Customer-ID` scopes)."""
        return len(self.customer_ids) > 1

    def customer_scope(self, header: str | None, *, write: bool = False) -> int | None:
        """The customer an API call acts for, from its `X-Customer-ID` (None = every customer).

        One customer: the header is ignored (the user can only act for that one). Several: a
        customer the account does not have is 403; no header means every customer, except
        that strict refuses a write to consumer returns without it (422).
        """
        if not self.multi_customer:
            return None
        if header is None or not header.strip():
            if write and self.strict:
                raise WhiplashApiError(
                    422,
                    "X-Customer-ID is missing: this user acts for several customers, "
                    "say which one the consumer return belongs to",
                )
            return None
        try:
            customer = int(header.strip())
        except ValueError:
            customer = None
        if customer not in self.customer_ids:
            raise WhiplashApiError(403, f"You are not authorized to act for customer {header!r}")
        return customer

    def _owner(self, customer_id: int | None) -> int:
        """The customer a seeded record belongs to (None = the account's first customer)."""
        owner = self.customer_ids[0] if customer_id is None else int(customer_id)
        if owner not in self.customer_ids:
            raise ValueError(f"customer {owner} is not one of the account's {self.customer_ids}")
        return owner

    def add_item(
        self, sku: str, title: str = "", price: str = "0.00", customer_id: int | None = None
    ) -> dict[str, Any]:
        """Add a catalog item (SKUs are unique per customer, as in Whiplash)."""
        if not sku or not sku.strip():
            raise ValueError("add_item needs a non-empty sku")
        with self._lock:
            owner = self._owner(customer_id)
            if (owner, sku) in self._sku_index:
                raise ValueError(f"an item with sku {sku!r} already exists")
            now = self._now()
            item = Item(
                self.next_id("item"),
                sku,
                title or sku,
                ruby_decimal(price),
                now,
                now,
                customer_id=owner,
            )
            self._items[item.id] = item
            self._sku_index[(owner, sku)] = item
            self.notifier.publish("item.created", partial(render_item, item), owner)
            return render_item(item)

    def add_order(
        self,
        original_id: str,
        order_orig: str,
        items: list[tuple[str, int]],
        warehouse_id: int = 1,
        customer_id: int | None = None,
    ) -> dict[str, Any]:
        """Add a shipped Shopify order (`originator.original_id` = the Shopify order id)."""
        with self._lock:
            owner = self._owner(customer_id)
            if (owner, str(original_id)) in self._order_index:
                raise ValueError(f"an order with originator original_id {original_id!r} exists")
            now = self._now()
            order_id = self.next_id("order")
            lines = []
            for sku, quantity in items:
                item = self.item_by_sku(sku, owner)
                if item is None:
                    raise ValueError(f"add_order: unknown SKU {sku!r}; add_item it first")
                if quantity < 1:
                    raise ValueError(f"add_order: quantity for {sku!r} must be >= 1")
                lines.append(OrderItem(self.next_id("order_item"), order_id, item, quantity, now))
            originator = self.new_originator(
                "Order", order_id, "shopify", str(original_id), customer_id=owner
            )
            order = Order(
                order_id, order_orig, warehouse_id, originator, lines, now, now, customer_id=owner
            )
            self._orders[order_id] = order
            self._order_index[(owner, str(original_id))] = order
            self.notifier.publish("order.created", partial(render_order, order), owner)
            return render_order(order)

    def corrupt(self, consumer_return_id: int, mutate: Mutator) -> None:
        """Serve this consumer return's JSON through `mutate` in lists and gets from now on."""
        self.corruptions.corrupt(consumer_return_id, mutate)

    # ------------------------------------------------------------------ inspection (tests)

    def consumer_returns(self, customer_id: int | None = None) -> list[dict[str, Any]]:
        """Every consumer return, or only those of `customer_id`."""
        with self._lock:
            return [
                render_consumer_return(r)
                for r in self._returns.values()
                if customer_id is None or r.customer_id == customer_id
            ]

    def get_consumer_return(self, id: int) -> dict[str, Any]:
        with self._lock:
            return render_consumer_return(self._return(id))

    def creates_count(self, original_id: str, customer_id: int | None = None) -> int:
        """How many creates succeeded for this `originator_attributes.original_id` (for one
        customer, or summed over all)."""
        with self._lock:
            return sum(
                count
                for (customer, key), count in self._creates.items()
                if key == str(original_id) and customer_id in (None, customer)
            )

    def item_originators(self, consumer_return_id: int) -> list[dict[str, Any]]:
        """Each return line's `originator_attributes` as sent on create (None when absent)."""
        with self._lock:
            record = self._return(consumer_return_id)
            return [
                {
                    "return_item_id": line.id,
                    "sku": line.sku,
                    "original_id": line.originator.original_id if line.originator else None,
                    "group_id": line.originator.group_id if line.originator else None,
                    "misc": line.originator.misc if line.originator else None,
                }
                for line in record.return_items
            ]

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        return self.webhooks.deliveries()

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until every queued webhook has been attempted; False on timeout."""
        return self.webhooks.wait_idle(timeout)

    @property
    def current_refresh_token(self) -> str | None:
        return self.tokens.current_refresh_token

    def revoke_all_tokens(self) -> None:
        """Revoke every access token now (forces clients down their 401 -> refresh path)."""
        self.tokens.revoke_all()

    def close(self) -> None:
        self.webhooks.close()

    # ------------------------------------------------------------------ API: generic lists

    def search(
        self,
        resource: str,
        search: str | None,
        sort: str | None,
        page: Page,
        customer: int | None = None,
    ) -> list[dict[str, Any]]:
        """One page of a list endpoint, already rendered (raises `SearchError` on bad input)."""
        spec = self._resources[resource]
        with self._lock:
            matched = self._matching(spec, search, customer)
            return [
                spec.render(record)
                for record in page.slice(sort_records(matched, sort, spec.fields))
            ]

    def count(self, resource: str, search: str | None, customer: int | None = None) -> int:
        spec = self._resources[resource]
        with self._lock:
            return len(self._matching(spec, search, customer))

    def originators(
        self,
        originated_type: str,
        search: str | None,
        sort: str | None,
        page: Page,
        customer: int | None = None,
    ) -> list[dict[str, Any]]:
        """Originators of one type; consumer returns are filed under their STI base, Shipnotice."""
        with self._lock:
            records = [
                o
                for o in self._originators.values()
                if o.originated_type == originated_type and _visible(o, customer)
            ]
            matched = [
                r
                for r in records
                if parse_search(search, ORIGINATOR_FIELDS, self.ignored_predicates).matches(
                    r, ORIGINATOR_FIELDS
                )
            ]
            ordered = sort_records(matched, sort, ORIGINATOR_FIELDS)
            return [render_originator(record) for record in page.slice(ordered)]

    def get(self, resource: str, id: int, customer: int | None = None) -> dict[str, Any]:
        spec = self._resources[resource]
        with self._lock:
            for record in spec.records():
                if record.id == id and _visible(record, customer):
                    return spec.render(record)
        raise WhiplashApiError(404, f"Couldn't find {resource.rstrip('s')} with 'id'={id}")

    # ------------------------------------------------------------------ API: consumer returns

    def create_consumer_return(
        self, body: Mapping[str, Any], customer: int | None = None
    ) -> dict[str, Any]:
        """Validate like the spec, enforce one return per customer, provider and originator
        original_id, notify. `customer`: the `X-Customer-ID` scope (None = every customer)."""
        with self._lock:
            record = self._factory.build(body, customer)
            self._returns[record.id] = record
            originator = record.originator
            if originator and originator.original_id:
                key = (record.customer_id, originator.provider, originator.original_id)
                self._return_index[key] = record
            original_id = originator.original_id if originator else None
            self._creates[(record.customer_id, original_id or "")] += 1
            self._notify(record, "consumer_return.created")
            return render_consumer_return(record)

    def update_consumer_return(
        self, id: int, body: Mapping[str, Any], customer: int | None = None
    ) -> dict[str, Any]:
        with self._lock:
            record = self._return(id, customer)
            self._factory.apply_update(record, body)
            record.updated_at = self._now()
            return render_consumer_return(record)

    def delete_consumer_return(self, id: int, customer: int | None = None) -> None:
        """Only a return that has not arrived can be deleted; its originator id is freed."""
        with self._lock:
            record = self._return(id, customer)
            if record.status > 100 or record.arrived_at is not None:
                raise WhiplashApiError(
                    422, f"consumer return {id} has arrived ({record.status}) and cannot be deleted"
                )
            self._notify(record, "consumer_return.deleted")
            del self._returns[id]
            if record.originator:
                originator = record.originator
                self._originators.pop(originator.id, None)
                key = (record.customer_id, originator.provider, originator.original_id or "")
                self._return_index.pop(key, None)
            for line in record.return_items:
                if line.originator:
                    self._originators.pop(line.originator.id, None)

    def simulate_processing(
        self, id: int, finalize: bool, customer: int | None = None
    ) -> dict[str, Any]:
        """The sandbox-only warehouse step: Processing (200), or Completed (300) all good."""
        with self._lock:
            record = self._return(id, customer)
            if record.status == 300:
                raise WhiplashApiError(422, f"consumer return {id} is already completed")
            if finalize:
                received = [(line.sku, line.quantity, 0) for line in record.return_items]
                self.receive(id, received, status=300)
            else:
                self._set_status(record, 200)
            return render_consumer_return(record)

    def receive(
        self, consumer_return_id: int, received: list[tuple[str, int, int]], status: int = 300
    ) -> dict[str, Any]:
        """The warehouse receives the package: (sku, quantity_good, quantity_damaged) per SKU.

        SKUs on the return get these counts (spread over its lines in order); other SKUs are
        appended as extra lines with expected quantity 0. Sets arrived/delivered (and completed
        for 300), bumps updated_at and sends the status webhooks.
        """
        if status not in STATUS_NAMES:
            raise ValueError(f"unknown consumer return status {status}; use {sorted(STATUS_NAMES)}")
        with self._lock:
            record = self._return(consumer_return_id)
            for sku, good, damaged in received:
                if good < 0 or damaged < 0:
                    raise ValueError(f"receive: negative quantity for {sku!r}")
                self._factory.receive_sku(record, sku, good, damaged)
            self._set_status(record, status, force_update=True)
            return render_consumer_return(record)

    # ------------------------------------------------------------------ API: subscriptions

    def create_subscription(
        self, body: Mapping[str, Any], customer: int | None = None
    ) -> dict[str, Any]:
        """A webhook subscription owned by the body's `customer_id`, else by the scope's customer,
        else (several customers, neither given) by the whole account."""
        with self._lock:
            owner = self._subscription_owner(body, customer)
            return render_subscription(self.notifier.create(body, owner))

    def update_subscription(
        self, id: int, body: Mapping[str, Any], customer: int | None = None
    ) -> dict[str, Any]:
        with self._lock:
            self._subscription(id, customer)
            return render_subscription(self.notifier.update(id, body))

    def delete_subscription(self, id: int, customer: int | None = None) -> None:
        with self._lock:
            self._subscription(id, customer)
            self.notifier.discard(id)

    def test_subscription(self, id: int, customer: int | None = None) -> dict[str, Any]:
        """Send one sample notification (the newest consumer return it may see) to the
        subscriber."""
        with self._lock:
            owner = self._subscription(id, customer).customer_id
            visible = [r for r in self._returns.values() if _visible(r, owner)]
            newest = max(visible, key=lambda r: (r.updated_at, r.id), default=None)
            sample = render_consumer_return(newest) if newest else {}
            return render_subscription(self.notifier.send_test(id, sample))

    # ------------------------------------------------------------------ helpers for siblings

    def next_id(self, kind: str) -> int:
        """Distinct id ranges per resource, so a client mixing up ids fails loudly."""
        bases = {
            "item": 1000,
            "order": 50000,
            "order_item": 70000,
            "consumer_return": 180000,
            "return_item": 4000,
            "originator": 900000,
            "subscription": 300,
        }
        self._ids[kind] = self._ids.get(kind, bases.get(kind, 0)) + 1
        return self._ids[kind]

    def new_originator(
        self,
        originated_type: str,
        originated_id: int | None,
        provider: str,
        original_id: str | None,
        group_id: str | None = None,
        misc: str | None = None,
        *,
        customer_id: int | None = None,
    ) -> Originator:
        now = self._now()
        originator = Originator(
            self.next_id("originator"),
            originated_type,
            originated_id,
            provider,
            original_id,
            group_id,
            misc,
            now,
            now,
            application_id=1 if provider == "api" else None,
            customer_id=customer_id,
        )
        self._originators[originator.id] = originator
        return originator

    def item_by_sku(self, sku: str, customer_id: int | None = None) -> Item | None:
        """The item with this SKU of `customer_id` (None = the account's first customer)."""
        owner = self.customer_ids[0] if customer_id is None else customer_id
        return self._sku_index.get((owner, sku))

    def item(self, id: int) -> Item | None:
        return self._items.get(id)

    def order(self, id: int) -> Order | None:
        return self._orders.get(id)

    def return_with_original_id(
        self, original_id: str, customer_id: int | None = None, provider: str = "api"
    ) -> ConsumerReturn | None:
        """The consumer return of `customer_id` (None = the first) with this originator id."""
        owner = self.customer_ids[0] if customer_id is None else customer_id
        return self._return_index.get((owner, provider, original_id))

    def now(self) -> datetime:
        return self._now()

    # ------------------------------------------------------------------ internals

    def _now(self) -> datetime:
        return self.clock.now().replace(microsecond=0)

    def _matching(self, spec: _Resource, search: str | None, customer: int | None) -> list[Any]:
        parsed = parse_search(search, spec.fields, self.ignored_predicates)
        return [
            record
            for record in spec.records()
            if _visible(record, customer) and parsed.matches(record, spec.fields)
        ]

    def _return(self, id: int, customer: int | None = None) -> ConsumerReturn:
        record = self._returns.get(id)
        if record is None or not _visible(record, customer):
            raise WhiplashApiError(404, f"Couldn't find ConsumerReturn with 'id'={id}")
        return record

    def _set_status(
        self, record: ConsumerReturn, status: int, *, force_update: bool = False
    ) -> None:
        now = self._now()
        changed = status != record.status
        if status >= 150 or status == 25:
            record.arrived_at = record.arrived_at or now
            record.delivered_at = record.delivered_at or now
        if status == 300:
            record.completed_at = record.completed_at or now
        record.status = status
        if changed or force_update:
            record.updated_at = now
        if changed:
            self._notify(record, "consumer_return.status_changed")
            if self.strict:  # a ConsumerReturn is a Shipnotice: the parent's event fires too
                self.notifier.publish(
                    "shipnotice.status_changed",
                    lambda: as_shipnotice(render_consumer_return(record)),
                    record.customer_id,
                )
            if status == 300:
                self._notify(record, "consumer_return.completed")
            if status == 25:
                self._notify(record, "consumer_return.unexpected")

    def _subscription(self, id: int, customer: int | None) -> NotificationSubscription:
        subscription = self.notifier.subscription(id)
        if customer is not None and subscription.customer_id != customer:
            raise WhiplashApiError(404, f"Couldn't find NotificationSubscription with 'id'={id}")
        return subscription

    def _subscription_owner(self, body: Mapping[str, Any], customer: int | None) -> int | None:
        """One customer: always it (a `customer_id` in the body is ignored, as it always was).
        Several: the body's `customer_id` (one of the account's, and the scope's if scoped),
        else the scope's customer, else None (every customer's events)."""
        if not self.multi_customer:
            return self.customer_ids[0]
        raw = body.get("customer_id")
        if raw is None:
            return customer
        try:
            wanted = int(str(raw))
        except ValueError:
            wanted = None
        if wanted not in self.customer_ids:
            raise WhiplashApiError(422, f"customer_id {raw!r} does not exist")
        if customer is not None and wanted != customer:
            raise WhiplashApiError(403, f"You are not authorized to act for customer {raw!r}")
        return wanted

    def _notify(self, record: ConsumerReturn, event_name: str) -> None:
        self.notifier.publish(
            event_name, partial(render_consumer_return, record), record.customer_id
        )


def _visible(record: Any, customer: int | None) -> bool:
    """Whether a user scoped to `customer` (None = every customer) sees `record`.

    Records without a customer (account-wide subscriptions) are seen only unscoped;
    notification events are the account's catalog, which every customer shares.
    """
    if customer is None or isinstance(record, NotificationEvent):
        return True
    return getattr(record, "customer_id", None) == customer
