"""`python -m include.returns_sync.doctor [--json] [--merchant ID] [--url URL]`: preflight.

Read-only. Needs the project's environment (the connections as `AIRFLOW_CONN_*` variables, a
secrets backend or Airflow's metadata database), not a running Airflow. Exit 0 when no check is
blocking, 1 when one is, 2 on a usage error (such as an unknown merchant).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from include.returns_sync.doctor.checks import exit_code
from include.returns_sync.doctor.report import to_json, to_table
from include.returns_sync.doctor.runner import (
    DEFAULT_MERCHANT,
    UnknownMerchant,
    options_for_merchant,
    run_checks,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m include.returns_sync.doctor",
        description=(
            "Check, read-only, every vendor behaviour and deployment setting returns-sync "
            "relies on. Exit 0 when nothing blocks going live."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--merchant",
        default=DEFAULT_MERCHANT,
        help=f"merchant id from the merchants file (default {DEFAULT_MERCHANT!r}, the only one "
        "without a merchants file)",
    )
    parser.add_argument(
        "--url",
        help="public base URL of the Airflow API server, to find our webhook subscriptions "
        "exactly (default: any URL ending in /returns-sync/webhooks/<vendor>)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    # Read connections and pools from the metadata database too, as Airflow's own CLI does;
    # outside a server process the Task SDK would only look at environment variables.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    try:
        options = options_for_merchant(args.merchant, args.url, dict(os.environ))
    except UnknownMerchant as error:
        print(f"doctor: {error}", file=sys.stderr)
        return 2
    # Airflow's logging writes to stdout; the report is the output (every failure is a row),
    # so keep library chatter out of it and `--json` parseable.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL if args.json else logging.ERROR)
    try:
        results = run_checks(options)
    finally:
        root.setLevel(level)
    if args.json:
        print(to_json(results, merchant=options.merchant))
    else:
        print(to_table(results, merchant=options.merchant))
    return exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
