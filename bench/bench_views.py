"""Benchmark: the operator views over 1,000,000 returns in the PostgreSQL state store.

Creates a fresh schema (`rs_bench_views`) on the test database, migrates it (revision 0008's
indexes included), bulk-loads a year of a busy deployment with COPY (in time order, as a store fills up; then
VACUUM ANALYZE, the steady state autovacuum keeps): 1,000,000 sync records
across 5 merchants (created / adopted / unmappable / failed; poll, webhook, backfill and manual
triggers), a decision with receipt lines for about 70 % of them (process / flag / skip) and the
Loop actions those verdicts lead to (some refused, some PROCESS_FAILED). Then it times, through
`include.returns_sync.views.queries` exactly as the UI calls it: timeline look-ups, searches by
every key, every queue's pages (all merchants and one), the 30-day trend and run summaries;
prints a Markdown table and writes the "Operator views" section of docs/BENCHMARKS.md.
Targets (issue 14): timeline p95 < 100 ms, queue pages p95 < 300 ms. Not a test: run it by hand.

    python bench/bench_views.py [--returns 1000000] [--keep] [--no-write]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.report import BENCHMARKS, machine, write_section  # noqa: E402
from include.returns_sync.state import StateStore  # noqa: E402
from include.returns_sync.views import queries  # noqa: E402
from tests.support.postgres import PG_URL  # noqa: E402

SECTION = "## Operator views"
SCHEMA = "rs_bench_views"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAYS = 365
MERCHANTS = ("default", "m01", "m02", "m03", "m04")
MERCHANT_WEIGHTS = (40, 25, 15, 12, 8)
TRIGGERS = ("poll", "webhook", "backfill", "manual")
TRIGGER_WEIGHTS = (60, 35, 3, 2)
RMA_DAGS = {"backfill": "loop_asn_backfill"}
UNMAPPABLE_REASONS = ("UNKNOWN_SKU", "UNKNOWN_ORDER", "LABEL_UNKNOWN", "WHIPLASH_REJECTED")
FLAG_REASONS = (
    ["MISSING_ITEMS"],
    ["DAMAGED"],
    ["MISSING_ITEMS", "DAMAGED"],
    ["NOTHING_RECEIVED"],
    ["EXTRA_ITEMS"],
)
SYNC_COLUMNS = (
    "merchant, loop_return_id, whiplash_return_id, status, reason_code, reason_detail, "
    "attempts, label_status, label_pre_transit_at, source, first_seen_at, created_at, "
    "updated_at, last_run_id, order_name, tracking_number, last_dag_id, last_trigger, "
    "rma_run_id, rma_dag_id, rma_trigger"
)
DECISION_COLUMNS = (
    "merchant, whiplash_return_id, loop_return_id, verdict, reason_codes, note, detail, "
    "run_id, decided_at, dag_id"
)
ACTION_COLUMNS = (
    "merchant, loop_return_id, action, status, vendor_code, message, attempts, created_at, "
    "updated_at, run_id, dag_id"
)


def dag_id(base: str, merchant: str) -> str:
    return base if merchant == "default" else f"{base}__{merchant}"


def run_id(moment: datetime, every_minutes: int) -> str:
    slot = moment.replace(second=0, microsecond=0)
    slot -= timedelta(minutes=slot.minute % every_minutes)
    return f"scheduled__{slot.isoformat()}"


def cell(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")


def generate(returns: int, seed: int) -> tuple[list[str], list[str], list[str], dict[str, Any]]:
    """Rows (tab-separated COPY lines) of the three tables, and what the timings sample."""
    rng = random.Random(seed)
    sync, decided, acted = [], [], []
    samples: dict[str, list[Any]] = {"keys": [], "runs": []}
    span = DAYS * 86400
    merchants = rng.choices(MERCHANTS, MERCHANT_WEIGHTS, k=returns)
    triggers = rng.choices(TRIGGERS, TRIGGER_WEIGHTS, k=returns)
    for i in range(returns):
        merchant, trigger = merchants[i], triggers[i]
        lid = str(41_000_000 + i)
        wid = 7_000_000 + i
        # rows arrive in time order, as a store fills up (a few minutes of jitter)
        seen = NOW - timedelta(seconds=span * (1 - i / returns) + rng.random() * 300)
        backfill = trigger == "backfill"
        label = seen - timedelta(hours=(24 + rng.random() * 36) if backfill else rng.random() * 4)
        roll = rng.random()
        status = (
            "created"
            if roll < 0.93
            else "adopted"
            if roll < 0.95
            else "unmappable"
            if roll < 0.985
            else "failed"
        )
        done = status in ("created", "adopted")
        created = seen + timedelta(seconds=rng.random() * 60) if done else None
        rma_dag = dag_id(RMA_DAGS.get(trigger, "loop_returns_to_whiplash"), merchant)
        rid = run_id(seen, 1440 if backfill else 5)
        reason = None if done else rng.choice(UNMAPPABLE_REASONS)
        order = f"#{merchant.upper()}{100_000 + i}"
        tracking = f"1Z{rng.getrandbits(48):012X}"
        sync.append(
            "\t".join(
                cell(v)
                for v in (
                    merchant,
                    lid,
                    wid if done else None,
                    status,
                    reason,
                    f"detail of {reason}" if reason else None,
                    1 + (not done),
                    "pre_transit",
                    label,
                    trigger,
                    seen,
                    created,
                    created or seen,
                    rid,
                    order,
                    tracking,
                    rma_dag,
                    trigger,
                    rid if done else None,
                    rma_dag if done else None,
                    trigger if done else None,
                )
            )
        )
        if i % 997 == 0:
            samples["keys"].append((merchant, lid, order, tracking, wid if done else None))
        if i % 4999 == 0:
            samples["runs"].append((rma_dag, rid))
        if created is None or rng.random() > 0.7:
            continue
        decided_at = created + timedelta(days=2 + rng.random() * 6)
        if decided_at > NOW:
            continue
        roll = rng.random()
        verdict = "process" if roll < 0.8 else "flag" if roll < 0.97 else "skip"
        codes = rng.choice(FLAG_REASONS) if verdict == "flag" else []
        lines = [
            {"sku": f"SKU-{rng.randrange(5000)}", "expected": 1, "good": 1, "damaged": 0,
             "missing": 0, "extra": 0, "unexpected": False}
            for _ in range(rng.randint(1, 3))
        ]  # fmt: skip
        receipts_dag = dag_id("whiplash_receipts_to_loop", merchant)
        receipts_run = run_id(decided_at, 15)
        note = f"Return flagged: {', '.join(codes)} (1 of 2 units)" if codes else None
        decided.append(
            "\t".join(
                cell(v)
                for v in (
                    merchant,
                    wid,
                    lid,
                    verdict,
                    json.dumps(codes),
                    note,
                    json.dumps({"lines": lines}),
                    receipts_run,
                    decided_at,
                    receipts_dag,
                )
            )
        )
        if i % 4999 == 1:
            samples["runs"].append((receipts_dag, receipts_run))
        kinds = ["process"] if verdict == "process" else ["flag", "note"] if codes else []
        for kind in kinds:
            status, code = "sent", None
            if kind == "process" and rng.random() < 0.005:
                status, code = "failed", "PROCESS_FAILED"
            elif rng.random() < 0.01:
                status, code = "failed", "422"
            acted.append(
                "\t".join(
                    cell(v)
                    for v in (
                        merchant,
                        lid,
                        kind,
                        status,
                        code,
                        f"{kind} {status}",
                        1,
                        decided_at,
                        decided_at + timedelta(seconds=2),
                        receipts_run,
                        receipts_dag,
                    )
                )
            )
    return sync, decided, acted, samples


def load(url: str, returns: int, seed: int) -> dict[str, Any]:
    admin = create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg2"))
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    admin.dispose()
    store = StateStore.from_url(url)
    store.migrate()
    started = time.perf_counter()
    sync, decided, acted, samples = generate(returns, seed)
    generated = time.perf_counter() - started
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, columns, rows in (
            ("sync_records", SYNC_COLUMNS, sync),
            ("decisions", DECISION_COLUMNS, decided),
            ("loop_actions", ACTION_COLUMNS, acted),
        ):
            buffer = io.StringIO("\n".join(rows) + "\n")
            cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", buffer)
        raw.commit()
    finally:
        raw.close()
    # the steady state autovacuum keeps: statistics and the visibility map (index-only reads)
    with store.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    store.dispose()
    return {
        "sync_records": len(sync),
        "decisions": len(decided),
        "loop_actions": len(acted),
        "generate_s": generated,
        "load_s": time.perf_counter() - started - generated,
        "samples": samples,
    }


def timings(action: Callable[..., Any], arguments: Iterable[Any]) -> list[float]:
    out = []
    for argument in arguments:
        started = time.perf_counter()
        action(argument)
        out.append((time.perf_counter() - started) * 1000)
    return out


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(values), "p50": statistics.median(ordered), "p95": p95, "max": ordered[-1]}


def measure(url: str, samples: dict[str, Any], seed: int) -> dict[str, dict[str, float]]:
    store = StateStore.from_url(url)
    rng = random.Random(seed)
    keys = samples["keys"]
    rng.shuffle(keys)
    found: dict[str, dict[str, float]] = {}
    queries.timeline(store, keys[0][0], keys[0][1])  # warm the pool
    found["timeline"] = stats(timings(lambda k: queries.timeline(store, k[0], k[1]), keys))
    searched = [k[1] for k in keys[:100]] + [k[2].lower() for k in keys[:100]]
    searched += [k[3].lower() for k in keys[:100]] + [str(k[4]) for k in keys[:100] if k[4]]
    found["search (every key)"] = stats(timings(lambda q: queries.search(store, q), searched))
    for name in queries.QUEUES:
        for merchant in (None, "m01"):
            pages = [1, 2, 5, 10, 20] * 4
            label = f"queue {name}, {'all merchants' if merchant is None else 'one merchant'}"
            found[label] = stats(
                timings(
                    lambda p, n=name, m=merchant: queries.queue(
                        store, n, m, page=p, page_size=50, now=NOW
                    ),
                    pages,
                )
            )
    found["queues page (all 5 queues)"] = stats(
        timings(lambda _: queries.queues(store, now=NOW), range(10))
    )
    for merchant in (None, "m01"):
        label = f"trend 30 days, {'all merchants' if merchant is None else 'one merchant'}"
        found[label] = stats(
            timings(lambda _, m=merchant: queries.trend(store, m, 30, now=NOW), range(10))
        )
    found["run summary"] = stats(
        timings(lambda r: queries.run_summary(store, r[0], r[1]), samples["runs"])
    )
    store.dispose()
    return found


def markdown(loaded: dict[str, Any], found: dict[str, dict[str, float]], command: str) -> str:
    timeline, pages = (
        found["timeline"]["p95"],
        [v["p95"] for k, v in found.items() if k.startswith("queue ")],
    )
    lines = [
        SECTION,
        "",
        f"`{command}` on {machine()}, PostgreSQL (local, shared with the test suite), "
        f"{datetime.now(UTC):%Y-%m-%d}. The state store holds "
        f"{loaded['sync_records']:,} returns over {DAYS} days and 5 merchants, "
        f"{loaded['decisions']:,} decisions with receipt lines and "
        f"{loaded['loop_actions']:,} Loop actions, bulk-loaded with COPY in "
        f"{loaded['load_s']:.0f} s (generated in {loaded['generate_s']:.0f} s). Every figure "
        "times one call of `include.returns_sync.views.queries`, as the UI makes it "
        "(queue pages of 50 rows: pages 1-20; search: Loop ids, order names, tracking numbers, "
        "Whiplash ids).",
        "",
        "| view | calls | p50 ms | p95 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, v in found.items():
        lines.append(f"| {name} | {v['n']} | {v['p50']:.1f} | {v['p95']:.1f} | {v['max']:.1f} |")
    lines += [
        "",
        f"Targets (issue 14): timeline p95 < 100 ms: **{timeline:.1f} ms** "
        f"({'met' if timeline < 100 else 'MISSED'}); queue pages p95 < 300 ms: worst "
        f"**{max(pages):.1f} ms** ({'met' if max(pages) < 300 else 'MISSED'}).",
        "",
        "Every look-up, queue page and run summary reads one index range (the needs-attention "
        "rows and failed actions through partial indexes, counts index-only). The trend is the "
        "one view that reads a whole month: every RMA and verdict of 30 days, index-only (no "
        "heap access), grouped by UTC day in the database; it has no target in the issue and "
        "is drawn once per page load.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--returns", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20_261_206)
    parser.add_argument("--keep", action="store_true", help=f"keep schema {SCHEMA} afterwards")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={SCHEMA}"})
    target = url.render_as_string(hide_password=False)
    loaded = load(target, args.returns, args.seed)
    print(f"loaded {loaded['sync_records']:,} returns in {loaded['load_s']:.0f} s", file=sys.stderr)
    found = measure(target, loaded["samples"], args.seed)
    command = "source scripts/_env.sh && python bench/bench_views.py"
    if args.returns != 1_000_000:
        command += f" --returns {args.returns}"
    report = markdown(loaded, found, command)
    print(report)
    if not args.no_write:
        write_section(SECTION, report, BENCHMARKS)
    if not args.keep:
        admin = create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg2"))
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
