"""`python -m include.returns_sync.sandbox`: serve the simulators in the foreground."""

from include.returns_sync.sandbox.server import main

raise SystemExit(main())
