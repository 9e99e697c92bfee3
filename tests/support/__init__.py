"""What the tests (and bench/) share: harnesses and fakes, never tests themselves.

* `tests.support.clock`: a fake monotonic time source for `TokenBucket` throttling tests.
* `tests.support.dag_harness`: the real DAGs run in-process with `dag.test()` against a sandbox
  (used by tests/dags and tests/reliability).
* `tests.support.workers`: per-xdist-worker isolation (Airflow metadata database, names).
"""
