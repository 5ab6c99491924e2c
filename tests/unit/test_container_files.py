"""No Docker engine runs here, so the container files are checked for structure instead."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_app_kafka_and_clickhouse_with_health_checks():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"app", "kafka", "clickhouse"}
    assert services["kafka"]["image"].startswith("apache/kafka:4.1")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    for name, service in services.items():
        assert service["healthcheck"]["test"], f"{name} has no health check"
    app = services["app"]
    assert app["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "clickhouse": {"condition": "service_healthy"},
    }
    assert app["user"] != "root" and app["user"] != "0"
    assert app["environment"]["TICKOPS_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert app["environment"]["TICKOPS_STORAGE__BACKEND"] == "server"


def test_dockerfile_installs_requirements_runs_as_non_root_and_checks_health():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [line.split()[0] for line in lines if line and not line.startswith("#") and line.split()[0].isupper()]
    assert instructions[0] == "FROM"
    assert "RUN pip install -r requirements.txt" in lines
    user_lines = [line for line in lines if line.startswith("USER ")]
    assert user_lines and user_lines[-1] not in ("USER root", "USER 0")
    assert instructions.index("USER") < instructions.index("CMD")
    assert "HEALTHCHECK" in instructions
    assert any("_stcore/health" in line for line in lines)
