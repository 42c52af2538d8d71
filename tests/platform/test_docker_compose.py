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


# -- hardening -------------------------------------------------------------------------------------
LONG_RUNNING = [name for name, svc in COMPOSE["services"].items() if "tools" not in svc.get("profiles", [])]


@pytest.mark.parametrize("service", sorted(COMPOSE["services"]))
def test_published_ports_listen_on_the_loopback_interface_only(service):
    for port in COMPOSE["services"][service].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{service} publishes {port} on every interface"


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_long_running_services_restart_unless_stopped(service):
    assert COMPOSE["services"][service].get("restart") == "unless-stopped"


def test_no_password_or_key_is_written_in_the_compose_file():
    # Every secret is interpolated from .env, and compose refuses to start without it (":?").
    es = COMPOSE["services"]["elasticsearch"]["environment"]
    assert es["xpack.security.enabled"] == "true"
    secrets = {
        "ELASTIC_PASSWORD": es["ELASTIC_PASSWORD"],
        "GF_SECURITY_ADMIN_PASSWORD": COMPOSE["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"],
        **{k: v for k, v in COMPOSE["services"]["worker"]["environment"].items()
           if k.endswith(("PASSWORD", "PSEUDONYM_KEY", "WEBHOOK_SECRET"))},
    }
    assert len(secrets) == 5
    for name, value in secrets.items():
        assert str(value).startswith("${") and ":?" in str(value), f"{name} = {value!r}"
    example = (REPO / ".env.example").read_text()
    for var in ("ELASTIC_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "MARKETPULSE_PSEUDONYM_KEY", "MARKETPULSE_WEBHOOK_SECRET"):
        assert f"\n{var}=\n" in example
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_the_grafana_datasources_authenticate_to_elasticsearch():
    ds = yaml.safe_load((REPO / "dashboards/provisioning/datasources/elasticsearch.yaml").read_text())["datasources"]
    for d in ds:
        assert d["basicAuth"] is True and d["basicAuthUser"] == "elastic"
        assert d["secureJsonData"]["basicAuthPassword"] == "$ELASTIC_PASSWORD"
    assert "ELASTIC_PASSWORD" in COMPOSE["services"]["grafana"]["environment"]


def test_the_image_runs_as_an_unprivileged_user():
    lines = [ln.strip() for ln in (REPO / "Dockerfile").read_text().splitlines()]
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
