"""Preflight for going live: `python -m include.returns_sync.doctor` (PRODUCT.md section 2.4).

Checks, read-only, on the configured accounts every vendor behaviour the pipeline relies on
(section 6) and the Airflow side (connections, pools, state store), and prints per assumption
what we assume, what was observed and what the pipeline will do about it. Modules:
`checks` (the row type), `loop_checks`, `whiplash_checks`, `webhook_checks`, `airflow_checks`
(the checks), `probes` (read-only hooks), `runner` (order), `report` (table and JSON).
"""
