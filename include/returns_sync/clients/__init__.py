"""HTTP clients: the only layer that talks to Loop and Whiplash.

Errors, the retry policy and the token store are light and imported eagerly; the hooks (which
pull in Airflow's HTTP provider) and the limiters (SQLAlchemy) load on first access, so
`from include.returns_sync.clients import VendorError` stays cheap in DAG files and domain code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.returns_sync.clients.errors import (
    AmbiguousWriteError,
    CredentialsUnavailable,
    LoopActionRejected,
    VendorAuthError,
    VendorBadResponse,
    VendorConflict,
    VendorError,
    VendorNotFound,
    VendorRateLimited,
    VendorServerError,
    VendorTransportError,
    VendorValidationError,
)
from include.returns_sync.clients.oauth import (
    InMemoryTokenStore,
    StateStoreTokenStore,
    TokenStore,
)
from include.returns_sync.clients.policy import RetryPolicy

if TYPE_CHECKING:
    from include.returns_sync.clients.limiter import ProcessLimiter, SharedLimiter
    from include.returns_sync.clients.loop import LoopHook
    from include.returns_sync.clients.whiplash import WhiplashHook

__all__ = [
    "AmbiguousWriteError",
    "CredentialsUnavailable",
    "InMemoryTokenStore",
    "LoopActionRejected",
    "LoopHook",
    "ProcessLimiter",
    "RetryPolicy",
    "SharedLimiter",
    "StateStoreTokenStore",
    "TokenStore",
    "VendorAuthError",
    "VendorBadResponse",
    "VendorConflict",
    "VendorError",
    "VendorNotFound",
    "VendorRateLimited",
    "VendorServerError",
    "VendorTransportError",
    "VendorValidationError",
    "WhiplashHook",
]

_LAZY = {
    "ProcessLimiter": "include.returns_sync.clients.limiter",
    "SharedLimiter": "include.returns_sync.clients.limiter",
    "LoopHook": "include.returns_sync.clients.loop",
    "WhiplashHook": "include.returns_sync.clients.whiplash",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
