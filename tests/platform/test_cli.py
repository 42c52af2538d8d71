"""The `marketpulse` command: every command takes --config, --help lists them by room and shows the
choices of each option, `--version` and shell completion exist, and `settings --check` validates."""
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from marketpulse.cli import app

runner = CliRunner()


def leaf_commands():
    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield " ".join(path), cmd

    return list(walk(get_command(app), []))


def test_every_command_takes_a_config_file():
    commands = leaf_commands()
    assert len(commands) >= 15
    missing = [name for name, cmd in commands if "--config" not in {o for p in cmd.params for o in p.opts}]
    assert not missing


def test_help_groups_the_commands_by_room():
    out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "160"}).output
    headings = ["General", "Models", "Stream: ingest and label", "Consumers: index, alert, replay, detect", "Dashboards"]
    positions = [out.index(h) for h in headings]
    assert positions == sorted(positions)
    assert out.index("worker") > out.index("Stream: ingest") and out.index("alerter") > out.index("Consumers:")


def test_version_comes_from_the_package_metadata():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"marketpulse {version('marketpulse')}\n"


def test_shell_completion_can_be_installed():
    out = runner.invoke(app, ["--help"], env={"COLUMNS": "160"}).output
    assert "--install-completion" in out and "--show-completion" in out


@pytest.mark.parametrize(("command", "choices"), [
    (["replay"], ["es|kafka", "model|tfidf"]),
    (["discover-topics"], ["model|tfidf"]),
    (["detect"], ["auto|sum|mean"]),
])
def test_the_help_of_a_command_lists_the_choices_of_its_options(command, choices):
    out = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
    for listed in choices:
        assert listed in out


def test_a_value_outside_the_choices_is_one_line_naming_them():
    result = runner.invoke(app, ["replay", "--from", "2024-01-01", "--to", "2024-01-02", "--source", "s3"],
                           prog_name="marketpulse")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: Invalid value for '--source'") and "'es', 'kafka'" in line
    assert line.endswith("(see 'marketpulse replay --help')")




def test_settings_check_says_ok_for_valid_settings(no_settings_from_outside: Path):
    cfg = no_settings_from_outside / "config.yaml"
    cfg.write_text("alerts:\n  threshold: 4\n")
    result = runner.invoke(app, ["settings", "--check", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"settings OK (config file {cfg})\n"


def test_settings_check_lists_every_problem_one_per_line_and_exits_2(no_settings_from_outside: Path):
    cfg = no_settings_from_outside / "config.yaml"
    cfg.write_text("kafka:\n  bootstrapp: x\n")
    result = runner.invoke(app, ["settings", "--check", "--config", str(cfg)],
                           env={"MARKETPULSE_ALERTS__THRESHOLDD": "4"})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: environment: unknown variable MARKETPULSE_ALERTS__THRESHOLDD "
        "(did you mean MARKETPULSE_ALERTS__THRESHOLD?)",
        f"error: {cfg}: unknown key 'kafka.bootstrapp' (did you mean 'kafka.bootstrap'?)"]


def test_settings_check_reports_invalid_values_in_one_line(no_settings_from_outside: Path):
    cfg = no_settings_from_outside / "config.yaml"
    cfg.write_text("alerts:\n  threshold: 1\n  clear_threshold: 2\nbatch:\n  max_size: 0\n")
    result = runner.invoke(app, ["settings", "--check", "--config", str(cfg)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: invalid settings: batch.max_size: Input should be greater than or equal to 1; "
        "alerts: need clear_threshold < threshold <= critical_threshold (got 2, 1, 8)"]


def test_settings_without_check_prints_the_effective_settings_with_secrets_masked(no_settings_from_outside: Path):
    result = runner.invoke(app, ["settings"], env={"MARKETPULSE_ELASTICSEARCH__PASSWORD": "hunter2"})
    assert result.exit_code == 0, result.output
    assert '"bootstrap": "127.0.0.1:9092"' in result.stdout
    assert "hunter2" not in result.stdout and '"password": "**********"' in result.stdout
