"""No Docker engine runs here, so the deployment files are checked for structure instead: the compose
topology (services, health checks, volumes, environment, pinned images), the Dockerfile targets, the
split requirements and the systemd units (with ``systemd-analyze verify`` where it exists)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config import load_settings

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
TICKOPS = ("collector", "writer", "dashboard")
PINNED = re.compile(r"^[\w./-]+:\d+(\.\d+){2,}$")  # name:MAJOR.MINOR.PATCH[.BUILD], never a floating tag
_INTERPOLATION = re.compile(r"\$\{(\w+):?[?-][^}]*\}")


def compose(name: str = "docker-compose.yml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def environment(service: dict) -> dict[str, str]:
    """The service's environment with compose's ``${NAME:?...}`` interpolations replaced by ``<NAME>``."""
    return {key: _INTERPOLATION.sub(lambda m: f"<{m.group(1)}>", str(value))
            for key, value in service["environment"].items()}


def healthcheck_url(service: dict) -> str:
    test = service["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "-m", "monitoring.healthcheck"], test
    return test[4]


def volume_targets(service: dict) -> dict[str, str]:
    """container path -> named volume."""
    return {spec.split(":")[1]: spec.split(":")[0] for spec in service.get("volumes", [])}


def test_compose_runs_collector_writer_and_dashboard_as_their_own_services_with_health_checks():
    services = compose()["services"]
    assert set(services) == {"kafka", "clickhouse", *TICKOPS}
    assert services["collector"]["command"] == ["python", "-m", "runtime", "run"]
    assert services["writer"]["command"] == ["python", "-m", "storage.writer"]
    assert services["dashboard"]["command"][:3] == ["streamlit", "run", "app.py"]
    for name, service in services.items():
        assert service["healthcheck"]["test"], f"{name} has no health check"
        assert service["restart"] == "unless-stopped", name
    for name in ("collector", "writer"):
        env = environment(services[name])
        port = env["TICKOPS_MONITORING__PORT"]
        assert healthcheck_url(services[name]) == f"http://127.0.0.1:{port}/healthz"
        assert env["TICKOPS_MONITORING__HOST"] == "0.0.0.0", f"{name}: the dashboard polls it over the network"
        assert services[name]["depends_on"] == {"kafka": {"condition": "service_healthy"},
                                                "clickhouse": {"condition": "service_healthy"}}
    assert healthcheck_url(services["dashboard"]) == "http://127.0.0.1:8501/_stcore/health"
    for name in TICKOPS:
        assert services[name]["user"] not in ("root", "0"), name
        assert services[name]["build"]["target"] == "runtime", name


def test_collection_does_not_wait_for_a_browser_the_dashboard_is_attached_and_the_collector_stores_nothing_itself():
    services = compose()["services"]
    collector, dashboard = environment(services["collector"]), environment(services["dashboard"])
    assert collector["TICKOPS_STORAGE__EMBEDDED_WRITER"] == "false"
    assert dashboard["TICKOPS_DASHBOARD__ATTACH"] == "true"
    endpoints = yaml.safe_load(dashboard["TICKOPS_DASHBOARD__PROCESS_ENDPOINTS"])
    assert endpoints == [f"http://{name}:{environment(services[name])['TICKOPS_MONITORING__PORT']}"
                         for name in ("collector", "writer")]
    for name in TICKOPS:
        env = environment(services[name])
        assert env["TICKOPS_BUS__KIND"] == "kafka" and env["TICKOPS_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["TICKOPS_STORAGE__BACKEND"] == "server" and env["TICKOPS_STORAGE__HOST"] == "clickhouse"


def test_clickhouse_has_a_networked_user_and_every_tickops_service_logs_in_as_it():
    services = compose()["services"]
    clickhouse = environment(services["clickhouse"])
    assert clickhouse["CLICKHOUSE_USER"] and clickhouse["CLICKHOUSE_USER"] != "default"
    assert clickhouse["CLICKHOUSE_PASSWORD"] == "<CLICKHOUSE_PASSWORD>", "a secret from .env, never in the file"
    for name in TICKOPS:
        env = environment(services[name])
        assert env["TICKOPS_STORAGE__USER"] == clickhouse["CLICKHOUSE_USER"], name
        assert env["TICKOPS_STORAGE__PASSWORD"] == clickhouse["CLICKHOUSE_PASSWORD"], name
        assert env["TICKOPS_STORAGE__DATABASE"] == clickhouse["CLICKHOUSE_DB"], name
    assert "<TICKOPS_OPERATORS>" == environment(services["dashboard"])["TICKOPS_DASHBOARD__OPERATORS"]


def test_data_lives_in_named_volumes_and_logs_in_one_volume_every_tickops_service_shares():
    document = compose()
    services = document["services"]
    kafka = environment(services["kafka"])
    assert volume_targets(services["kafka"]).get(kafka["KAFKA_LOG_DIRS"]) == "kafka-data"
    assert volume_targets(services["clickhouse"])["/var/lib/clickhouse"] == "clickhouse-data"
    assert volume_targets(services["collector"])["/var/lib/tickops"] == "collector-data"  # spool and backup
    for name in TICKOPS:
        log_dir = environment(services[name])["TICKOPS_LOGS__DIRECTORY"]
        assert volume_targets(services[name]).get(log_dir) == "logs", name
    named = {volume for service in services.values() for volume in volume_targets(service).values()}
    assert named <= set(document["volumes"]), "every volume a service mounts is declared"


def test_images_are_pinned_to_a_full_version():
    services = compose()["services"]
    assert PINNED.match(services["kafka"]["image"]) and services["kafka"]["image"].startswith("apache/kafka:")
    assert PINNED.match(services["clickhouse"]["image"])
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")


def test_every_tickops_service_environment_is_valid_configuration(monkeypatch):
    """What compose hands each service loads as TickOps settings (secrets stand in for .env)."""
    for service in compose()["services"].values():
        env = environment(service)
        if "TICKOPS_BUS__KIND" not in env:
            continue
        for key, value in env.items():
            monkeypatch.setenv(key, value.replace("<TICKOPS_OPERATORS>", "{}"))
        settings = load_settings()
        assert settings.bus.kind == "kafka" and settings.storage.backend == "server"
        for key in env:
            monkeypatch.delenv(key)


def test_the_iqconnect_override_builds_the_wine_target_and_gives_the_login_only_from_the_environment(monkeypatch):
    collector = compose("docker-compose.iqconnect.yml")["services"]["collector"]
    assert collector["build"]["target"] == "iqconnect"
    env = environment(collector)
    assert env["TICKOPS_FEED__MODE"] == "iqconnect" and env["TICKOPS_FEED__LAUNCH_UNDER_XVFB"] == "true"
    assert env["TICKOPS_FEED__LOGIN"] == "<IQFEED_LOGIN>" and env["TICKOPS_FEED__PASSWORD"] == "<IQFEED_PASSWORD>"
    from collectors.iqfeed.iqconnect import IQConnectSupervisor

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    command = IQConnectSupervisor(load_settings().feed).command
    assert command[:4] == ["xvfb-run", "-a", "wine", "/var/lib/tickops/wine/drive_c/Program Files/DTN/IQFeed/iqconnect.exe"]
    assert command[command.index("-password") + 1] == "<IQFEED_PASSWORD>"


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            current = stages.setdefault(line.split()[-1], [])
        current.append(" ".join(line.split()))
    return stages


def test_dockerfile_targets_install_runtime_requirements_only_run_as_non_root_and_check_health():
    stages = dockerfile_stages()
    assert list(stages) == ["base", "iqconnect", "runtime"], "runtime is the last stage: a plain build gets it"
    base = stages["base"]
    assert "RUN pip install -r requirements.txt" in base
    assert not any("requirements-dev" in line or "pytest" in line for stage in stages.values() for line in stage)
    for name in ("iqconnect", "runtime"):
        lines = stages[name]
        users = [line for line in lines if line.startswith("USER ")]
        assert users and users[-1] not in ("USER root", "USER 0"), name
        assert any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in lines), name
        assert lines[-1] == 'CMD ["python", "-m", "runtime", "run"]', name
    install = next(line for line in stages["iqconnect"] if "apt-get install" in line)
    assert {"wine", "xvfb", "xauth"} <= set(install.split())
    assert "TICKOPS_FEED__LAUNCH_UNDER_XVFB=true" in " ".join(stages["iqconnect"])


def _requirement_names(path: Path) -> set[str]:
    return {line.split("==")[0].strip().lower() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-r"))}


def _imported_top_modules(files: list[Path]) -> set[str]:
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def test_runtime_requirements_hold_no_test_tool_and_runtime_code_imports_none():
    runtime, dev = _requirement_names(ROOT / "requirements.txt"), _requirement_names(ROOT / "requirements-dev.txt")
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    assert {"pytest", "hypothesis", "playwright", "pyyaml", "aiosmtpd", "pytest-timeout"} <= dev
    assert not runtime & dev, f"test tools in the runtime requirements: {runtime & dev}"
    code = [p for p in ROOT.rglob("*.py") if not {"tests", "bench", ".venv", "data"} & set(p.relative_to(ROOT).parts)]
    imported = _imported_top_modules(code)
    test_only = {"pytest", "hypothesis", "playwright", "yaml", "aiosmtpd"}
    assert not imported & test_only, f"runtime code imports test tools: {imported & test_only}"


def test_dockerignore_keeps_local_configuration_data_and_history_out_of_the_image():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", "data", ".services", "tickops.toml", ".git", ".env", "tests"} <= ignored


def test_streamlit_file_watcher_is_off_unless_development_turns_it_on():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"
    assert {"data", ".services", ".venv"} <= set(config["server"]["folderWatchBlacklist"])
    makefile = (ROOT / "Makefile").read_text()
    run = makefile.split("\nrun:")[1].split("\n\n")[0]
    dev = makefile.split("\ndev:")[1].split("\n\n")[0]
    assert "fileWatcherType" not in run and "--server.fileWatcherType auto" in dev
    assert "\ntest: install-dev" in makefile and "\nrun: install" in makefile
    assert "-r requirements-dev.txt" in makefile.split("$(VENV)/.installed-dev:")[1].split("\n\n")[0]


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as section -> key -> values (a key may repeat, e.g. Environment)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert current is not None and key, f"{path.name}: {raw!r} outside a section"
        current.setdefault(key, []).append(value)
    return sections


def unit_environment(sections: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    return dict(value.strip("'").split("=", 1) for value in sections["Service"].get("Environment", []))


@pytest.mark.parametrize(("role", "entrypoint", "port"), [
    ("collector", "/opt/tickops/.venv/bin/python -m runtime run", "9464"),
    ("writer", "/opt/tickops/.venv/bin/python -m storage.writer", "9465"),
    ("dashboard", "/opt/tickops/.venv/bin/streamlit run app.py --server.address 127.0.0.1 --server.port 8501", None),
])
def test_systemd_units_run_each_role_as_a_restarted_non_root_service(role, entrypoint, port):
    sections = unit(UNITS / f"tickops-{role}.service")
    service = sections["Service"]
    assert service["ExecStart"] == [entrypoint]
    assert service["User"] == ["tickops"] and service["Restart"] == ["on-failure"]
    assert service["EnvironmentFile"] == ["/etc/tickops/tickops.env"]
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
    env = unit_environment(sections)
    if port is not None:
        assert env["TICKOPS_MONITORING__PORT"] == port
        check = unit(UNITS / "tickops-healthcheck@.service")["Service"]["ExecStart"][0]
        assert f"{role}) port={port}" in check and "monitoring.healthcheck" in check
    else:
        assert env["TICKOPS_DASHBOARD__ATTACH"] == "true"
        assert yaml.safe_load(env["TICKOPS_DASHBOARD__PROCESS_ENDPOINTS"]) == [
            "http://127.0.0.1:9464", "http://127.0.0.1:9465"]


def test_systemd_shared_environment_matches_the_compose_topology():
    shared = dict(line.split("=", 1) for line in (UNITS / "tickops.env.example").read_text().splitlines()
                  if line and not line.startswith("#"))
    compose_env = environment(compose()["services"]["collector"])
    same = {"TICKOPS_BUS__KIND", "TICKOPS_STORAGE__BACKEND", "TICKOPS_STORAGE__EMBEDDED_WRITER",
            "TICKOPS_STORAGE__DATABASE", "TICKOPS_STORAGE__USER", "TICKOPS_LOGS__DIRECTORY"}
    assert {key: shared[key] for key in same} == {key: compose_env[key] for key in same}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_accepts_the_units(tmp_path):
    """systemd's own parser, with /opt/tickops pointed at this checkout so the executables exist."""
    venv_bin = str(Path(sys.executable).parent)
    for path in UNITS.glob("tickops-*"):
        text = path.read_text().replace("/opt/tickops/.venv/bin", venv_bin).replace("/opt/tickops", str(ROOT))
        name = path.name.replace("@.", "@collector.")
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.skipif(subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0
                    if shutil.which("docker") else True, reason="docker compose not installed")
def test_docker_compose_config_accepts_both_files(tmp_path):
    env = {"CLICKHOUSE_PASSWORD": "x", "TICKOPS_OPERATORS": "{}", "IQFEED_PRODUCT_ID": "P", "IQFEED_LOGIN": "l",
           "IQFEED_PASSWORD": "p", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    result = subprocess.run(["docker", "compose", "-f", "docker-compose.yml", "-f", "docker-compose.iqconnect.yml",
                             "config", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
