"""A stateful simulator of the Loop Returns API (the subset returns-sync uses).

`LoopBackend` holds the returns, notes, webhook subscriptions and an action log; `build_loop_app`
is the thin HTTP layer, faithful to ../shared/contracts/loop and /work/shared/docs/loop-api.md,
including the quirks a client must survive:

- the detailed list defaults to the last 24 hours and to states open/closed/expired, rejects
  windows over 120 days, is a bare array unless `paginate=true`, and its `nextPageUrl` is a full
  /api/v1 URL that drops `from`, `state` and `paginate` (a client must re-send its own params);
- ids are strings in list/details payloads, `provider_order_id` is a string in the list and an
  integer in details;
- actions answer HTTP 200 with an error body when the return's state forbids them, and the
  success body is the JSON string "true"; Get Notes answers 422 when there are none;
- Process is asynchronous (queued, closed after `process_delay` seconds);
- label changes are POSTed, signed, to active `label` subscriptions from a background thread.

This module only re-exports; the simulator is split by concern, and decisions where the docs
are silent are marked "Decision:" in the module that implements them:

- `loop_records`: the records, value sets and `LoopError`; `iso`, Loop's timestamp format;
- `loop_backend`: `LoopBackend`, all state behind one lock (seeding, reads, list, details, ASN);
- `loop_actions`: Process / Flag / Cancel / Close / Notes, transitions, queued processing, expiry;
- `loop_webhooks`: `/webhooks` subscriptions and the signed `label` webhook (`label_payload`);
- `loop_listing`: the list's window, filters and cursors (`parse_when`);
- `loop_render`: records as vendor JSON;
- `loop_app`: `build_loop_app`, the FastAPI routes.
"""

from __future__ import annotations

from include.returns_sync.sandbox.loop_app import build_loop_app
from include.returns_sync.sandbox.loop_backend import LoopBackend
from include.returns_sync.sandbox.loop_listing import parse_when
from include.returns_sync.sandbox.loop_records import LoopError, iso
from include.returns_sync.sandbox.loop_webhooks import label_payload

__all__ = [
    "LoopBackend",
    "LoopError",
    "build_loop_app",
    "iso",
    "label_payload",
    "parse_when",
]
