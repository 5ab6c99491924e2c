# TickOps images. One code base, three roles chosen by the command (docker-compose.yml):
#   collector  python -m runtime run          feed -> bus (+ IQConnect supervisor), /healthz on 9464
#   writer     python -m storage.writer       bus -> ClickHouse, /healthz on 9464
#   dashboard  streamlit run app.py           attached to the above (dashboard.attach), port 8501
# Targets:
#   runtime    (default, the last stage) the three roles; runtime dependencies only (requirements.txt)
#   iqconnect  runtime + wine and Xvfb, for a collector that launches IQConnect.exe itself
#              (feed.mode = "iqconnect"; README "IQConnect under wine")
# Non-root; configuration through TICKOPS_* environment variables or a mounted TICKOPS_CONFIG file.
FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TICKOPS_DATA_DIR=/var/lib/tickops TICKOPS_LOGS__DIRECTORY=/var/log/tickops

RUN useradd --create-home --uid 10001 tickops \
 && mkdir -p /var/lib/tickops /var/log/tickops && chown tickops:tickops /var/lib/tickops /var/log/tickops

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .

FROM base AS iqconnect
# IQConnect.exe is a 32-bit Windows program: wine with i386 support, and a virtual display for it.
RUN dpkg --add-architecture i386 \
 && apt-get update \
 && apt-get install -y --no-install-recommends wine wine64 wine32:i386 xvfb xauth \
 && rm -rf /var/lib/apt/lists/*
# The wine prefix (where the IQFeed client is installed once, see README) lives on the data volume.
ENV WINEPREFIX=/var/lib/tickops/wine WINEDEBUG=-all \
    TICKOPS_FEED__MODE=iqconnect TICKOPS_FEED__LAUNCH_UNDER_XVFB=true
USER tickops
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-m", "monitoring.healthcheck", "http://127.0.0.1:9464/healthz"]
CMD ["python", "-m", "runtime", "run"]

FROM base AS runtime
USER tickops
EXPOSE 8501 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "monitoring.healthcheck", "http://127.0.0.1:9464/healthz"]
CMD ["python", "-m", "runtime", "run"]
