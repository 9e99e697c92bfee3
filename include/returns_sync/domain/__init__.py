"""Pure domain logic: no Airflow, no HTTP. Clients and the state store are passed in."""
