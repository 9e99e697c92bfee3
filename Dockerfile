# returns-sync on the official Apache Airflow image.
#
#   docker build -t returns-sync:0.1.0 .
#
# One image for every component (api-server, scheduler, dag-processor, triggerer, Celery
# workers): docker-compose.yaml runs it, and so can any Airflow deployment that takes a custom
# image (Helm chart, ECS, ...). Nothing secret goes in here: connections, keys and passwords
# come from the environment at run time (see .env.example and docs/OPERATIONS.md).
FROM apache/airflow:3.3.2-python3.11

# The image's own non-root user `airflow` (uid 50000, group 0); pip installs into its environment.
USER 50000
WORKDIR /opt/airflow

# Runtime requirements only: requirements.txt lists test and lint tools after the line
# "# tests and tooling", which stay out of the image. apache-airflow is pinned to the image's
# version there, so pip cannot move Airflow itself; constraints.txt freezes everything else.
# The second install registers our Airflow provider (the Loop and Whiplash connection forms)
# from pyproject.toml; the code itself is imported from /opt/airflow (PYTHONPATH below).
COPY --chown=50000:0 requirements.txt constraints.txt pyproject.toml /tmp/returns-sync/
RUN sed '/^# tests and tooling/,$d' /tmp/returns-sync/requirements.txt \
        > /tmp/returns-sync/runtime-requirements.txt \
    && pip install --no-cache-dir \
        -r /tmp/returns-sync/runtime-requirements.txt -c /tmp/returns-sync/constraints.txt \
    && pip install --no-cache-dir --no-deps /tmp/returns-sync \
    && rm -rf /tmp/returns-sync

# The project root is on sys.path, as in Astro projects: `import include.returns_sync...`.
ENV PYTHONPATH=/opt/airflow \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True

COPY --chown=50000:0 include/ /opt/airflow/include/
COPY --chown=50000:0 plugins/ /opt/airflow/plugins/
COPY --chown=50000:0 dags/ /opt/airflow/dags/

# Run reports and (without PostgreSQL) the SQLite state store live here; created now so that a
# volume mounted on it starts out owned by the airflow user.
RUN mkdir -p /opt/airflow/returns_sync/reports
