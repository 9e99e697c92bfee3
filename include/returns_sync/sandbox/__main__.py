"""`python -m include.returns_sync.sandbox`: serve the simulators in the foreground."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from include.returns_sync.sandbox.chaos import ADMIN_PREFIX
from include.returns_sync.sandbox.faults import FaultConfig
from include.returns_sync.sandbox.scenario import Sandbox


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m include.returns_sync.sandbox",
        description="Serve the Loop + Whiplash simulators on 127.0.0.1 until interrupted.",
    )
    parser.add_argument("--seed", type=int, default=0, help="scenario seed (default 0)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--loop-port", type=int, default=8801)
    parser.add_argument("--whiplash-port", type=int, default=8802)
    parser.add_argument("--seed-day", type=int, default=0, metavar="N", help="seed N returns")
    parser.add_argument("--rate-limits", action="store_true", help="enforce vendor rate limits")
    parser.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="follow the harsher reading of the vendor docs (default: $RETURNS_SYNC_SANDBOX_STRICT)",
    )
    parser.add_argument(
        "--token-ttl-seconds",
        type=int,
        default=7200,
        help="Whiplash access-token lifetime (default 7200, as Whiplash; short ones force refreshes)",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="fault probability")
    parser.add_argument(
        "--merchants",
        type=int,
        default=None,
        metavar="N",
        help="serve N merchants (m01..mNN): a Loop shop each, one Whiplash customer each in one "
        "account (default: one merchant, `default`)",
    )
    parser.add_argument("--urls-file", type=Path, help="also write the URLs to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground; prints (and optionally writes) its URLs.

    The top-level keys are the first merchant's (the only one without `--merchants`);
    "merchants" holds every merchant's {loop_api_key, loop_webhook_secret,
    whiplash_customer_id, loop_shop_id}. `--seed-day N` seeds N returns per merchant.
    """
    args = parse_args(argv)
    faults = FaultConfig(rate=args.fault_rate, seed=args.seed) if args.fault_rate else None
    sandbox = Sandbox(
        seed=args.seed,
        rate_limits=args.rate_limits,
        faults=faults,
        strict=args.strict,
        token_ttl_seconds=args.token_ttl_seconds,
        merchants=args.merchants,
    )
    sandbox.start(args.loop_port, args.whiplash_port, host=args.host)
    if args.seed_day:
        sandbox.seed_day(args.seed_day)
    urls = {
        "loop_url": sandbox.loop_url,
        "whiplash_url": sandbox.whiplash_url,
        "admin_url": f"{sandbox.loop_host_url}{ADMIN_PREFIX}",
        "loop_api_key": sandbox.loop_api_key,
        "loop_webhook_secret": sandbox.loop_webhook_secret,
        "whiplash_client_id": sandbox.whiplash.client_id,
        "whiplash_client_secret": sandbox.whiplash.client_secret,
        "whiplash_refresh_token": sandbox.whiplash.current_refresh_token,
        "strict": sandbox.strict,
        "merchants": {m: sandbox.merchant_keys(m) for m in sandbox.merchants},
    }
    if args.urls_file:
        args.urls_file.write_text(json.dumps(urls, indent=2))
    print(json.dumps(urls, indent=2), flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        stopped.wait()
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
