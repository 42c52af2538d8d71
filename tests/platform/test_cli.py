"""The `marketpulse` command: every command takes --config, and --help lists them by room."""
from typer.main import get_command
from typer.testing import CliRunner

from marketpulse.cli import app


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
