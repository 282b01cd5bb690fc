# One image for both services; docker-compose.yml picks the module to run.
# The base is an argument only so that a machine with no image registry can build on a local
# stand-in of the same image (compose/test.sh); everyone else gets the official one.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY command_service ./command_service
COPY query_service ./query_service
COPY web ./web
RUN pip install . \
 && useradd --create-home --uid 10001 app \
 && mkdir -p /var/lib/query-service \
 && chown app /var/lib/query-service

USER app
# Inside a container the services must listen beyond loopback.
ENV COMMAND_HOST=0.0.0.0 \
    QUERY_HOST=0.0.0.0 \
    QUERY_STATE_DIR=/var/lib/query-service
EXPOSE 8000 8001
CMD ["python", "-m", "command_service"]
