"""docker-compose.yml (not runnable here: no Docker engine) must agree with the code it starts."""
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from marketpulse.cli import app
from marketpulse.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
MP_SERVICES = ["worker", "es-sink", "alerter", "generator"]


def test_stack_services_are_declared():
    assert {"kafka", "elasticsearch", "grafana", *MP_SERVICES} <= set(COMPOSE["services"])
    assert COMPOSE["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert COMPOSE["services"]["elasticsearch"]["image"].split(":")[-1].startswith("8.")


@pytest.mark.parametrize("service", MP_SERVICES)
def test_marketpulse_services_run_real_cli_commands(service):
    cmd = COMPOSE["services"][service]["command"]
    assert cmd[0] == "marketpulse"
    assert cmd[1] in get_command(app).commands, f"`marketpulse {cmd[1]}` does not exist"


@pytest.mark.parametrize("service", MP_SERVICES)
def test_every_env_var_maps_to_a_setting(service, monkeypatch):
    env = COMPOSE["services"][service]["environment"]
    for name, value in env.items():
        assert name.startswith("MARKETPULSE_")
        monkeypatch.setenv(name, str(value))
    s = Settings()
    assert s.kafka.bootstrap == env["MARKETPULSE_KAFKA__BOOTSTRAP"]
    assert s.elasticsearch.url == env["MARKETPULSE_ELASTICSEARCH__URL"]
    assert s.metrics_port == int(env["MARKETPULSE_METRICS_PORT"])
    assert s.metrics_host == env["MARKETPULSE_METRICS_HOST"]


def test_grafana_mounts_the_repo_provisioning():
    for vol in COMPOSE["services"]["grafana"]["volumes"]:
        src = vol.split(":")[0]
        assert (REPO / src).exists(), src


@pytest.mark.skipif(shutil.which("docker") is None or subprocess.run(
    ["docker", "compose", "version"], capture_output=True).returncode != 0, reason="docker compose not installed")
def test_docker_compose_config_parses():
    subprocess.run(["docker", "compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"], check=True)
