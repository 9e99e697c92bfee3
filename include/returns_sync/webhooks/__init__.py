"""Webhook intake: Loop `label` and Whiplash `consumer_return.*` deliveries (PRODUCT.md section 4).

Modules, from the wire inwards: `signatures` (HMAC checks on the raw body), `payloads` (typed
events, dedup keys, which events start work), `secrets` (signing secrets from the Airflow
connections), `app` (the FastAPI app the plugin mounts in the API server), `inbox` (storing
events and the signal the triggerer watches), `triggers` + `assets` (Airflow's event-driven
scheduling), `drain` (DAG runs claim and finish inbox events) and `register` (the CLI that
subscribes our endpoints with both vendors).

This package imports nothing at import time, so DAG files can import `assets` cheaply.
"""
