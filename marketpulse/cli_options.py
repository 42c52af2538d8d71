"""What every `marketpulse` command shares: the --config option and how settings are loaded."""
from __future__ import annotations

import logging
from pathlib import Path

import typer

from marketpulse.cli_errors import remember_settings
from marketpulse.settings import Settings

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML settings file (else MARKETPULSE_CONFIG / env vars)")


def load_settings(config: Path | None, configure_logging: bool = False) -> Settings:
    """Settings from --config (or env/MARKETPULSE_CONFIG); long-running commands also set up logging.

    A missing file, an unknown key or an invalid value raises; the CLI reports it in one line."""
    s = Settings.load(config)
    remember_settings(s)  # an unreachable Kafka or Elasticsearch is then reported with its address
    if configure_logging:
        logging.basicConfig(level=s.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return s
