"""Stateful simulator of the Whiplash / Rydership V2 API (the subset returns-sync uses).

Same paths, fields, status codes and quirks as `../shared/contracts/whiplash/
rydership-v2.openapi.json` and `/work/shared/docs/whiplash-api.md`, served over HTTP like moto:

    backend = WhiplashBackend()
    backend.add_item("SKU-1", "Tee", "20.00")
    backend.add_order("5550001", "#1001", [("SKU-1", 2)])
    server = serve_in_thread(build_whiplash_app(backend))       # or with_chaos(app, ...)

Decisions where the vendor is silent (each also documented where it is implemented):

- OAuth (`whiplash_oauth`): Doorkeeper defaults. Refresh tokens rotate and a refresh revokes the
  access token issued beside the old refresh token; client credentials get no refresh token.
- Lists (`whiplash_search`): bare arrays; `page` from 1, `per_page` default 50, capped at 250
  with a `Per-Page` header (strict: capped silently at 50, no page-size header); Ransack
  `search` ignores unknown attributes/predicates and blank values (and, as a test knob, the
  predicates in `WhiplashBackend.ignored_predicates`); naive search times are read in
  America/New_York; `page_total` / `page_links` add `Total` / `Link` headers.
- Consumer returns (`whiplash_returns`): a repeated `originator_attributes.original_id` is 409;
  create needs at least one item; only a return that has not arrived can be deleted (which frees
  its originator id). Timestamps have whole-second precision, rendered in America/New_York.
- Originators: a consumer return's originator is filed as `originated_type=Shipnotice` (its STI
  base class, as in the vendor's examples), with `originated_id` = the return id; each return
  line with `originator_attributes` gets a `ShipnoticeItem` originator whose id is the line's
  `return_item_originator_id`.
- Webhooks: `consumer_return.created`, `.status_changed` on every status change, plus
  `.completed` (status 300) / `.unexpected` (25) and `.deleted`, `item.created`,
  `order.created`; body `{"event_name", "<resource>"}`, `X-WHIPLASH-SIGNATURE` = hex
  HMAC-SHA256 with the client secret, one attempt each from a background thread (the real
  service retries up to 10 times). Strict (`whiplash_notify`): every event (also
  `shipnotice.status_changed`) goes to every webhook endpoint, and `version: 1` subscriptions
  are signed with the account's API key.
"""

from __future__ import annotations

from include.returns_sync.sandbox.whiplash_app import build_whiplash_app
from include.returns_sync.sandbox.whiplash_backend import ApiCall, WhiplashBackend
from include.returns_sync.sandbox.whiplash_records import STATUS_NAMES, WhiplashApiError
from include.returns_sync.sandbox.whiplash_search import DEFAULT_PER_PAGE, MAX_PER_PAGE

__all__ = [
    "DEFAULT_PER_PAGE",
    "MAX_PER_PAGE",
    "STATUS_NAMES",
    "ApiCall",
    "WhiplashApiError",
    "WhiplashBackend",
    "build_whiplash_app",
]
