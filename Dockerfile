# syntax=docker/dockerfile:1
#
# pgqueue-enricher worker image.
#
#   docker build -t pgqueue-enricher .
#   docker run --rm --env-file .env pgqueue-enricher migrate   # explicit step, once per release
#   docker run -d  --env-file .env pgqueue-enricher            # CMD: run (the daemon)
#
# The wheel carries its SQL and Alembic scripts as package data, so the sources are
# installed non-editable and removed: nothing at run time reads the source tree.
# Only the runtime dependencies are installed: no `dev`, `embedded` or `local` extras, so
# ENRICHER_PROVIDER=local and `demo` (embedded Postgres) are not available in this image.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged uid/gid so that bind-mounted crops (STORAGE_DIR) can be granted to it.
RUN groupadd --system --gid 10001 pgqueue \
 && useradd --system --uid 10001 --gid pgqueue --create-home --home-dir /home/pgqueue \
        --shell /usr/sbin/nologin pgqueue

WORKDIR /src

# pgqueue_enricher/_sql and _alembic are links to ../sql and ../alembic: copy all three.
COPY pyproject.toml README.md ./
COPY pgqueue_enricher/ ./pgqueue_enricher/
COPY sql/ ./sql/
COPY alembic/ ./alembic/

# Installed into site-packages, owned by root: the code cannot be modified at run time.
RUN pip install --no-cache-dir /src && rm -rf /src

WORKDIR /home/pgqueue

# Numeric, so that Kubernetes' runAsNonRoot and hosts without this passwd entry can verify it.
USER 10001:10001

# /metrics and /healthz on this port (set METRICS_PORT to move it). The health check asks
# /healthz, which is 200 only while the claim loop turns, the database answers, the listener
# hears and no provider pause holds (README, Deployment). Without a port nothing proves
# health, so the check fails rather than pass blindly.
ENV METRICS_PORT=9090
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + (os.environ.get('METRICS_PORT') or '9090') + '/healthz', timeout=4)"]

# SIGTERM: stop claiming, finish in-flight work within PASS2_SHUTDOWN_GRACE (30 s by
# default), return unfinished rows to `pending`, exit 0. Give the container longer than that
# to stop (compose: stop_grace_period; docker stop: -t 45; Railway: drainingSeconds).
STOPSIGNAL SIGTERM

ENTRYPOINT ["pgqueue-enricher"]
CMD ["run"]
