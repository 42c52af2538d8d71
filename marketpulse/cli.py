"""The `marketpulse` command: one CLI, subcommands contributed by each room.

Each room's ``cli.register(app)`` adds its commands; heavy imports (torch, faust) happen inside the
commands so `marketpulse --help` stays fast. Whatever a command raises is reported by
``marketpulse.cli_errors`` as one ``error: ...`` line with a documented exit code.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

from marketpulse.cli_errors import ErrorReportingGroup
from marketpulse.cli_options import ConfigOpt, load_settings

# Plain tracebacks under --debug: they are what gets pasted into a bug report.
app = typer.Typer(cls=ErrorReportingGroup, add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Real-time market-sentiment risk monitor.",
                  epilog="Exit codes: 0 ok, 1 other failure, 2 bad argument, input file or settings, "
                         "3 Kafka or Elasticsearch unreachable. A failure is one 'error:' line; --debug shows "
                         "the traceback.")
schemas_app = typer.Typer(no_args_is_help=True, help="Event schemas.")
app.add_typer(schemas_app, name="schemas")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("marketpulse")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"marketpulse {_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", envvar="MARKETPULSE_DEBUG",
                               help="Show the traceback of a failure instead of the one-line error."),
) -> None:
    """Real-time market-sentiment risk monitor."""


@schemas_app.command("export")
def schemas_export(out_dir: Path = typer.Option(Path("docs/schemas"), help="where to write the JSON Schemas"),
                   config: Path | None = ConfigOpt) -> None:
    """Write RawEvent and LabeledEvent JSON Schemas for producers in other languages."""
    from marketpulse.schemas import LabeledEvent, RawEvent

    load_settings(config)  # a broken config file is reported here as everywhere else

    out_dir.mkdir(parents=True, exist_ok=True)
    for model in (RawEvent, LabeledEvent):
        path = out_dir / f"{model.__name__}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2) + "\n")
        typer.echo(f"wrote {path}")


@app.command("settings")
def show_settings(
    check: bool = typer.Option(False, "--check", help="only validate the settings (file, .env, environment, "
                                                      "secrets): 'settings OK' or the errors"),
    config: Path | None = ConfigOpt,
) -> None:
    """Print the effective settings (secrets masked), or with --check only validate them."""
    s = load_settings(config)
    if check:
        typer.echo(f"settings OK ({f'config file {s.config_file}' if s.config_file else 'no config file'})")
    else:
        typer.echo(s.model_dump_json(indent=2))


@app.command("demo")
def demo(
    live: float = typer.Option(60.0, help="seconds of live stream"),
    history: float = typer.Option(1800.0, help="seconds of quiet history backfilled first (alerter baseline)"),
    rate: float = typer.Option(4.0, help="records per second"),
    burst: str = typer.Option("burst:TSLA@25+25x4", help="scripted scenario during the live stream"),
    seed: int = typer.Option(7),
    config: Path | None = ConfigOpt,
) -> None:
    """Run the whole pipeline on the local stack with synthetic data and print a summary from ES."""
    from marketpulse.demo import run_demo

    raise typer.Exit(run_demo(load_settings(config), config, live, history, rate, burst, seed))


def _register_rooms() -> None:
    """Each room adds its commands; `--help` lists them under the room's heading."""
    import consumers.cli
    import dashboards.cli
    import models.cli
    import stream.cli

    for info in (*app.registered_commands, *app.registered_groups):
        info.rich_help_panel = "General"
    for panel, room in (("Models", models.cli), ("Stream: ingest and label", stream.cli),
                        ("Consumers: index, alert, replay, detect", consumers.cli), ("Dashboards", dashboards.cli)):
        known = {id(i) for i in (*app.registered_commands, *app.registered_groups)}
        room.register(app)
        for info in (*app.registered_commands, *app.registered_groups):
            if id(info) not in known:
                info.rich_help_panel = panel


_register_rooms()

if __name__ == "__main__":
    app()
