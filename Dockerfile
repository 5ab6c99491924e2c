# TickOps dashboard + embedded engine. Non-root; configuration through TICKOPS_* env vars.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    TICKOPS_DATA_DIR=/var/lib/tickops

RUN useradd --create-home --uid 10001 tickops \
 && mkdir -p /var/lib/tickops && chown tickops:tickops /var/lib/tickops

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .

USER tickops
EXPOSE 8501
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"
CMD ["streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "8501", \
     "--server.headless", "true", "--browser.gatherUsageStats", "false"]
