"""The sandbox's `strict` mode: the harsher reading of everything the vendor docs leave open.

Our simulators were written from the same reading of the vendor docs as the pipeline, so where
the docs are silent the two agree with each other, not necessarily with Loop or Whiplash
(PRODUCT.md section 6). `strict=True` (on `Sandbox`, `LoopBackend`, `WhiplashBackend`; the CLI's
`--strict`; `POST /_sandbox/strict`; `RETURNS_SYNC_SANDBOX_STRICT=true` for the default) turns
on the harsher reading of each open point:

| vendor | lenient (default) | strict |
| --- | --- | --- |
| Loop | Return Details carry the label fields | Details carry no `label_status`, `carrier`, `tracking_number`, `label_url` nor `label_updated_at` (as Loop's documented example); the detailed list still carries them |
| Loop | line items carry the return's outcome | line items say `outcome: "default"` (= the return's outcome) |
| Loop | Process closes the return (on the next read after `process_delay`), no webhook | Process is queued: the return still reads `open`; when processing finishes it closes and `return.closed` (topic `return`) is sent, or, for returns chosen with `fail_processing(id)` (admin `POST /_sandbox/loop/fail-processing`), processing fails: the return stays `open` and `return.processing.failed` (topic `return.processing`) is sent |
| Loop | a 429 ends when the sliding window frees a slot | a fixed one-minute window: once the limit is reached, 429 until the window ends (`RateLimit.fixed_window`; `window_seconds` scales it, `storm()`/`arm_storm()` or `POST /_sandbox/loop/rate-limit-storm` make a whole-window storm in either mode) |
| Whiplash | `per_page` capped at 250, `Per-Page` header sent | `per_page` silently capped at 50, no page-size header |
| Whiplash | a client-credentials token may write | a token granted without `scope` is read-only; `app_manage` must be asked for |
| Whiplash | a refresh token is spent when presented | a refresh token is revoked once its successor is used (presented, or its access token used), with every other successor; until then it may be presented again (see `whiplash_oauth.py`) |
| Whiplash | an account with several customers (`Sandbox(merchants=...)`): writes to consumer returns without `X-Customer-ID` act for every customer (the return belongs to its order's customer) | such writes are 422 "X-Customer-ID is missing" (reads without it still see every customer, as a 3PL user; see `whiplash_backend.py`) |
| Whiplash | only `consumer_return.*` events are delivered, signed with the client secret | events we do not handle (`item.created`, `order.created`, `shipnotice.status_changed`) are delivered too, and `version: 1` subscriptions are signed with the account's API key, `version: 2` ones with the client secret (the docs disagree on which signs; see `whiplash_notify.py`) |

Each simulator module reads its backend's `strict` attribute where the behaviour lives.
"""

from __future__ import annotations

import os

STRICT_ENV = "RETURNS_SYNC_SANDBOX_STRICT"


def strict_from_env() -> bool:
    """The default mode: `RETURNS_SYNC_SANDBOX_STRICT` (true/1/yes/on), else lenient."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")
