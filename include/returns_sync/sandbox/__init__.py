"""Stateful simulators of the Loop Returns and Whiplash APIs (test and demo only).

Like moto for AWS: each vendor has a backend object holding state and a thin FastAPI app over it;
`Sandbox` serves both on 127.0.0.1 and drives scenarios (seed a day, move labels, receive
packages, inject faults). Production code never imports this package.

    with Sandbox(seed=42) as sandbox:
        truth = sandbox.seed_day(200)
        ...  # point loop_default at sandbox.loop_url, whiplash_default at sandbox.whiplash_url

Modules: `scenario` (the `Sandbox` orchestrator) with `truth` (what a correct pipeline must
conclude) and `admin` (the /_sandbox API); `loop` and `whiplash`, facades over the vendor
simulators (`loop_*`, `whiplash_*`); around them, one concern each: `clock`, `faults`,
`rate_limit`, `stats`, `chaos` (the middleware applying them), `asgi`, `signing`, `delivery`
(outgoing webhooks), `serving` (uvicorn in a thread), `corruption`, `strict`, `connections`.

Names are imported lazily, so that importing this package costs nothing until a name is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Sandbox": "scenario",
    "SeedTruth": "truth",
    "ReturnTruth": "truth",
    "FaultConfig": "faults",
    "SandboxClock": "clock",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
