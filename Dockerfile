# sdcord: a gateway (`sdcord`, the default) or a worker (`sdcord worker`) from one image.
# Build: docker build -t sdcord .    Run: see compose.yaml and the README's "Docker" section.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SDCORD_DATA_DIR=/data \
    METRICS_HOST=127.0.0.1 \
    METRICS_PORT=9100

WORKDIR /app
# The dependencies come from pyproject.toml (the project is the one place they are declared and bounded).
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin sdcord \
    && mkdir -p /data && chown sdcord /data

USER sdcord
VOLUME ["/data"]

# Cheap and real: the process answers on its metrics port (its event loop is alive), without asking
# Discord or the WebUIs anything (that is what `sdcord doctor` is for).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['METRICS_PORT']}/metrics\", timeout=4)"]

ENTRYPOINT ["sdcord"]
CMD ["run"]
