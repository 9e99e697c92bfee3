"""Subscribe our webhook endpoints with Loop and Whiplash, idempotently.

    python -m include.returns_sync.webhooks.register --url https://airflow.example.com \
        [--merchant ID] [--dry-run]

`--url` is the public base URL of the Airflow API server (it may carry a path prefix, e.g.
`https://example.com/airflow`); the endpoints are `<url>/returns-sync/webhooks/loop` and
`<url>/returns-sync/webhooks/whiplash`. It uses the connections `loop_default` and
`whiplash_default` (environment variables, a secrets backend or the metadata database).

`--merchant ID` (several merchants, PRODUCT.md section 3.1) registers one merchant: its Loop
shop (connection `loop_conn_id` of its entry in the merchants file) subscribes
`<url>/returns-sync/webhooks/loop/<ID>` (the merchant `default` keeps the bare `/loop`), and its
Whiplash account (`whiplash_conn_id`, calls made as the merchant: `X-Customer-ID` = its
`whiplash_customer_id`, also sent as the subscription's `customer_id`) subscribes the one
`/whiplash` endpoint. Whiplash subscriptions are matched by URL and event as the account shows
them to that customer: where Whiplash scopes subscriptions per customer each merchant gets its
own; where it shows one account-wide list the first merchant's serve all (the endpoint routes
each event by its RMA and customer id). Either way running it for every merchant is safe, and a
delivery that arrives twice is one inbox event (same dedup key, same merchant). Without
`--merchant` it registers `default`.

* Loop: one subscription per trigger (Loop subscribes one topic + one trigger + URL), status
  `active`: topic `label`, triggers `label.created` and `label.updated` (RMA creation); topic
  `return`, trigger `return.closed`, and topic `return.processing`, trigger
  `return.processing.failed` (how a queued Process ended). An existing one for our URL is kept;
  an inactive one is re-activated (PUT). Loop's programmatic webhooks API does not list the
  `return.processing` topic in its enum; if Loop refuses it (400/422) the step is reported as
  `manual` (add it in Loop Admin > Developer Tools) and the rest goes on: without it a failed
  processing is still found by polling, later (PRODUCT.md 2.4).
* Whiplash: one `webhook` notification subscription (payload version 2) per event:
  `consumer_return.completed` and `consumer_return.status_changed`, looked up by name in the
  account's event catalog. An active one for our URL is kept; if only inactive ones exist a new
  active one is created and the inactive ones are reported (the hook has no update call for
  subscriptions; remove them in Whiplash Preferences).

Running it again changes nothing. Subscriptions for other URLs are never touched. After a
timeout on a create (the vendor may have created it), the list is read again before retrying.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from include.returns_sync.merchants import DEFAULT_MERCHANT_ID
from include.returns_sync.webhooks.payloads import LOOP, LOOP_TRIGGERS, WHIPLASH
from include.returns_sync.webhooks.routing import (
    MerchantLike,
    MerchantsUnavailable,
    UnknownMerchant,
    configured_merchants,
    merchant_by_id,
)

log = logging.getLogger(__name__)

URL_PREFIX = "/returns-sync/webhooks"
LOOP_TOPIC = "label"
#: Every Loop subscription we need, as (topic, trigger).
LOOP_SUBSCRIPTIONS = (
    *((LOOP_TOPIC, trigger) for trigger in LOOP_TRIGGERS),
    ("return", "return.closed"),
    ("return.processing", "return.processing.failed"),
)
#: Subscriptions Loop's API may refuse (not in its topic enum): added in Loop Admin instead.
LOOP_ADMIN_ONLY = frozenset({("return.processing", "return.processing.failed")})
WHIPLASH_EVENTS = ("consumer_return.completed", "consumer_return.status_changed")
WEBHOOK_TYPE = "webhook"


@dataclass(frozen=True)
class Step:
    """One subscription and what registration does (did) about it."""

    vendor: str
    subscription: str
    action: str  # exists | create | activate | manual (the vendor's API refused it)
    url: str
    existing_id: str | None = None
    note: str = ""

    def line(self) -> str:
        ref = f" (id {self.existing_id})" if self.existing_id else ""
        note = f"  [{self.note}]" if self.note else ""
        return f"{self.vendor:<9} {self.subscription:<32} {self.action:<9}{ref} {self.url}{note}"


def endpoint_urls(
    base_url: str, *, allow_http: bool = False, merchant_id: str = DEFAULT_MERCHANT_ID
) -> dict[str, str]:
    """Our two endpoint URLs under the API server's public base URL, for `merchant_id`."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"--url must be an absolute http(s) URL, got {base_url!r}")
    if parts.scheme == "http" and not allow_http:
        raise ValueError(
            "--url must use https: vendors deliver over the internet (use --allow-http only "
            "for a local sandbox)"
        )
    if parts.query or parts.fragment:
        raise ValueError("--url must not carry a query string or fragment")
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    urls = {vendor: f"{base}{URL_PREFIX}/{vendor}" for vendor in (LOOP, WHIPLASH)}
    if merchant_id != DEFAULT_MERCHANT_ID:
        urls[LOOP] = f"{urls[LOOP]}/{merchant_id}"
    return urls


def _same_url(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.strip().rstrip("/") == b.rstrip("/")


def plan_loop(existing: Iterable[dict[str, Any]], url: str) -> list[Step]:
    """What to do on Loop so that every subscription we need reaches `url`, active."""
    hooks = list(existing)
    steps = []
    for topic, trigger in LOOP_SUBSCRIPTIONS:
        name = f"{topic}/{trigger}"
        mine = [
            h
            for h in hooks
            if h.get("topic") == topic
            and h.get("trigger") == trigger
            and _same_url(h.get("url"), url)
        ]
        active = [h for h in mine if h.get("status") == "active"]
        if active:
            steps.append(Step(LOOP, name, "exists", url, str(active[0].get("id"))))
        elif mine:
            steps.append(Step(LOOP, name, "activate", url, str(mine[0].get("id"))))
        else:
            steps.append(Step(LOOP, name, "create", url))
    return steps


def plan_whiplash(
    catalog: Iterable[dict[str, Any]], existing: Iterable[dict[str, Any]], url: str
) -> tuple[list[Step], dict[str, int]]:
    """What to do on Whiplash, and the catalog ids of the events we need."""
    ids = {str(e.get("name")): e.get("id") for e in catalog}
    missing = [name for name in WHIPLASH_EVENTS if name not in ids]
    if missing:
        raise RuntimeError(
            f"Whiplash does not offer the event(s) {missing} (GET /api/v2/notification_events)"
        )
    subscriptions = [
        s
        for s in existing
        if s.get("notification_type", WEBHOOK_TYPE) == WEBHOOK_TYPE
        and not s.get("discarded_at")
        and _same_url(s.get("endpoint"), url)
    ]
    steps = []
    event_ids: dict[str, int] = {}
    for name in WHIPLASH_EVENTS:
        event_id = int(str(ids[name]))
        event_ids[name] = event_id
        mine = [
            s for s in subscriptions if _int_or_none(s.get("notification_event_id")) == event_id
        ]
        active = [s for s in mine if s.get("active") is True]
        if active:
            steps.append(Step(WHIPLASH, name, "exists", url, str(active[0].get("id"))))
        else:
            note = (
                f"inactive subscription(s) {[s.get('id') for s in mine]} left as they are"
                if mine
                else ""
            )
            steps.append(Step(WHIPLASH, name, "create", url, note=note))
    return steps, event_ids


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _create_once(create: Callable[[], Any], exists_now: Callable[[], bool]) -> None:
    """Create; after an ambiguous failure (timeout, dropped connection: the vendor may have
    created it), create again only if a fresh read of the subscriptions still lacks it."""
    from include.returns_sync.clients.errors import AmbiguousWriteError

    try:
        create()
    except AmbiguousWriteError:
        if not exists_now():
            create()


def register_loop(hook: Any, url: str, *, dry_run: bool = False) -> list[Step]:
    """Plan, and unless `dry_run` apply, the Loop subscriptions for `url`."""
    from include.returns_sync.clients.errors import VendorValidationError

    steps = plan_loop(hook.list_webhooks(), url)
    if dry_run:
        return steps
    done = []
    for step in steps:
        topic, trigger = step.subscription.split("/", 1)
        try:
            if step.action == "activate":
                hook.update_webhook(
                    step.existing_id, topic=topic, trigger=trigger, url=url, status="active"
                )
            elif step.action == "create":
                _create_once(
                    partial(hook.create_webhook, topic, trigger, url, "active"),
                    partial(_loop_exists, hook, url, step.subscription),
                )
        except VendorValidationError as error:
            if (topic, trigger) not in LOOP_ADMIN_ONLY:
                raise
            note = (
                f"Loop's API refused it ({error.message}); add it in Loop Admin > Developer Tools"
            )
            step = Step(LOOP, step.subscription, "manual", url, step.existing_id, note)
        done.append(step)
    return done


def _loop_exists(hook: Any, url: str, subscription: str) -> bool:
    fresh = plan_loop(hook.list_webhooks(), url)
    return any(s.subscription == subscription and s.action != "create" for s in fresh)


def register_whiplash(
    hook: Any, url: str, *, dry_run: bool = False, customer_id: int | None = None
) -> list[Step]:
    """Plan, and unless `dry_run` apply, the Whiplash subscriptions for `url`."""
    steps, event_ids = plan_whiplash(
        hook.notification_events(), hook.list_notification_subscriptions(), url
    )
    if dry_run:
        return steps
    for step in steps:
        if step.action == "create":
            _create_once(
                partial(
                    hook.create_notification_subscription,
                    event_ids[step.subscription],
                    url,
                    notification_type=WEBHOOK_TYPE,
                    active=True,
                    version=2,
                    customer_id=customer_id,
                ),
                partial(_whiplash_exists, hook, url, step.subscription),
            )
    return steps


def _whiplash_exists(hook: Any, url: str, subscription: str) -> bool:
    fresh, _ = plan_whiplash(
        hook.notification_events(), hook.list_notification_subscriptions(), url
    )
    return any(s.subscription == subscription and s.action == "exists" for s in fresh)


def register(
    base_url: str,
    *,
    vendors: Sequence[str] = (LOOP, WHIPLASH),
    dry_run: bool = False,
    allow_http: bool = False,
    loop_hook: Any = None,
    whiplash_hook: Any = None,
    merchant_id: str = DEFAULT_MERCHANT_ID,
) -> list[Step]:
    """Register (or, with `dry_run`, only plan) one merchant's endpoints; returns the steps.

    Hooks default to the merchant's connections (`runtime.use_merchant`); an id the merchants
    file does not configure raises `UnknownMerchant` before any vendor is called.
    """
    urls = endpoint_urls(base_url, allow_http=allow_http, merchant_id=merchant_id)
    with _working_for(merchant_id) as merchant:
        from include.returns_sync import runtime

        steps: list[Step] = []
        if LOOP in vendors:
            loop = loop_hook if loop_hook is not None else runtime.loop_hook()
            steps += register_loop(loop, urls[LOOP], dry_run=dry_run)
        if WHIPLASH in vendors:
            whiplash = whiplash_hook if whiplash_hook is not None else runtime.whiplash_hook()
            customer = merchant.whiplash_customer_id
            if customer is None:  # the connection's own `customer_id` extra, as before
                customer = _int_or_none(whiplash.extras.get("customer_id"))
            steps += register_whiplash(
                whiplash, urls[WHIPLASH], dry_run=dry_run, customer_id=customer
            )
    return steps


@contextmanager
def _working_for(merchant_id: str) -> Iterator[MerchantLike]:
    """The merchant `merchant_id`, with the runtime (hooks, store) scoped to it."""
    merchant = merchant_by_id(merchant_id, configured_merchants())
    from include.returns_sync import runtime

    with runtime.use_merchant(merchant_id):
        yield merchant


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m include.returns_sync.webhooks.register",
        description="Subscribe the returns-sync webhook endpoints with Loop and Whiplash.",
    )
    parser.add_argument(
        "--url", required=True, help="public base URL of the Airflow API server (https)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would change, change nothing"
    )
    parser.add_argument("--only", choices=(LOOP, WHIPLASH), help="register with one vendor only")
    parser.add_argument(
        "--allow-http", action="store_true", help="accept an http:// URL (local sandbox only)"
    )
    parser.add_argument(
        "--merchant",
        default=DEFAULT_MERCHANT_ID,
        help="merchant id from the merchants file (default: 'default', the only merchant "
        "without a merchants file)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    # Read connections from the metadata database too, as Airflow's own CLI commands do;
    # outside a server process the Task SDK would only look at environment variables.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    vendors = (args.only,) if args.only else (LOOP, WHIPLASH)
    try:
        steps = register(
            args.url,
            vendors=vendors,
            dry_run=args.dry_run,
            allow_http=args.allow_http,
            merchant_id=args.merchant,
        )
    except (UnknownMerchant, MerchantsUnavailable) as exc:
        print(f"registration failed: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"registration failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    verb = "would" if args.dry_run else "did"
    for step in steps:
        print(step.line())
    changes = sum(step.action in ("create", "activate") for step in steps)
    manual = sum(step.action == "manual" for step in steps)
    extra = f" {manual} to add by hand in Loop Admin > Developer Tools." if manual else ""
    print(
        f"merchant {args.merchant}: {len(steps)} subscription(s); {verb} change {changes}.{extra}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
