"""Our webhook subscriptions on both vendors, found the way `webhooks/register.py` finds them.

With `--url` (the API server's public base URL, as given to the registration command) the
doctor looks for subscriptions to exactly our two endpoints. Without it, any subscription whose
URL ends in `/returns-sync/webhooks/<vendor>` counts as ours, whatever the host. For a merchant
other than `default` the Loop endpoint is `/returns-sync/webhooks/loop/<merchant id>` (its own
shop signs with its own secret); the Whiplash endpoint is the deployment's one. Missing
subscriptions are a warning: polling still finds everything, only minutes later.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from include.returns_sync.clients.errors import VendorAuthError, VendorError
from include.returns_sync.doctor.checks import (
    CheckResult,
    RowMaker,
    Status,
    check,
    describe_error,
)
from include.returns_sync.webhooks.register import (
    LOOP_ADMIN_ONLY,
    LOOP_TOPIC,
    URL_PREFIX,
    WHIPLASH_EVENTS,
    endpoint_urls,
    plan_loop,
    plan_whiplash,
)

REGISTER_HINT = "python -m include.returns_sync.webhooks.register --url https://<airflow host>"
DEFAULT_MERCHANT_ID = "default"


def _register_hint(merchant_id: str) -> str:
    if merchant_id == DEFAULT_MERCHANT_ID:
        return REGISTER_HINT
    return f"{REGISTER_HINT} --merchant {merchant_id}"


_POLLING = "until then polling finds every return within its schedule (minutes, not seconds)"


def _candidate_urls(
    urls: Iterable[Any], vendor: str, base_url: str | None, merchant_id: str = DEFAULT_MERCHANT_ID
) -> list[str]:
    if base_url:
        return [endpoint_urls(base_url, allow_http=True, merchant_id=merchant_id)[vendor]]
    suffix = f"{URL_PREFIX}/{vendor}"
    if vendor == "loop" and merchant_id != DEFAULT_MERCHANT_ID:
        suffix = f"{suffix}/{merchant_id}"
    found = []
    for url in urls:
        if isinstance(url, str) and urlsplit(url.strip()).path.rstrip("/").endswith(suffix):
            found.append(url.strip().rstrip("/"))
    return sorted(set(found))


def loop_webhooks_row(
    hook: Any, base_url: str | None, merchant_id: str = DEFAULT_MERCHANT_ID
) -> CheckResult:
    """Loop: `label.created`, `label.updated` and `return.closed` active at the merchant's URL."""
    row = check(
        "loop.webhooks",
        f"Loop sends {LOOP_TOPIC} webhooks (label.created, label.updated) and return.closed "
        "to our endpoint (return.processing.failed too, if added in Loop Admin); reading them "
        "needs the key's Developer Tools scope.",
    )
    try:
        hooks = hook.list_webhooks()
    except VendorAuthError as error:
        return row(
            f"HTTP {error.status}: the key lacks the Developer Tools scope, subscriptions "
            "cannot be read",
            "check them in Loop admin (Developer Tools); " + _POLLING,
            Status.INCONCLUSIVE,
        )
    except VendorError as error:
        return row(describe_error(error), "check them in Loop admin", Status.INCONCLUSIVE)
    urls = _candidate_urls((h.get("url") for h in hooks), "loop", base_url, merchant_id)
    plans = [(url, plan_loop(hooks, url)) for url in urls]
    return _verdict(row, "loop", urls, plans, base_url, merchant_id)


def whiplash_webhooks_row(hook: Any, base_url: str | None) -> CheckResult:
    """Whiplash: `consumer_return.completed` and `.status_changed`, active, at our URL."""
    row = check(
        "whiplash.webhooks",
        f"Whiplash sends {', '.join(WHIPLASH_EVENTS)} to our endpoint (active subscriptions).",
    )
    try:
        catalog = hook.notification_events()
        subscriptions = hook.list_notification_subscriptions()
        urls = _candidate_urls((s.get("endpoint") for s in subscriptions), "whiplash", base_url)
        plans = [(url, plan_whiplash(catalog, subscriptions, url)[0]) for url in urls]
    except (VendorError, RuntimeError) as error:
        return row(describe_error(error), "check them in Whiplash Preferences", Status.INCONCLUSIVE)
    return _verdict(row, "whiplash", urls, plans, base_url)


def _optional(step: Any) -> bool:
    """A Loop subscription only Loop Admin can make (`LOOP_ADMIN_ONLY`) and that is missing:
    it speeds up noticing a failed Process but is not required."""
    topic, _, trigger = step.subscription.partition("/")
    return step.action == "create" and (topic, trigger) in LOOP_ADMIN_ONLY


def _gap(step: Any) -> str:
    """Loop marks an inactive subscription `activate`; Whiplash notes inactive ones (it
    disables a subscription after 100 failing deliveries)."""
    if step.action == "activate" or "inactive" in step.note:
        return "inactive"
    return "missing"


def _verdict(
    row: RowMaker,
    vendor: str,
    urls: list[str],
    plans: list[tuple[str, list[Any]]],
    base_url: str | None,
    merchant_id: str = DEFAULT_MERCHANT_ID,
) -> CheckResult:
    hint = _register_hint(merchant_id)
    if not urls:
        path = f"{URL_PREFIX}/{vendor}"
        if vendor == "loop" and merchant_id != DEFAULT_MERCHANT_ID:
            path = f"{path}/{merchant_id}"
        where = f"for {base_url}" if base_url else f"ending in {path}"
        return row(
            f"no subscription {where}",
            f"register them: {hint}; {_POLLING}",
            Status.WARN,
            {"urls": []},
        )
    complete = [
        url for url, steps in plans if all(s.action == "exists" or _optional(s) for s in steps)
    ]
    facts = {
        "urls": {url: {step.subscription: step.action for step in steps} for url, steps in plans}
    }
    if complete:
        optional_gaps = sorted(
            {s.subscription for url, steps in plans if url in complete for s in steps}
            - {s.subscription for url, steps in plans for s in steps if s.action == "exists"}
        )
        observed = f"active at {', '.join(complete)}"
        consequence = "none"
        if optional_gaps:
            observed += f"; {', '.join(optional_gaps)} not found"
            consequence = (
                "Loop's API cannot create it: add it in Loop Admin > Developer Tools; without it "
                "a failed Process is found by the re-read after RETURNS_SYNC_PROCESS_SETTLE_MINUTES"
            )
        return row(observed, consequence, Status.OK, facts)
    gaps = "; ".join(
        f"{url}: " + ", ".join(f"{s.subscription} {_gap(s)}" for s in steps if s.action != "exists")
        for url, steps in plans
    )
    return row(
        gaps,
        f"re-run {hint} (it activates or creates what is missing); {_POLLING}",
        Status.WARN,
        facts,
    )
