"""Alert configurations to compare: YAML files with an ``alerts:`` section, like the settings file."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from consumers.alerting import DetectorConfig
from marketpulse.cli_errors import validation_line
from marketpulse.settings import AlertSettings

CURRENT = "current"


def load_alert_config(spec: str | Path, base: AlertSettings) -> tuple[str, DetectorConfig]:
    """(name, config). ``current`` is the live settings; a file's ``alerts:`` keys override them,
    so a file only needs the knobs it changes. The name is the file's stem."""
    if str(spec) == CURRENT:
        return CURRENT, DetectorConfig.from_settings(base)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"alert config {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not isinstance(data.get("alerts", {}), dict):
        raise ValueError(f"alert config {path}: expected a mapping with an 'alerts:' section")
    try:
        merged = AlertSettings.model_validate({**base.model_dump(), **(data.get("alerts") or {})})
    except ValidationError as e:  # the keys are the file's: say which file
        raise ValueError(f"alert config {path}: {validation_line(e)}") from None
    if not merged.clear_threshold < merged.threshold <= merged.critical_threshold:
        raise ValueError(f"alert config {path}: need clear_threshold < threshold <= critical_threshold")
    return path.stem, DetectorConfig.from_settings(merged)


def load_alert_configs(specs: list[str] | None, base: AlertSettings) -> list[tuple[str, DetectorConfig]]:
    """Default: the live settings only. Names must be distinct: they label the report's columns."""
    out = [load_alert_config(s, base) for s in (specs or [CURRENT])]
    names = [n for n, _ in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"alert configs need distinct names (file stems); repeated: {', '.join(dupes)}")
    return out
