"""What the tests (and bench/) share: harnesses and fakes, never tests themselves.

bench/ imports from tests/ only this package; no test imports bench/ (tests/test_layout.py).

* `dag_harness`: the real DAGs in-process with `dag.test()` against a sandbox (tests/dags,
  tests/reliability).
* `airflow_stack`, `processes`, `services`, `webhook_stack`: real Airflow components as
  processes for the end-to-end tests (marker `e2e`) and the webhook latency benchmark.
* `postgres`: the `pg_admin` / `pg_url` fixtures (a fresh schema per test).
* `clock`: a fake time source for `TokenBucket` throttling tests.
* `baseline_reconcile`: the per-return reference reconciliation (property tests, benchmark).
* `workers`: per-xdist-worker isolation (Airflow home and metadata database).
"""
