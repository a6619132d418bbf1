# b24sync: the sync service (API, dashboard, worker, scheduler) in one image.
# Build: docker build -t b24sync .    Run with docker-compose.yml (PostgreSQL + service + worker).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    B24SYNC_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
RUN pip install . && useradd --create-home --uid 10001 b24sync \
    && mkdir -p /data && chown b24sync /data

USER b24sync
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"

# serve migrates the service tables, then runs the API, the dashboard and one worker.
CMD ["b24sync", "serve", "--host", "0.0.0.0", "--port", "8080"]
