# cio-sync as a one-shot container:
#   docker build -t cio-sync .
#   docker run --rm --user "$(id -u):$(id -g)" -e CIO_SITE_ID -e CIO_API_KEY -v "$PWD:/data" cio-sync \
#     --config /data/configuration.json --data /data/data.json
# The exit code of `docker run` is cio-sync's own (see docs/command.md, "Exit codes").

# Build stage: turn the checkout into a wheel. Nothing from here reaches the final image but it.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cio_sync ./cio_sync
COPY schemas ./schemas
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Final stage: the wheel and its dependencies in a virtual environment; no compiler, no caches.
FROM python:3.12-slim
COPY --from=build /wheels /wheels
RUN python -m venv /opt/cio-sync \
    && /opt/cio-sync/bin/pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --gid 10001 cio-sync \
    && useradd --create-home --uid 10001 --gid 10001 cio-sync
ENV PATH=/opt/cio-sync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric, non-root user: resolvable whatever the host's /etc/passwd says.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# Exec form: cio-sync is PID 1 and receives SIGTERM from `docker stop` itself.
ENTRYPOINT ["cio-sync"]
CMD ["--help"]
