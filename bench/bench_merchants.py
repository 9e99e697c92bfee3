"""Benchmark: many merchants from one deployment (issue 13, "Proof"). Not a test: run it by hand.

Five parts, each selectable (`--parts`), each rewriting its own subsection of the
"## Many merchants" section of docs/BENCHMARKS.md (the others stay as they were measured):

- **parse**: the dag-processor's work for N merchants (default 200, 3N DAGs), measured the way
  it does it: each DAG file of dags/ in a fresh process forked from a parent that has Airflow
  (and the file's Airflow imports) loaded, running Airflow's own `_parse_file` (a `DagBag` of
  that file + serialization of every DAG in it) and encoding the result as it would be sent
  back to the manager. Per file and the sum over files (one parsing process), median of rounds.
- **memory**: the whole deployment's peak memory (sum of PSS over every process of every
  Airflow component: api-server, scheduler, dag-processor, triggerer, with their children) in
  the LocalExecutor topology of tests/support/airflow_stack.py (SQLite metadata, like
  scripts/ui), from start until every DAG is parsed and for `--memory-seconds` after, with N
  merchants against the same deployment with 1. DAGs stay paused: task processes are one per
  running task, bounded by the executor's parallelism, whatever the number of merchants.
- **cadence**: N merchants (default 20) on their real, staggered schedules (scheduler on, DAGs
  unpaused; the Celery topology of the deployment tests: PostgreSQL, Redis, 2 workers) for
  `--cadence-minutes` (default 30) against a multi-merchant sandbox that keeps receiving new
  returns and packages: the lag of every due run (its start after its scheduled time; a due
  run that never started counts as missed), task starts per hour, CPU seconds per task start
  (psutil cpu_times, children included, of every Airflow process), and from them the worker
  capacity 200 merchants need.
- **throughput**: N merchants x R returns (default 20 x 100) against one shared sandbox Whiplash
  account with its real rate limit (`--rate-limits`: 10 requests/s per account): the RMA task
  bodies per merchant under `runtime.use_merchant` in C worker processes (4, then 1), each
  taking its share of the merchants, one PostgreSQL state store; exactly one RMA per return,
  under its merchant's customer; wall time against the shared floor (Whiplash calls / 10 per s).
- **limiter**: H2's `bench/bench_limiter.py` (one task >= 90 % of the rate; 8 tasks on 2
  workers never over it), run as it is, its table quoted here.

    python bench/bench_merchants.py [--parts parse,memory,cadence,throughput,limiter]
        [--merchants 200] [--cadence-merchants 20] [--cadence-minutes 30]
        [--throughput-merchants 20] [--returns-per-merchant 100] [--no-write]

The machine's load average is recorded next to every figure (shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report import BENCHMARKS, machine, write_section  # noqa: E402

SECTION = "## Many merchants"
PARTS = ("parse", "memory", "cadence", "throughput", "limiter")
BASES = ("loop_returns_to_whiplash", "loop_asn_backfill", "whiplash_receipts_to_loop")
WHIPLASH_LIMIT_PER_S = 10.0
PARSE_GOAL_S = 5.0
#: Airflow's default `[dag_processor] parsing_processes`, which the deployment keeps.
PARSING_PROCESSES = 2
MEMORY_GOAL = 1.25
LAG_GOAL_S = 60.0
FLOOR_GOAL = 1.3
SEED_YIELD_GUESS = 0.6
#: Task slots of the cadence stack: 2 Celery workers x 4; `whiplash_api` as many
#: (RETURNS_SYNC_API_POOL_SLOTS), `loop_api` 3 per merchant (deploy/pools.py).
CADENCE_SLOTS = 8


def merchant_ids(n: int) -> list[str]:
    """The sandbox's merchant ids for N merchants (m01..mNN, at least two digits)."""
    width = max(2, len(str(n)))
    return [f"m{i:0{width}d}" for i in range(1, n + 1)]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"


def now() -> str:
    """When, and on which code: the time and the commit measured (`+` local changes)."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return when
    return f"{when} on commit {commit}{'+' if dirty else ''}" if commit else when


def fake_merchants_file(path: Path, n: int) -> list[str]:
    """A merchants file of N merchants in one Whiplash account (for parse and memory: the
    DAGs are built, never run, so the connections need not answer)."""
    import yaml

    ids = merchant_ids(n)
    entries = [
        {
            "id": m,
            "loop_conn_id": f"loop_{m}",
            "whiplash_conn_id": "whiplash_default",
            "whiplash_customer_id": 1000 + i,
        }
        for i, m in enumerate(ids, start=1)
    ]
    path.write_text(yaml.safe_dump({"merchants": entries}, sort_keys=False))
    return ids


def fake_connections(ids: Iterable[str]) -> dict[str, str]:
    """A Loop connection per merchant and `whiplash_default`, to a port nothing listens on."""
    conn = {"conn_type": "http", "host": "http://127.0.0.1:9", "password": "unused"}
    connections = {f"AIRFLOW_CONN_LOOP_{m.upper()}": json.dumps(conn) for m in ids}
    connections["AIRFLOW_CONN_WHIPLASH_DEFAULT"] = json.dumps({**conn, "login": "unused"})
    return connections


# --------------------------------------------------------------------------- processes


def processes_of(group: Any, names: Iterable[str]) -> list[Any]:
    """Every live process (component and descendants) of the named components."""
    found = []
    wanted = set(names)
    for child in group.children:
        if child.name in wanted:
            found += child.tree()
    return found


def pss_bytes(processes: Iterable[Any]) -> int:
    """Sum of PSS (proportional set size: shared pages split between their users), RSS where
    PSS cannot be read."""
    import psutil

    total = 0
    for process in processes:
        try:
            info = process.memory_full_info()
            total += getattr(info, "pss", 0) or info.rss
        except psutil.Error:
            continue
    return total


def cpu_seconds(processes: Iterable[Any]) -> float:
    """CPU seconds of these processes, each with its waited-for children (user + system).

    Summed over every live process of a tree, this counts each process that ever ran in it
    once: a dead one is in its waiting parent's children times, a live one in its own."""
    import psutil

    total = 0.0
    for process in processes:
        try:
            t = process.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return total


# --------------------------------------------------------------------------- part: parse


def parse_worker(dags_dir: Path, rounds: int) -> dict[str, Any]:
    """In this process (Airflow loaded): each DAG file in a forked child, as the dag-processor
    parses it; wall seconds per file (fork to result), DAG counts, import errors, result size.

    Each round parses the files one after another (with the DagBag / serialization breakdown
    measured in the child after its result), then all of them again with `PARSING_PROCESSES`
    children at a time, the dag-processor's default: that round's wall time, from the first
    fork to the last result, is the time the dag-processor takes to parse the DAG files."""
    import gc

    import structlog
    from airflow.dag_processing import processor  # noqa: F401  (loaded before the freeze)

    gc.freeze()  # as the dag-processor's manager does before its loop (no COW in the children)
    log = structlog.get_logger()
    files = sorted(p for p in dags_dir.glob("*.py") if not p.name.startswith("_"))
    measured: list[dict[str, dict[str, Any]]] = []
    concurrent: list[float] = []
    for _ in range(rounds):
        measured.append({p.name: finish_parse(*fork_parse(p, dags_dir, log)) for p in files})
        started = time.perf_counter()
        waiting, running, results = list(files), [], []
        while waiting or running:
            while waiting and len(running) < PARSING_PROCESSES:
                running.append(fork_parse(waiting.pop(0), dags_dir, log, breakdown=False))
            pid, _ = os.wait()
            done = next(r for r in running if r[0] == pid)
            running.remove(done)
            results.append(finish_parse(*done, waited=True))
        concurrent.append(max(r.get("parsed_at", float("nan")) for r in results) - started)
    return {"rounds": measured, "concurrent": concurrent}


def fork_parse(
    path: Path, dags_dir: Path, log: Any, *, breakdown: bool = True
) -> tuple[int, int, float]:
    """Parse one DAG file in a forked child the way the dag-processor does; (pid, the read end
    of the pipe its measurements arrive on, when it was forked)."""
    from airflow.dag_processing.processor import (
        DagFileParseRequest,
        _parse_file,
        _pre_import_airflow_modules,
    )

    started = time.perf_counter()
    _pre_import_airflow_modules(str(path), log)  # the manager does this before forking
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        return pid, read_end, started
    os.close(read_end)  # the parsing process
    code = 0
    try:
        os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "client"
        request = DagFileParseRequest(
            file=str(path), bundle_path=dags_dir, bundle_name="dags-folder", callback_requests=[]
        )
        result = _parse_file(request, log)
        encoded = result.model_dump_json() if result is not None else ""
        parsed = time.perf_counter()  # what the dag-processor waits for
        usage = resource.getrusage(resource.RUSAGE_SELF)  # this child's CPU so far
        errors = (result.import_errors or {}) if result is not None else {}
        info = {
            "dags": len(result.serialized_dags) if result is not None else 0,
            "import_errors": len(errors),
            "error_text": "\n".join(errors.values())[:300],
            "bytes": len(encoded),
            "parse_s": parsed - started,
            "parsed_at": parsed,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            **(parts_of_parse(path, dags_dir, log) if breakdown else {}),
        }
        os.write(write_end, json.dumps(info).encode())
    except BaseException as exc:
        os.write(write_end, json.dumps({"crash": repr(exc)}).encode())
        code = 1
    finally:
        os._exit(code)


def finish_parse(pid: int, read_end: int, started: float, waited: bool = False) -> dict[str, Any]:
    """The measurements of one parsing child, after it exits."""
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    if not waited:
        os.waitpid(pid, 0)
    info = json.loads(b"".join(chunks) or b"{}")
    # fork -> result encoded (the breakdown measured after that is not part of it)
    return {"seconds": info.get("parse_s", float("nan")), **info}


def parts_of_parse(path: Path, dags_dir: Path, log: Any) -> dict[str, float]:
    """Where a parse's time goes, measured again after it (the modules the file imports are
    loaded by then): the DagBag alone (running the file, building its DAG objects) and the
    serialization of its DAGs."""
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.dag_processing.processor import _serialize_dags

    started = time.perf_counter()
    bag = BundleDagBag(
        dag_folder=str(path), bundle_path=dags_dir, bundle_name="dags-folder", load_op_links=False
    )
    built = time.perf_counter()
    _serialize_dags(bag, log)
    return {"bag_s": built - started, "serialize_s": time.perf_counter() - built}


def run_parse(n: int, rounds: int) -> dict[str, Any]:
    """Parse times for N merchants and, as the reference, for 1."""
    results: dict[str, Any] = {"load_before": load(), "when": now(), "rounds": rounds}
    for count in (1, n):
        with tempfile.TemporaryDirectory(prefix="bench-merchants-parse-") as tmp:
            work = Path(tmp)
            fake_merchants_file(work / "merchants.yaml", count)
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RETURNS_SYNC"))
            }
            env |= {
                "PYTHONPATH": str(ROOT),
                "AIRFLOW_HOME": str(work / "airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "RETURNS_SYNC_MERCHANTS": str(work / "merchants.yaml"),
            }
            done = subprocess.run(
                [sys.executable, __file__, "--parse-worker", str(ROOT / "dags"), str(rounds)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the parse worker failed:\n{done.stderr[-4000:]}")
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            summary = summarize_parse(measured["rounds"], measured["concurrent"])
            summary["real"] = real_dag_processor(env, work / "airflow")
        results[str(count)] = summary
    results["load_after"] = load()
    return results


def real_dag_processor(env: Mapping[str, str], home: Path) -> dict[str, Any]:
    """One loop of the real `airflow dag-processor -n 1` (PostgreSQL metadata database, as
    deployed; default `parsing_processes`): the manager forks the parsing processes and then
    writes every DAG to the metadata database itself, one file's results at a time. From its
    log: the loop's time (the files queued -> the process exits) and each file's last duration
    as its stats table prints it (fork -> the manager has written the results)."""
    from tests.support.services import PostgresDatabases

    databases = PostgresDatabases()
    try:
        metadata = databases.create("dagproc").render_as_string(hide_password=False)
        return _one_dag_processor_loop(
            {**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata}, home
        )
    finally:
        databases.drop_all()


def _one_dag_processor_loop(env: Mapping[str, str], home: Path) -> dict[str, Any]:
    import re

    env = {**env, "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "1"}
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "dag-processor", "-n", "1"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    exited = datetime.now(UTC)
    log = done.stdout + done.stderr
    queued = re.search(r"^(\S+Z) .*new files to the front of the queue", log, re.MULTILINE)
    if done.returncode != 0 or queued is None:
        return {"error": f"exit {done.returncode}: {log[-500:]}"}
    table = log.rsplit("DAG File Processing Stats", 1)[-1]
    files = {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r"^dags-folder\s+(\S+\.py)\s.*?\s([\d.]+)s\s+\S+$", table, re.MULTILINE
        )
    }
    started = datetime.fromisoformat(queued.group(1).replace("Z", "+00:00"))
    return {"loop_s": (exited - started).total_seconds(), "files": files}


def summarize_parse(
    rounds: list[dict[str, dict[str, Any]]], concurrent: list[float]
) -> dict[str, Any]:
    files = sorted(rounds[0])
    per_file = {
        name: {
            "median_s": statistics.median(r[name]["seconds"] for r in rounds),
            "cpu_s": statistics.median(r[name].get("cpu_s", 0.0) for r in rounds),
            "dags": rounds[-1][name].get("dags"),
            "import_errors": rounds[-1][name].get("import_errors"),
            "crash": rounds[-1][name].get("crash"),
            "kib": rounds[-1][name].get("bytes", 0) / 1024,
            "bag_s": statistics.median(r[name].get("bag_s", 0.0) for r in rounds),
            "serialize_s": statistics.median(r[name].get("serialize_s", 0.0) for r in rounds),
        }
        for name in files
    }
    totals = [sum(r[name]["seconds"] for name in files) for r in rounds]
    cpu_totals = [sum(r[name].get("cpu_s", 0.0) for name in files) for r in rounds]
    return {
        "cpu_s": statistics.median(cpu_totals),
        "per_file": per_file,
        "total_s": statistics.median(totals),
        "totals": totals,
        "concurrent_s": statistics.median(concurrent),
        "concurrents": concurrent,
        "dags": sum(f["dags"] or 0 for f in per_file.values()),
        "slowest_file_s": max(f["median_s"] for f in per_file.values()),
    }


def parse_markdown(result: dict[str, Any], n: int) -> str:
    big, one = result[str(n)], result["1"]
    rows = [
        "| DAG file | 1 merchant | "
        + f"{n} merchants | of which: DagBag / serialization (again, modules warm) | "
        + "DAGs | serialized size | import errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in big["per_file"].items():
        small = one["per_file"].get(name, {})
        rows.append(
            f"| `{name}` | {small.get('median_s', 0):.2f} s ({small.get('cpu_s', 0):.2f} s) | "
            f"**{f['median_s']:.2f} s** ({f['cpu_s']:.2f} s) | "
            f"{f['bag_s']:.2f} s / {f['serialize_s']:.2f} s | "
            f"{f['dags']} | {f['kib']:,.0f} KiB | {f['import_errors']}"
            + (f" (crash: {f['crash']})" if f.get("crash") else "")
            + " |"
        )
    verdict = "met" if big["concurrent_s"] < PARSE_GOAL_S else "**missed**"
    rows.append(
        f"| **all files, one after another** (one parsing process) | {one['total_s']:.2f} s "
        f"({one['cpu_s']:.2f} s) | **{big['total_s']:.2f} s** ({big['cpu_s']:.2f} s) | | "
        f"{big['dags']} | | |"
    )
    rows.append(
        f"| **all files, {PARSING_PROCESSES} at a time (the dag-processor's default)** | "
        f"{one['concurrent_s']:.2f} s | **{big['concurrent_s']:.2f} s** "
        f"(goal < {PARSE_GOAL_S:.0f} s: {verdict}) | | {big['dags']} | | |"
    )
    real_big, real_one = big.get("real", {}), one.get("real", {})
    if "loop_s" in real_big:
        slowest = max(real_big["files"].items(), key=lambda item: item[1], default=("", 0.0))
        rows.append(
            "| the real `airflow dag-processor -n 1`, parsing **and writing every DAG to the "
            f"metadata database** (PostgreSQL): one loop | {real_one.get('loop_s', 0):.1f} s | "
            f"{real_big['loop_s']:.1f} s (slowest file as its stats print it: `{slowest[0]}` "
            f"{slowest[1]:.2f} s) | | {big['dags']} | | |"
        )
    elif real_big:
        rows.append(
            f"| the real dag-processor | | failed: {real_big.get('error', '')[:200]} | | | | |"
        )
    totals = ", ".join(f"{t:.2f}" for t in big["totals"])
    return "\n".join(
        [
            "### Parse time (dag-processor)",
            "",
            f"Measured {result['when']}, load average (1/5/15 min) {result['load_before']} "
            f"before, {result['load_after']} after. Each DAG file of dags/ is parsed in a "
            "process forked from a parent with Airflow loaded and its garbage collector frozen "
            "(as the dag-processor's manager freezes it, then forks one process per file after "
            "pre-importing the file's Airflow modules), by Airflow's own "
            "`airflow.dag_processing.processor._parse_file` (the file's `DagBag` and the "
            "serialization of each of its DAGs), the result encoded as JSON as it would be "
            "sent to the manager; time from fork to exit, median of "
            f"{result['rounds']} rounds (totals of the rounds: {totals} s); in brackets the "
            "parsing process's CPU time (user + system), which the load of this shared "
            "machine does not inflate. Then, each round, the same files "
            f"{PARSING_PROCESSES} at a time, as the dag-processor parses them with its default "
            f"`parsing_processes` = {PARSING_PROCESSES} (the deployment keeps it): time from "
            "the first fork to the last result (rounds: "
            + ", ".join(f"{t:.2f}" for t in big["concurrents"])
            + " s). What the goal is measured on.",
            "",
            *rows,
            "",
        ]
    )


# --------------------------------------------------------------------------- part: memory


def run_memory(n: int, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {"when": now(), "seconds": seconds}
    for count in (1, n):
        results[str(count)] = memory_of_deployment(count, seconds)
    return results


def memory_of_deployment(n: int, seconds: float) -> dict[str, Any]:
    """Start the LocalExecutor stack with N merchants; sample PSS until every DAG is parsed
    and for `seconds` after; stop it."""
    from tests.support.airflow_stack import COMPONENTS, AirflowStack, StackConfig, merchant_dag_ids
    from tests.support.processes import ProcessGroup

    with tempfile.TemporaryDirectory(prefix=f"bench-merchants-mem{n}-") as tmp:
        work = Path(tmp)
        ids = fake_merchants_file(work / "merchants.yaml", n)
        config = StackConfig(
            home=work / "airflow",
            state_conn=f"sqlite:///{work / 'state.db'}",
            connections=fake_connections(ids),
            settings={
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "5",
            },
            merchants_file=work / "merchants.yaml",
        )
        from include.returns_sync.state import StateStore

        store = StateStore.from_url(config.state_conn)
        store.migrate()
        store.dispose()
        group = ProcessGroup(work / "logs")
        samples: list[int] = []
        per_component: dict[str, int] = {}

        def sample() -> None:
            total = 0
            for name in COMPONENTS:
                used = pss_bytes(processes_of(group, [name]))
                per_component[name] = max(per_component.get(name, 0), used)
                total += used
            samples.append(total)

        try:
            stack = AirflowStack(config, group)
            stack.airflow("db", "migrate")
            started = time.monotonic()
            stack.start()
            dag_ids = merchant_dag_ids(ids)
            expected = len(dag_ids)
            parsed_in = None
            deadline = started + 600
            while time.monotonic() < deadline:
                group.assert_alive()
                sample()
                if stack.healthy():
                    if not stack.api.session.headers.get("Authorization"):
                        stack.api.login()
                    if dag_count(stack.api) >= expected:
                        parsed_in = time.monotonic() - started
                        break
                time.sleep(1.0)
            if parsed_in is None:
                raise RuntimeError(f"{expected} DAGs were not parsed within 600 s")
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                sample()
                time.sleep(1.0)
            errors = stack.api.call("GET", "/importErrors?limit=5")
        finally:
            group.stop_all()
    return {
        "merchants": n,
        "dags": expected,
        "parsed_in_s": parsed_in,
        "peak_bytes": max(samples),
        "settled_bytes": samples[-1],
        "per_component_peak": per_component,
        "import_errors": errors.get("total_entries", 0),
        "load": load(),
    }


def dag_count(api: Any) -> int:
    body = api.call("GET", "/dags?limit=1&paused=true") or {}
    paused = int(body.get("total_entries", 0))
    body = api.call("GET", "/dags?limit=1&paused=false") or {}
    return paused + int(body.get("total_entries", 0))


def mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def memory_markdown(result: dict[str, Any], n: int) -> str:
    one, big = result["1"], result[str(n)]
    ratio = big["peak_bytes"] / one["peak_bytes"]
    verdict = "met" if ratio <= MEMORY_GOAL else "**missed**"
    rows = [
        "| measure | 1 merchant (3 DAGs) | " + f"{n} merchants ({big['dags']} DAGs) |",
        "| --- | --- | --- |",
        f"| peak PSS of the whole deployment | {mib(one['peak_bytes'])} | "
        f"**{mib(big['peak_bytes'])}** (**{ratio:.2f}x**, goal <= {MEMORY_GOAL}x: {verdict}; "
        f"one stack per merchant: {n}x) |",
        f"| PSS at the end (idle, every DAG parsed) | {mib(one['settled_bytes'])} | "
        f"{mib(big['settled_bytes'])} |",
    ]
    for name in one["per_component_peak"]:
        rows.append(
            f"| peak of `{name}` (with its children) | {mib(one['per_component_peak'][name])} | "
            f"{mib(big['per_component_peak'][name])} |"
        )
    rows += [
        f"| start -> every DAG visible in the REST API (the real dag-processor, one parsing "
        f"process, writes included) | {one['parsed_in_s']:.0f} s | {big['parsed_in_s']:.0f} s |",
        f"| import errors | {one['import_errors']} | {big['import_errors']} |",
        f"| load average (1/5/15 min) at the end | {one['load']} | {big['load']} |",
    ]
    return "\n".join(
        [
            "### Memory of the whole deployment",
            "",
            f"Measured {result['when']}. The LocalExecutor topology of "
            "tests/support/airflow_stack.py (SQLite metadata, api-server with 1 worker, "
            "scheduler, dag-processor with 1 parsing process, triggerer), the same settings "
            "for both; the merchants file lists 1 or N merchants in one Whiplash account. "
            "Memory is the sum of PSS (shared pages split between the processes that map "
            "them) of every process of every component, sampled each second from start "
            f"until every DAG is parsed and {result['seconds']:.0f} s after. The DAGs stay "
            "paused: a running task costs one task process whatever the number of merchants "
            "(bounded by the executor's parallelism), so what grows with merchants is what "
            "this measures.",
            "",
            *rows,
            "",
        ]
    )


# --------------------------------------------------------------------------- part: cadence


def run_cadence(
    n: int, minutes: float, workdir: Path | None, warmup_minutes: float = 5.0
) -> dict[str, Any]:
    """N merchants on their real schedules for `minutes`, on the Celery stack, measured after
    `warmup_minutes` from unpausing every DAG at once (what that first burst does to the first
    ticks is measured too, and reported on its own line)."""
    from tests.support import airflow_stack
    from tests.support.airflow_stack import MerchantSetup, sandbox_admin

    with tempfile.TemporaryDirectory(prefix="bench-merchants-cadence-") as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        vendors = airflow_stack.sandbox_process(returns=20, merchants=n)
        settings = {
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "RETURNS_SYNC_RETRY_DELAY_SECONDS": "30",
            "RETURNS_SYNC_BATCH_SIZE": "100",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CADENCE_SLOTS // 2),
            "AIRFLOW__CORE__PARALLELISM": str(CADENCE_SLOTS * 2),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
        }
        with airflow_stack.celery_stack(
            work,
            start_sandbox=vendors,
            settings=settings,
            pool_slots=CADENCE_SLOTS,
            merchants=MerchantSetup(),
        ) as running:
            api, admin = running.api, running.sandbox["admin_url"]
            pools = running.stack.pool_sizes()
            names = running.stack.config.components
            dag_ids = [running.dag_id(b, m) for m in running.merchants for b in BASES]
            for dag_id in dag_ids:
                api.unpause(dag_id)
            unpaused_at = datetime.now(UTC)
            print(f"cadence: {len(dag_ids)} DAGs unpaused at {unpaused_at:%H:%M:%S}", flush=True)
            loads: list[float] = []
            next_traffic = time.monotonic() + 300

            def keep_running(until: float) -> None:
                nonlocal next_traffic
                while time.monotonic() < until:
                    running.processes.assert_alive()
                    loads.append(os.getloadavg()[0])
                    if time.monotonic() >= next_traffic:  # the shops keep selling and returning
                        sandbox_admin(admin, "POST", "/seed", {"n": 2})
                        sandbox_admin(admin, "POST", "/advance-labels")
                        sandbox_admin(admin, "POST", "/receive")
                        next_traffic += 300
                    time.sleep(min(15.0, max(0.1, until - time.monotonic())))

            keep_running(time.monotonic() + warmup_minutes * 60)
            del loads[:]
            started_at = datetime.now(UTC)
            cpu_start = cpu_seconds(processes_of(running.processes, names))
            starts_before = sum(running.stack.workloads_per_worker().values())
            keep_running(time.monotonic() + minutes * 60)
            ended_at = datetime.now(UTC)
            cpu_end = cpu_seconds(processes_of(running.processes, names))
            starts = sum(running.stack.workloads_per_worker().values()) - starts_before
            every_run = list_runs(api, unpaused_at - timedelta(hours=1))
            instances = list_task_instances(api, started_at)
            merchants = running.merchants
    runs = [r for r in every_run if (_time(r.get("run_after")) or ended_at) >= started_at]
    due = due_runs(merchants, started_at, ended_at)
    warmup_due = due_runs(merchants, unpaused_at, started_at)
    return {
        "when": now(),
        "merchants": n,
        "minutes": minutes,
        "started_at": started_at.isoformat(),
        "ended_at": ended_at.isoformat(),
        "pools": pools,
        "cpu_s": cpu_end - cpu_start,
        "task_starts": starts,
        "lags": lags(due, every_run, ended_at),
        "warmup_minutes": warmup_minutes,
        "warmup_lags": lags(warmup_due, every_run, ended_at),
        "run_states": dict(Counter(r["state"] for r in runs)),
        "run_types": dict(Counter(r["run_type"] for r in runs)),
        "task_states": dict(Counter(str(t.get("state")) for t in instances)),
        "task_seconds": [float(t["duration"]) for t in instances if t.get("duration")],
        "load_mean": statistics.mean(loads) if loads else None,
        "load_max": max(loads) if loads else None,
        "load_end": load(),
    }


def list_runs(api: Any, since: datetime) -> list[dict[str, Any]]:
    """Every DAG run (all DAGs) whose run_after is at or after `since`."""
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = api.call(
            "GET",
            f"/dags/~/dagRuns?limit=100&offset={offset}"
            f"&run_after_gte={since.isoformat().replace('+00:00', 'Z')}",
        )
        found += body["dag_runs"]
        offset += 100
        if offset >= body["total_entries"]:
            return found


def list_task_instances(api: Any, since: datetime) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = api.call(
            "GET",
            f"/dags/~/dagRuns/~/taskInstances?limit=100&offset={offset}"
            f"&start_date_gte={since.isoformat().replace('+00:00', 'Z')}",
        )
        found += body["task_instances"]
        offset += 100
        if offset >= body["total_entries"]:
            return found


def due_runs(
    merchants: Sequence[str], start: datetime, end: datetime
) -> list[tuple[str, datetime]]:
    """(dag_id, scheduled time) of every run due in (start, end], from each merchant's
    staggered cron (the DAG files' own `dag_defaults`), with the deployment's settings."""
    from croniter import croniter

    from include.returns_sync import dag_defaults
    from include.returns_sync.merchants import Merchant

    due = []
    for merchant_id in merchants:
        merchant = Merchant(id=merchant_id, loop_conn_id=f"loop_{merchant_id}")
        crons = {
            "loop_returns_to_whiplash": dag_defaults.staggered_cron(rma_minutes(), merchant_id),
            "whiplash_receipts_to_loop": dag_defaults.staggered_cron(
                receipts_minutes(), merchant_id
            ),
            "loop_asn_backfill": dag_defaults.backfill_cron(merchant),
        }
        for base, cron in crons.items():
            ticks = croniter(cron, start)
            while (tick := ticks.get_next(datetime)) <= end:
                due.append((merchant.dag_id(base), tick))
    return due


def rma_minutes() -> int:
    from include.returns_sync.settings import settings

    return int(settings().rma_schedule_minutes)


def receipts_minutes() -> int:
    from include.returns_sync.settings import settings

    return int(settings().receipts_schedule_minutes)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def lags(
    due: list[tuple[str, datetime]], runs: list[dict[str, Any]], ended: datetime
) -> dict[str, Any]:
    """Start lag of every due run; a due run without a started run within the window that
    could still see it start (60 s before the end) counts as missed."""
    scheduled = {}
    for run in runs:
        if run["run_type"] != "scheduled":
            continue
        at = _time(run.get("run_after")) or _time(run.get("logical_date"))
        if at is not None:
            scheduled[(run["dag_id"], at.replace(microsecond=0))] = run
    values: list[float] = []
    missed: list[str] = []
    late: list[str] = []
    for dag_id, tick in due:
        found = scheduled.get((dag_id, tick))
        start = _time(found.get("start_date")) if found else None
        if start is None:
            if tick < ended - timedelta(seconds=LAG_GOAL_S):
                missed.append(f"{dag_id}@{tick:%H:%M}")
            continue
        values.append((start - tick).total_seconds())
        if values[-1] > LAG_GOAL_S:
            late.append(
                f"{dag_id}@{tick:%H:%M} +{values[-1]:.0f} s ({what_ran_before(runs, dag_id, start)})"
            )
    values.sort()
    return {
        "due": len(due),
        "started": len(values),
        "missed": missed,
        "max_s": max(values) if values else None,
        "p50_s": statistics.median(values) if values else None,
        "p95_s": values[int(0.95 * (len(values) - 1))] if values else None,
        "over_goal": sum(v > LAG_GOAL_S for v in values),
        "late": late,
    }


def what_ran_before(runs: list[dict[str, Any]], dag_id: str, start: datetime) -> str:
    """The run of the same DAG that ended last before `start` (max_active_runs is 1, so a late
    start usually waited for it): its type, its start and end."""
    before = [
        r for r in runs if r["dag_id"] == dag_id and (_time(r.get("end_date")) or start) < start
    ]
    if not before:
        return "no earlier run"
    last = max(before, key=lambda r: _time(r["end_date"]) or start)
    began, ended = _time(last.get("start_date")), _time(last.get("end_date"))
    took = f"{(ended - began).total_seconds():.0f} s" if began and ended else "?"
    return f"after a {last['run_type']} run that took {took}, ended {ended:%H:%M:%S}"


def cadence_markdown(result: dict[str, Any], project_to: int) -> str:
    minutes, n = result["minutes"], result["merchants"]
    lag = result["lags"]
    pools = result.get("pools") or {"loop_api": CADENCE_SLOTS, "whiplash_api": CADENCE_SLOTS}
    per_hour = result["task_starts"] * 60 / minutes
    cpu_per_start = result["cpu_s"] / result["task_starts"] if result["task_starts"] else 0.0
    durations = result["task_seconds"]
    mean_task_s = statistics.mean(durations) if durations else 0.0
    scale = project_to / n
    starts_big = per_hour * scale
    cores_big = starts_big * cpu_per_start / 3600
    slots_big = starts_big * mean_task_s / 3600
    ok = not lag["missed"] and lag["over_goal"] == 0 and lag["max_s"] is not None
    verdict = "met" if ok else "**missed**"
    max_lag = f"{lag['max_s']:.1f} s" if lag["max_s"] is not None else "n/a"
    missed = ", ".join(lag["missed"][:10]) + (" ..." if len(lag["missed"]) > 10 else "")
    rows = [
        "| measure | value |",
        "| --- | --- |",
        f"| window | {minutes:.0f} min from {result['started_at'][11:19]} to "
        f"{result['ended_at'][11:19]} UTC, {n} merchants ({3 * n} DAGs) |",
        f"| due scheduled runs / started | {lag['due']} / {lag['started']} "
        f"(missed: {len(lag['missed'])}{': ' + missed if missed else ''}) |",
        f"| start lag (start - scheduled time): max | **{max_lag}** (goal <= "
        f"{LAG_GOAL_S:.0f} s for every due run: {verdict}); p50 {fmt_s(lag['p50_s'])}, "
        f"p95 {fmt_s(lag['p95_s'])}; over 60 s: {lag['over_goal']}"
        + (": " + "; ".join(lag.get("late", [])[:10]) if lag.get("late") else "")
        + " |",
        warmup_row(result),
        f"| runs in the window by type / state | {fmt_counts(result['run_types'])} / "
        f"{fmt_counts(result['run_states'])} |",
        f"| task starts (Celery workloads, retries included) | {result['task_starts']:,} = "
        f"**{per_hour:,.0f} per hour** |",
        f"| task instances by state | {fmt_counts(result['task_states'])} |",
        f"| CPU of every Airflow process (api-server, scheduler, dag-processor, triggerer, "
        f"2 Celery workers with their task processes) | {result['cpu_s']:,.0f} s = "
        f"**{cpu_per_start:.2f} CPU s per task start** |",
        f"| mean task duration | {mean_task_s:.1f} s |",
        f"| load average during the window (1 min): mean / max; at the end (1/5/15) | "
        f"{fmt_num(result['load_mean'])} / {fmt_num(result['load_max'])}; {result['load_end']} |",
    ]
    return "\n".join(
        [
            "### Cadence: real schedules",
            "",
            f"Measured {result['when']}. The Celery topology of the deployment tests "
            "(PostgreSQL metadata and state store, Redis, 2 Celery workers with 4 slots each, "
            f"pools {fmt_counts(pools)} slots, api-server, scheduler, dag-processor, "
            "triggerer) with the scheduler on and every "
            f"merchant's DAGs unpaused, on their default cadences (RMA poll every "
            f"{rma_minutes()} min, receipts every {receipts_minutes()} min, a daily backfill), "
            "each merchant on its own staggered minute (dag_defaults.staggered_cron). The "
            "sandbox (a shop per merchant, one Whiplash account) seeded 20 returns per "
            "merchant and every 5 minutes sells 2 more per merchant, moves labels and "
            "receives packages, so the runs do real work. Lag: a scheduled run's start_date "
            "minus its scheduled time, for every tick of every merchant's cron in the window. "
            f"The window opens {result.get('warmup_minutes', 0):.0f} min after every DAG was "
            "unpaused at once: unpausing starts every merchant's first runs together, and they "
            "create the RMAs of all the seeded returns (20 per merchant) through the one shared "
            "Whiplash rate limit (10 requests/s), about 2 minutes of work; a DAG's next tick "
            "waits for its first run (max_active_runs = 1). That one-off burst is on its own "
            "line.",
            "",
            *rows,
            "",
            f"Projection to {project_to} merchants: task starts grow with the number of "
            f"merchants (each merchant's cadence is its own), so **{starts_big:,.0f} task "
            f"starts per hour**; at {cpu_per_start:.2f} CPU s each that is "
            f"**{cores_big:.1f} CPU cores busy** on average for Airflow alone (workers, "
            f"scheduler and the rest), and by Little's law {slots_big:.1f} task slots busy on "
            f"average ({mean_task_s:.1f} s per task). Workers for {project_to} merchants: at "
            f"least {max(1, -(-int(cores_big * 10) // 10))} cores' worth of worker CPU plus "
            "headroom for peaks (runs cluster on the staggered minutes), e.g. "
            f"{max(2, -(-int(cores_big * 2) // 4))} workers of 4 cores at 50 % average load; "
            "the slot count is not the limit, CPU per task start is.",
            "",
        ]
    )


def warmup_row(result: dict[str, Any]) -> str:
    """The start lags of the ticks between unpausing every DAG and the window."""
    lag = result.get("warmup_lags")
    if not lag or not lag["due"]:
        return "| warm-up (unpausing -> window) | no tick due |"
    late = "; ".join(lag.get("late", [])[:5])
    return (
        f"| warm-up: the {lag['due']} ticks of the first {result['warmup_minutes']:.0f} min "
        f"after unpausing all {3 * result['merchants']} DAGs at once (not in the goal) | "
        f"max {fmt_s(lag['max_s'])}, p50 {fmt_s(lag['p50_s'])}; over 60 s: "
        f"{lag['over_goal']}{': ' + late if late else ''}; missed: {len(lag['missed'])} |"
    )


def fmt_s(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "n/a"


def fmt_num(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "n/a"


def fmt_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


# --------------------------------------------------------------------------- part: throughput


@contextmanager
def sandbox_cli(work: Path, merchants: int, rate_limits: bool) -> Iterator[dict[str, Any]]:
    """The sandbox CLI in its own process (its CPU is not the pipeline's); its URLs file."""
    urls_file = work / "sandbox-urls.json"
    argv = [sys.executable, "-m", "include.returns_sync.sandbox", "--seed", "7"]
    argv += ["--loop-port", "0", "--whiplash-port", "0", "--urls-file", str(urls_file)]
    argv += ["--merchants", str(merchants)] + (["--rate-limits"] if rate_limits else [])
    with (work / "sandbox.log").open("w") as log:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not (urls_file.exists() and urls_file.stat().st_size):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the sandbox did not start; see {log.name}")
                time.sleep(0.1)
            time.sleep(0.2)
            yield json.loads(urls_file.read_text())
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def admin_call(urls: Mapping[str, Any], method: str, path: str, body: Any = None) -> Any:
    import requests

    answer = requests.request(method, f"{urls['admin_url']}{path}", json=body, timeout=300)
    answer.raise_for_status()
    return answer.json()


def seed_merchant(urls: Mapping[str, Any], merchant: str, needs_rma: int) -> set[str]:
    """Seed one merchant's last 24 h until exactly `needs_rma` of its returns need an RMA."""
    truth = admin_call(urls, "GET", f"/truth?merchant={merchant}")
    while len(truth["needs_rma"]) < needs_rma:
        missing = needs_rma - len(truth["needs_rma"])
        body = {"n": max(1, int(missing * SEED_YIELD_GUESS)), "merchant": merchant}
        admin_call(urls, "POST", "/seed", body)
        truth = admin_call(urls, "GET", f"/truth?merchant={merchant}")
    return set(truth["needs_rma"])


def throughput_worker(merchants: list[str]) -> dict[str, Any]:
    """The RMA DAG's task bodies for each of `merchants` in turn, under `use_merchant`, as one
    pool slot runs them (one batch after another); timestamps on the shared wall clock."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from include.returns_sync import runtime
    from include.returns_sync.tasks import rma

    for merchant in merchants:  # imports, connections, migrated store: not part of the timing
        with runtime.use_merchant(merchant):
            runtime.state_store()
            runtime.loop_hook()
            runtime.whiplash_hook()
    began = time.time()
    outcomes: Counter[str] = Counter()
    for merchant in merchants:
        with runtime.use_merchant(merchant):
            window = rma.plan_window(datetime.now(UTC))
            batches = rma.collect_batches(window, [], include_retries=True)
            results = [rma.create_rmas(batch, source="poll") for batch in batches]
            summary = rma.finalize(
                dag_id=f"loop_returns_to_whiplash__{merchant}",
                run_id="bench",
                window=window,
                results=results,
                advance_watermark=True,
            )
            outcomes.update(summary["counts"])
    return {"began": began, "ended": time.time(), "counts": dict(outcomes)}


def run_throughput(n: int, per_merchant: int, concurrency: int) -> dict[str, Any]:
    """One case: a fresh rate-limited sandbox and state store, `concurrency` worker processes."""
    from cryptography.fernet import Fernet

    from tests.support.airflow_stack import MerchantSetup
    from tests.support.services import PostgresDatabases
    from tests.support.vendor_truth import loop_return_id, whiplash_consumer_returns

    databases = PostgresDatabases()
    databases.check()
    with tempfile.TemporaryDirectory(prefix="bench-merchants-rma-") as tmp:
        work = Path(tmp)
        try:
            state_url = databases.create("bench_state").render_as_string(hide_password=False)
            from include.returns_sync.state import StateStore

            store = StateStore.from_url(state_url)
            store.migrate()
            store.dispose()
            with sandbox_cli(work, n, rate_limits=True) as urls:
                setup = MerchantSetup()
                ids = setup.write_file(work / "merchants.yaml", urls)
                seeded_at = time.perf_counter()
                needed = {m: seed_merchant(urls, m, per_merchant) for m in ids}
                seed_s = time.perf_counter() - seeded_at
                admin_call(urls, "POST", "/stats/reset")
                print(
                    f"[throughput x{concurrency}] seeded {sum(map(len, needed.values()))} "
                    f"returns needing an RMA in {seed_s:.0f} s; running",
                    file=sys.stderr,
                    flush=True,
                )
                env = {
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith(("AIRFLOW", "RETURNS_SYNC"))
                }
                env |= setup.connections(urls)
                env |= {
                    "PYTHONPATH": str(ROOT),
                    "AIRFLOW_HOME": str(work / "airflow"),
                    "AIRFLOW_CONN_RETURNS_SYNC_DB": state_url,
                    "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                    "RETURNS_SYNC_MERCHANTS": str(work / "merchants.yaml"),
                    "RETURNS_SYNC_REPORTS_DIR": str(work / "reports"),
                    "RETURNS_SYNC_INITIAL_LOOKBACK_HOURS": "25",
                    "RETURNS_SYNC_MAX_UNMAPPABLE": "0",
                    "RETURNS_SYNC_BATCH_SIZE": "100",
                }
                shares = [list(ids[i::concurrency]) for i in range(concurrency)]
                workers = [
                    subprocess.Popen(
                        [sys.executable, __file__, "--throughput-worker", ",".join(share)],
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    for share in shares
                ]
                reports = []
                for worker in workers:
                    out, err = worker.communicate()
                    if worker.returncode != 0:
                        raise RuntimeError(f"a throughput worker failed:\n{err[-4000:]}")
                    reports.append(json.loads(out.strip().splitlines()[-1]))
                stats = admin_call(urls, "GET", "/stats")
                rmas = whiplash_consumer_returns(urls)
                keys = urls["merchants"]
        finally:
            databases.drop_all()
    owner = {rid: m for m, rids in needed.items() for rid in rids}
    per_return = Counter(loop_return_id(r) for r in rmas)
    wrong_customer = [
        r["id"]
        for r in rmas
        if loop_return_id(r) in owner
        and r.get("customer_id") != keys[owner[loop_return_id(r)]]["whiplash_customer_id"]
    ]
    whiplash = stats["whiplash"]
    over = int(whiplash["statuses"].get("429", 0))
    counts: Counter[str] = Counter()
    for report in reports:
        counts.update(report["counts"])
    wall = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
    floor = (whiplash["total"] - over) / WHIPLASH_LIMIT_PER_S
    return {
        "concurrency": concurrency,
        "merchants": n,
        "needs_rma": len(owner),
        "counts": dict(counts),
        "exactly_once": set(per_return) == set(owner) and all(v == 1 for v in per_return.values()),
        "rmas": sum(per_return.values()),
        "wrong_customer": len(wrong_customer),
        "whiplash_calls": whiplash["total"],
        "whiplash_429": over,
        "loop_calls": stats["loop"]["total"],
        "loop_429": int(stats["loop"]["statuses"].get("429", 0)),
        "wall_s": wall,
        "floor_s": floor,
        "vs_floor": wall / floor if floor else None,
        "load": load(),
    }


def throughput_markdown(cases: list[dict[str, Any]]) -> str:
    rows = [
        "| measure | " + " | ".join(f"{c['concurrency']} concurrent task(s)" for c in cases) + " |",
        "| --- |" + " --- |" * len(cases),
    ]

    def row(name: str, cell: Any) -> None:
        rows.append(f"| {name} | " + " | ".join(cell(c) for c in cases) + " |")

    row("returns that need an RMA", lambda c: f"{c['needs_rma']:,} ({c['merchants']} merchants)")
    row("outcomes", lambda c: fmt_counts(c["counts"]))
    row(
        "exactly one RMA each, none else / under the wrong customer",
        lambda c: (
            f"{'yes' if c['exactly_once'] else '**NO**'} ({c['rmas']:,}) / {c['wrong_customer']}"
        ),
    )
    row(
        "Whiplash calls (429s) / Loop calls (429s)",
        lambda c: (
            f"{c['whiplash_calls']:,} ({c['whiplash_429']}) / {c['loop_calls']:,} ({c['loop_429']})"
        ),
    )
    row("shared floor = Whiplash calls / 10 per s", lambda c: f"{c['floor_s']:.1f} s")
    row("RMA creation wall time", lambda c: f"**{c['wall_s']:.1f} s**")

    def verdict(c: dict[str, Any]) -> str:
        met = "met" if c["vs_floor"] <= FLOOR_GOAL else "**missed**"
        return f"**{c['vs_floor']:.2f}x**" + (
            f" (goal <= {FLOOR_GOAL}x: {met})" if c["concurrency"] > 1 else ""
        )

    row("wall time / floor", verdict)
    row("load average (1/5/15 min) at the end", lambda c: c["load"])
    return "\n".join(
        [
            "### Throughput: one shared Whiplash account",
            "",
            f"Measured {now()}. The sandbox (its own process) serves {cases[0]['merchants']} "
            "Loop shops and one Whiplash account with a customer per merchant, rate limits "
            "on (Whiplash 10 "
            "requests/s per account, shared by its customers; Loop 300/min per API key); each "
            "merchant's last 24 h are seeded until exactly the asked number of its returns "
            "need an RMA. Worker processes run the RMA DAG's task bodies (`plan_window` -> "
            "`collect_batches` -> `create_rmas` per batch -> `finalize`) for their share of "
            "the merchants, one after another, each under `runtime.use_merchant(<id>)`, with "
            "the hooks' defaults (the shared limiter over one PostgreSQL state store). Wall "
            "time from the first worker's start to the last one's end; Whiplash calls "
            "counted by the sandbox, token requests included.",
            "",
            *rows,
            "",
        ]
    )


# --------------------------------------------------------------------------- part: limiter


def run_limiter(seconds: float) -> dict[str, Any]:
    """H2's limiter benchmark, as it is (it measures what issue 13 asks); its table."""
    script = ROOT / "bench" / "bench_limiter.py"
    if not script.exists():
        return {"missing": True, "when": now()}
    done = subprocess.run(
        [sys.executable, str(script), "--seconds", f"{seconds:g}", "--no-write"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench_limiter.py failed:\n{done.stderr[-4000:]}")
    lines = done.stdout.splitlines()
    return {
        "when": now(),
        "seconds": seconds,
        "table": [line for line in lines if line.startswith("|")],
        "verdicts": bullets(lines),
        "load": load(),
    }


def bullets(lines: list[str]) -> list[str]:
    """The report's bullet points, each with its continuation lines."""
    found: list[str] = []
    for line in lines:
        if line.startswith("- ") or (found and line.startswith("  ") and line.strip()):
            found.append(line)
    return found


def limiter_markdown(result: dict[str, Any]) -> str:
    head = ["### The limiter alone", ""]
    if result.get("missing"):
        return "\n".join([*head, "bench/bench_limiter.py is not in this tree: not measured.", ""])
    return "\n".join(
        [
            *head,
            f"Measured {result['when']} by H2's `bench/bench_limiter.py --seconds "
            f"{result['seconds']:g}` (see its own section for the method), load average "
            f"{result['load']} at the end:",
            "",
            *result["table"],
            "",
            *result["verdicts"],
            "",
        ]
    )


# --------------------------------------------------------------------------- the section


def update_section(subsections: Mapping[str, str], command: str, path: Path = BENCHMARKS) -> str:
    """The section with these subsections replaced (others kept as they were measured)."""
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    kept: dict[str, str] = {}
    if SECTION in current.splitlines():
        body = current.split(SECTION + "\n", 1)[1]
        body = body.split("\n## ", 1)[0]
        title, buffer = None, []
        for line in body.splitlines():
            if line.startswith("### "):
                if title:
                    kept[title] = "\n".join(buffer).rstrip() + "\n"
                title, buffer = line, [line]
            elif title:
                buffer.append(line)
        if title:
            kept[title] = "\n".join(buffer).rstrip() + "\n"
    for text in subsections.values():
        kept[text.splitlines()[0]] = text.rstrip() + "\n"
    order = [
        "### Parse time (dag-processor)",
        "### Memory of the whole deployment",
        "### Cadence: real schedules",
        "### Throughput: one shared Whiplash account",
        "### The limiter alone",
    ]
    parts = [kept[t] for t in order if t in kept] + [v for t, v in kept.items() if t not in order]
    intro = (
        f"{SECTION}\n\n`bench/bench_merchants.py` proves one deployment serves many merchants "
        "(issue 13). Each part is run on its own and rewrites only its subsection; every "
        "subsection says when it was measured and the load average of this shared machine "
        f"({machine()}, shared with other work). Reproduce:\n\n```bash\n{command}\n```\n"
    )
    return intro + "\n" + "\n".join(parts)


def render(raw: Mapping[str, Any], args: argparse.Namespace) -> dict[str, str]:
    """Markdown of every part in `raw` (as measured earlier and printed to stderr)."""
    texts = {}
    if "parse" in raw:
        texts["parse"] = parse_markdown(raw["parse"], args.merchants)
    if "memory" in raw:
        texts["memory"] = memory_markdown(raw["memory"], args.merchants)
    if "throughput" in raw:
        texts["throughput"] = throughput_markdown(raw["throughput"])
    if "limiter" in raw:
        texts["limiter"] = limiter_markdown(raw["limiter"])
    if "cadence" in raw:
        texts["cadence"] = cadence_markdown(raw["cadence"], args.project_to)
    return texts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated: " + ",".join(PARTS)
    )
    parser.add_argument("--merchants", type=int, default=200, help="merchants for parse/memory")
    parser.add_argument("--parse-rounds", type=int, default=3)
    parser.add_argument("--memory-seconds", type=float, default=60.0)
    parser.add_argument("--cadence-merchants", type=int, default=20)
    parser.add_argument("--cadence-minutes", type=float, default=30.0)
    parser.add_argument("--cadence-warmup-minutes", type=float, default=5.0)
    parser.add_argument("--cadence-workdir", type=Path, help="keep the cadence stack's files")
    parser.add_argument("--project-to", type=int, default=200)
    parser.add_argument("--throughput-merchants", type=int, default=20)
    parser.add_argument("--returns-per-merchant", type=int, default=100)
    parser.add_argument("--concurrency", default="4,1", help="worker processes per case")
    parser.add_argument("--limiter-seconds", type=float, default=20.0)
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument(
        "--from-json",
        type=Path,
        help="render (and write) the parts from a JSON file of raw results this script printed "
        "to stderr, instead of measuring",
    )
    parser.add_argument("--parse-worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--throughput-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.parse_worker:
        print(json.dumps(parse_worker(Path(args.parse_worker[0]), int(args.parse_worker[1]))))
        return
    if args.throughput_worker:
        print(json.dumps(throughput_worker(args.throughput_worker.split(","))))
        return
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    texts: dict[str, str] = {}
    raw: dict[str, Any] = {}
    if args.from_json:
        raw = json.loads(args.from_json.read_text())
        texts = render(raw, args)
        parts = []
    if "parse" in parts:
        raw["parse"] = run_parse(args.merchants, args.parse_rounds)
        texts["parse"] = parse_markdown(raw["parse"], args.merchants)
    if "memory" in parts:
        raw["memory"] = run_memory(args.merchants, args.memory_seconds)
        texts["memory"] = memory_markdown(raw["memory"], args.merchants)
    if "throughput" in parts:
        cases = [
            run_throughput(args.throughput_merchants, args.returns_per_merchant, int(c))
            for c in args.concurrency.split(",")
        ]
        raw["throughput"] = cases
        texts["throughput"] = throughput_markdown(cases)
    if "limiter" in parts:
        raw["limiter"] = run_limiter(args.limiter_seconds)
        texts["limiter"] = limiter_markdown(raw["limiter"])
    if "cadence" in parts:
        raw["cadence"] = run_cadence(
            args.cadence_merchants,
            args.cadence_minutes,
            args.cadence_workdir,
            args.cadence_warmup_minutes,
        )
        texts["cadence"] = cadence_markdown(raw["cadence"], args.project_to)
    print(json.dumps(raw, indent=1, default=str), file=sys.stderr)
    for text in texts.values():
        print(text)
    if not args.no_write and texts:
        command = (
            "source scripts/_env.sh && python bench/bench_merchants.py  # every part, or one:\n"
            "python bench/bench_merchants.py --parts parse      # also memory, cadence, "
            "throughput, limiter"
        )
        write_section(SECTION, update_section(texts, command), BENCHMARKS)
        print(f"written to {BENCHMARKS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
