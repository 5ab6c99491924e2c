"""docker-compose.yml's topology run as plain processes (no Docker daemon here): the same entry points, the
same environment (translated from the compose file), against the real Kafka broker and ClickHouse server.

Translation from the compose network to this machine: service host names become 127.0.0.1 with the local
ports (each process gets its own monitoring port: in compose each has its own network address), volumes
become directories under tmp_path (the logs volume one directory all three share), ClickHouse's
``tickops`` user becomes the test server's ``default`` (18.16 here has no other), and, to share the broker
and server with other tests, the database, topic prefix, consumer group and instance ids are unique.
The image's own ENV (Dockerfile: data and log directories) is applied first, as in a container.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import msgspec
import pytest
import yaml
from playwright.sync_api import expect

from tests.conftest import CLICKHOUSE_PORT, unique_name
from tests.e2e.conftest import stop_dashboard
from tests.ports import free_port

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("collector", "writer", "dashboard")
_INTERPOLATION = re.compile(r"\$\{(\w+):?[?-][^}]*\}")


def image_env(tmp_path: Path, role: str) -> dict[str, str]:
    """The Dockerfile's ENV lines of the base stage, with its volumes' paths moved under tmp_path."""
    env = {}
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    base = text.split("\nFROM ")[1]  # the first stage, which the runtime target builds on
    for line in base.splitlines():
        if line.startswith("ENV ") and "TICKOPS_" in line:
            env.update(pair.split("=", 1) for pair in line.split()[1:] if pair.startswith("TICKOPS_"))
    return {key: value.replace("/var/lib/tickops", str(tmp_path / f"{role}-data"))
            .replace("/var/log/tickops", str(tmp_path / "logs")) for key, value in env.items()}


class Topology:
    """The compose services as local processes: ports, names and paths of this test run."""

    def __init__(self, tmp_path: Path, kafka_bootstrap: str, database: str) -> None:
        self.tmp_path = tmp_path
        self.kafka_bootstrap = kafka_bootstrap
        self.database = database
        self.prefix = unique_name("deploy")
        self.ports = {"collector": free_port(), "writer": free_port(), "dashboard": free_port()}
        self.services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    def host_url(self, url: str, inside: str | None = None) -> str:
        """http://collector:9464/... (the compose network), or http://127.0.0.1:9464/... inside the ``inside``
        service's container -> http://127.0.0.1:<that service's local port>/..."""
        for name in SERVICES:
            url = url.replace(f"http://{name}:{self.container_port(name)}", f"http://127.0.0.1:{self.ports[name]}")
        if inside is not None:
            url = url.replace(f"http://127.0.0.1:{self.container_port(inside)}/",
                              f"http://127.0.0.1:{self.ports[inside]}/")
        return url

    def container_port(self, name: str) -> str:
        if name == "dashboard":
            return self.services[name]["command"][-1]  # --server.port
        return str(self.services[name]["environment"]["TICKOPS_MONITORING__PORT"])

    def environment(self, name: str) -> dict[str, str]:
        """The service's compose environment, translated; fails on a setting this test does not know how to map."""
        translated = image_env(self.tmp_path, name)
        for key, raw in self.services[name]["environment"].items():
            value = _INTERPOLATION.sub(lambda m: f"<{m.group(1)}>", str(raw))
            if key == "TICKOPS_KAFKA__BOOTSTRAP_SERVERS":
                value = value.replace("kafka:9092", self.kafka_bootstrap)
            elif key == "TICKOPS_STORAGE__HOST":
                value = value.replace("clickhouse", "127.0.0.1")
            elif key == "TICKOPS_STORAGE__PORT":
                value = str(CLICKHOUSE_PORT)
            elif key == "TICKOPS_STORAGE__DATABASE":
                value = self.database
            elif key == "TICKOPS_STORAGE__USER":
                value = "default"
            elif key == "TICKOPS_STORAGE__PASSWORD":
                assert value == "<CLICKHOUSE_PASSWORD>"
                value = ""
            elif key == "TICKOPS_DASHBOARD__OPERATORS":
                value = "{}"  # loopback here: demo mode acts as `local`
            elif key == "TICKOPS_LOGS__DIRECTORY":
                value = str(self.tmp_path / "logs")
            elif key == "TICKOPS_MONITORING__HOST":
                value = "127.0.0.1"
            elif key == "TICKOPS_MONITORING__PORT":
                value = str(self.ports[name])
            elif key == "TICKOPS_DASHBOARD__PROCESS_ENDPOINTS":
                value = msgspec.json.encode([self.host_url(u) for u in yaml.safe_load(value)]).decode()
            elif key == "TICKOPS_INSTANCE_ID":
                value = f"{value}-{self.prefix}"
            assert "<" not in value and "kafka:" not in value, f"{name}: {key}={value} not translated"
            translated[key] = value
        translated.update({  # isolation from other tests on the shared broker, and a small feed
            "TICKOPS_KAFKA__TOPIC_PREFIX": self.prefix, "TICKOPS_KAFKA__CONSUMER_GROUP": self.prefix,
            "TICKOPS_KAFKA__PARTITIONS": "2", "TICKOPS_FEED__SYMBOLS": '["AAPL", "MSFT"]',
            "TICKOPS_FEED__SIMULATOR_RATE": "200"})
        return translated

    def command(self, name: str) -> list[str]:
        """The compose command with this interpreter and the dashboard's address and port translated."""
        command = list(self.services[name]["command"])
        if command[0] == "python":
            return [sys.executable, *command[1:]]
        assert command[:3] == ["streamlit", "run", "app.py"], command
        command = [sys.executable, "-m", *command]
        command[command.index("--server.address") + 1] = "127.0.0.1"
        command[command.index("--server.port") + 1] = str(self.ports["dashboard"])
        return command

    def healthcheck(self, name: str) -> list[str]:
        test = self.services[name]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "python"], test
        return [sys.executable, *test[2:-1], self.host_url(test[-1], inside=name)]

    def healthy(self, name: str) -> bool:
        return subprocess.run(self.healthcheck(name), cwd=ROOT, capture_output=True, timeout=30).returncode == 0

    @contextmanager
    def running(self, name: str) -> Iterator[subprocess.Popen]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("TICKOPS_")}
        env.update(self.environment(name))
        with open(self.tmp_path / f"{name}.out", "wb") as out:
            proc = subprocess.Popen(self.command(name), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            code = stop_dashboard(proc)  # SIGTERM, then SIGKILL after 30 s
            assert code is not None, f"{name} did not stop on SIGTERM"

    def output(self, name: str) -> str:
        path = self.tmp_path / f"{name}.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(not started)"


def healthz(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return msgspec.json.decode(response.read())


def wait_for(condition, timeout_s: float, what: str, topology: Topology) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout_s:g} s; outputs:\n"
                        + "\n".join(f"--- {n}\n{topology.output(n)}" for n in SERVICES))
        time.sleep(0.5)


def stored(store, table: str, where: str = "1") -> int:
    return store.query(f"SELECT count() FROM {store.table(table)} WHERE {where}")[0][0]


@pytest.mark.timeout(300)
def test_the_compose_topology_as_processes_collects_without_a_browser_and_the_attached_dashboard_shows_it(
        kafka_bootstrap, server_store, tmp_path, page):
    topology = Topology(tmp_path, kafka_bootstrap, server_store.database)
    with ExitStack() as stack:
        stack.enter_context(topology.running("collector"))
        stack.enter_context(topology.running("writer"))
        collector_url = f"http://127.0.0.1:{topology.ports['collector']}/healthz"
        writer_url = f"http://127.0.0.1:{topology.ports['writer']}/healthz"
        wait_for(lambda: topology.healthy("collector") and topology.healthy("writer"), 90,
                 "collector and writer healthy (compose's health checks)", topology)
        # No browser has opened anything: the collector collects and the writer stores on their own.
        wait_for(lambda: stored(server_store, "trades") > 50, 60, "trades stored", topology)
        wait_for(lambda: healthz(collector_url)["status"] == "ok" and healthz(writer_url)["status"] == "ok", 60,
                 "both /healthz ok", topology)
        collector, writer = healthz(collector_url)["details"], healthz(writer_url)["details"]
        assert collector["role"] == "collector" and "stored" not in collector, "the collector runs no writer"
        assert writer["role"] == "writer" and writer["stored"] > 50
        source = collector["source"]
        assert stored(server_store, "trades", f"source = '{source}'") == stored(server_store, "trades")

        dashboard = stack.enter_context(topology.running("dashboard"))
        wait_for(lambda: topology.healthy("dashboard"), 90, "dashboard healthy (/_stcore/health)", topology)
        page.goto(f"http://127.0.0.1:{topology.ports['dashboard']}")
        expect(page.get_by_role("heading", name="TickOps")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Attached dashboard")).to_be_visible(timeout=30_000)
        processes = page.get_by_test_id("stDataFrame").first
        expect(processes).to_contain_text(f"127.0.0.1:{topology.ports['collector']}", timeout=30_000)
        expect(processes).to_contain_text(f"127.0.0.1:{topology.ports['writer']}")
        expect(processes).to_contain_text(source)
        expect(page.get_by_test_id("stDataFrame").nth(1)).to_contain_text("trades", timeout=30_000)
        expect(page.get_by_role("link", name="Latency")).to_have_count(0)  # needs a pipeline in this process

        # An operator action goes through storage to the collector, which watches the symbol.
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_label("Start symbol").fill("NVDA")
        sidebar.get_by_role("button", name="Start").click()
        wait_for(lambda: stored(server_store, "trades", "symbol = 'NVDA'") > 0, 60, "NVDA trades stored", topology)

        # The shared log location: every process's file, read by the dashboard's Logs page.
        page.get_by_role("link", name="Logs").click()
        expect(page.get_by_role("heading", name="Logs")).to_be_visible(timeout=30_000)
        page.get_by_label("Text contains").fill("process started")
        page.get_by_label("Text contains").press("Enter")
        lines = page.get_by_test_id("stDataFrame").first
        expect(lines).to_contain_text("writer process started", timeout=30_000)
        expect(lines).to_contain_text("writer-1")  # the process, from its file's name
        expect(page.get_by_test_id("stException")).to_have_count(0)
        assert dashboard.poll() is None
    logs = {path.name.split("-")[0] for path in (tmp_path / "logs").glob("*.log")}
    assert logs == {"collector", "writer", "dashboard"}
    dashboard_log = next((tmp_path / "logs").glob("dashboard-*.log")).read_text()
    assert "dashboard attached" in dashboard_log and "engine started" not in dashboard_log, \
        "the attached dashboard starts no engine"
    assert not list((tmp_path / "dashboard-data").glob("spool*")), "nor a spool"
