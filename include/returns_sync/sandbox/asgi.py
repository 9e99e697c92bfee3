"""Raw ASGI plumbing shared by the chaos middleware and the vendor apps.

Type aliases for the ASGI callables, a response sent byte by byte (no framework needed), and
the one portable way for an ASGI app served by uvicorn to drop a connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A status code no HTTP server knows: uvicorn fails to format the status line after marking the
# response as started, writes nothing, and closes the socket when the app returns. That is the
# only portable way for an ASGI app to drop a connection without sending any bytes.
UNSENDABLE_STATUS = 999


async def discard(message: Message) -> None:
    """A `send` that throws the app's real answer away (after-commit faults)."""


async def drop(send: Send) -> None:
    """Close the connection without sending a byte (a lost answer, as the client sees it)."""
    try:
        await send({"type": "http.response.start", "status": UNSENDABLE_STATUS, "headers": []})
    except Exception:  # the server refusing the status is the point
        return


async def send_raw(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send a complete response without a framework (the middleware sits outside the app)."""
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
