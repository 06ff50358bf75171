# The engine image used by docker-compose.yml for ingest consumers and projection workers.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY casehistory casehistory
RUN pip install --no-cache-dir . && mkdir -p /var/lib/casehistory && chown nobody /var/lib/casehistory
USER nobody
ENTRYPOINT []
