"""The real views plugin (plugins/returns_sync_views.py), loaded from its file, with its app built
on the store stand-in (tests/ui/store_standin.py) until views/queries.py exists. Used only by
the browser test's API server (tests/ui/day.py points the plugins folder here in that case)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location(
    "returns_sync_views_real", ROOT / "plugins" / "returns_sync_views.py"
)
assert _spec is not None and _spec.loader is not None
real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real)


def _build(self: Any) -> Any:
    with self._lock:
        if self._app is None:
            from include.returns_sync.views.app import create_app
            from tests.ui.store_standin import StoreStandIn

            self._app = create_app(StoreStandIn())
        return self._app


real.LazyViewsApp._build = _build
ReturnsSyncViewsPlugin = real.ReturnsSyncViewsPlugin
