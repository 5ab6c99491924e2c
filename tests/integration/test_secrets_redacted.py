"""Secrets stay secret: a real run configured with known secret values never shows one.

Every secret-bearing setting gets a distinctive value; then a headless engine (simulator
feed, in-process bus, chDB) runs with the root logger at DEBUG, /metrics and /healthz are
scraped, the settings are dumped, and the writer process (``python -m storage.writer``)
starts with the same secrets in its environment. No secret may appear anywhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from config import load_settings
from monitoring.logs import JsonFormatter
from runtime.engine import Engine
from runtime.metrics import start_monitoring
from tests.conftest import unique_name
from tests.ports import free_port
from tests.integration.pipeline import delete_topics, wait_until
from tests.log_capture import root_logging

REPO = Path(__file__).resolve().parents[2]

FEED_LOGIN = "feedlogin-3b7c91"
FEED_PASSWORD = "feedpass-8d21e4"
STORAGE_PASSWORD = "chpass-5a0f6e"
SMTP_PASSWORD = "smtppass-c4d9b2"
WEBHOOK_TOKEN = "hooktoken-T0K3N-77e1"
WEBHOOK_PASSWORD = "hookpass-1f8a3c"  # credentials inside the URL itself
OPERATOR_DIGEST = hashlib.sha256(b"operator-pw-92ab").hexdigest()
SECRETS = (FEED_LOGIN, FEED_PASSWORD, STORAGE_PASSWORD, SMTP_PASSWORD, WEBHOOK_TOKEN, WEBHOOK_PASSWORD,
           OPERATOR_DIGEST)


def _secret_env(closed_port: int) -> dict[str, str]:
    """Every secret-bearing setting, as an operator would pass it: through the environment."""
    return {
        "TICKOPS_FEED__LOGIN": FEED_LOGIN,
        "TICKOPS_FEED__PASSWORD": FEED_PASSWORD,
        "TICKOPS_STORAGE__PASSWORD": STORAGE_PASSWORD,
        "TICKOPS_NOTIFY__WEBHOOK_URL": f"http://alerts:{WEBHOOK_PASSWORD}@127.0.0.1:{closed_port}/hook/{WEBHOOK_TOKEN}",
        "TICKOPS_NOTIFY__SMTP_HOST": "127.0.0.1",
        "TICKOPS_NOTIFY__SMTP_PORT": str(closed_port),
        "TICKOPS_NOTIFY__SMTP_USERNAME": "tickops",
        "TICKOPS_NOTIFY__SMTP_PASSWORD": SMTP_PASSWORD,
        "TICKOPS_NOTIFY__EMAIL_TO": '["ops@example.com"]',
        "TICKOPS_DASHBOARD__OPERATORS": f'{{"anna": {{"role": "operator", "password_sha256": "{OPERATOR_DIGEST}"}}}}',
    }


def _leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


class _Everything(logging.Handler):
    """Keeps each record as the JSON line our formatter writes plus every attribute of the record,
    so a secret passed in ``extra``, in ``args`` or in an exception is caught wherever it hides."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + " " + repr(vars(record)))


@pytest.fixture
def all_logs_at_debug():
    with root_logging(_Everything(), logging.DEBUG) as handler:
        yield handler


@pytest.mark.timeout(120)
def test_engine_run_logs_metrics_and_dumps_show_no_secret(monkeypatch, chdb_store, tmp_path, all_logs_at_debug):
    for name, value in _secret_env(free_port()).items():
        monkeypatch.setenv(name, value)
    settings = load_settings(data_dir=tmp_path, feed={"symbols": ["AAPL", "MSFT"], "simulator_rate": 200},
                             storage={"database": chdb_store.database}, monitoring={"port": 0})
    assert settings.feed.password.get_secret_value() == FEED_PASSWORD, "the secrets were not configured"
    engine = Engine(settings, store=chdb_store).start()
    server = start_monitoring(engine.status, "127.0.0.1", 0)
    assert server is not None
    scraped = []
    try:
        wait_until(lambda: engine.status().ingested > 50, 30, "events ingested")
        base = f"http://127.0.0.1:{server.port}"
        scraped.append(urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode())
        try:
            scraped.append(urllib.request.urlopen(f"{base}/healthz", timeout=5).read().decode())
        except urllib.error.HTTPError as answer:  # a 503 body is still an answer to check
            scraped.append(answer.read().decode())
        time.sleep(1.5)  # a few job runs and an alert pass with everything logged at DEBUG
    finally:
        engine.stop(drain_timeout_s=5)
        server.stop()
    logs = "\n".join(all_logs_at_debug.lines)
    assert "engine started" in logs and "tickops_events_ingested_total" in scraped[0]
    dumps = [repr(settings), str(settings), str(settings.redacted()), settings.model_dump_json()]
    for where, text in (("logs", logs), ("/metrics and /healthz", "\n".join(scraped)), ("dumps", "\n".join(dumps))):
        assert not _leaked(text), f"secrets {_leaked(text)} appear in the {where}"


@pytest.mark.timeout(120)
def test_writer_process_logs_show_no_secret(kafka_bootstrap, tmp_path):
    prefix = unique_name("secrets")
    env = {name: value for name, value in os.environ.items() if not name.startswith("TICKOPS_")}
    env.update(_secret_env(free_port()))
    env.update({
        "TICKOPS_LOG_LEVEL": "DEBUG", "TICKOPS_DATA_DIR": str(tmp_path),
        "TICKOPS_BUS__KIND": "kafka", "TICKOPS_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TICKOPS_KAFKA__TOPIC_PREFIX": prefix, "TICKOPS_KAFKA__CONSUMER_GROUP": prefix,
        "TICKOPS_KAFKA__PARTITIONS": "1",
    })
    logs = tmp_path / "writer.log"
    try:
        with open(logs, "wb") as out:
            writer = subprocess.Popen([sys.executable, "-m", "storage.writer"], cwd=REPO, env=env,
                                      stdout=out, stderr=subprocess.STDOUT)
            try:
                wait_until(lambda: "writer process started" in logs.read_text(errors="replace"), 90,
                           "the writer process to start")
                time.sleep(1.0)
            finally:
                writer.send_signal(signal.SIGTERM)
                code = writer.wait(30)
        text = logs.read_text(errors="replace")
        assert code == 0, text[-3000:]
        assert not _leaked(text), f"secrets {_leaked(text)} appear in the writer's log"
    finally:
        delete_topics(kafka_bootstrap, prefix)
