"""Webhook signature checks: HMAC-SHA256 of the raw request body, compared in constant time.

Loop sends `X-Loop-Signature: base64(HMAC-SHA256(secret, body))`; Whiplash sends
`X-WHIPLASH-SIGNATURE: hex(HMAC-SHA256(secret, body))` and, for an empty body, signs its client
id instead (the Whiplash app gem's `signing.rb`). Both are checked on the bytes exactly as they
arrived: Loop escapes slashes in its JSON, so a receiver that parses and re-serialises the body
first computes a different digest. Several secrets may be configured (rotation, or Loop's
per-subscription secrets, or Whiplash's webhook secret beside its client secret, since its docs
disagree on which one signs); the check passes when any of them produced the signature, and
every secret is tried, so the time taken says nothing about which one matched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

LOOP_SIGNATURE_HEADER = "X-Loop-Signature"
WHIPLASH_SIGNATURE_HEADER = "X-WHIPLASH-SIGNATURE"
_DIGEST_SIZE = hashlib.sha256().digest_size
#: Longer headers are rejected before decoding (a SHA-256 digest is 44 base64 / 64 hex chars).
_MAX_HEADER_CHARS = 256


def _digest(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def _matches(expected: bytes, secrets: Sequence[str], message: bytes) -> bool:
    """Constant-time compare against every secret (no early exit that would time secrets)."""
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(_digest(secret, message), expected)
    return found


def _decode_base64(header: str) -> bytes | None:
    try:
        raw = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == _DIGEST_SIZE else None


def _decode_hex(header: str) -> bytes | None:
    try:
        raw = bytes.fromhex(header.strip())
    except ValueError:
        return None
    return raw if len(raw) == _DIGEST_SIZE else None


def verify_loop(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True when `header` is the base64 HMAC-SHA256 of `body` under one of `secrets`."""
    if not header or len(header) > _MAX_HEADER_CHARS or not secrets:
        return False
    expected = _decode_base64(header)
    return expected is not None and _matches(expected, secrets, body)


def verify_whiplash(
    body: bytes, header: str | None, secrets: Sequence[str], client_id: str | None = None
) -> bool:
    """True when `header` is the hex HMAC-SHA256 of `body` (or, for an empty body, of the
    OAuth client id) under one of `secrets`."""
    if not header or len(header) > _MAX_HEADER_CHARS or not secrets:
        return False
    message = body if body else (client_id or "").encode()
    if not message:
        return False
    expected = _decode_hex(header)
    return expected is not None and _matches(expected, secrets, message)
