"""How each vendor signs the webhooks it sends (the receiver checks the same HMAC)."""

from __future__ import annotations

import base64
import hashlib
import hmac


def sign_loop(secret: str, body: bytes) -> str:
    """Loop's `X-Loop-Signature`: base64 of HMAC-SHA256(secret, raw body)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_whiplash(secret: str, body: bytes) -> str:
    """Whiplash's `X-WHIPLASH-SIGNATURE`: hex HMAC-SHA256(secret, raw body)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
