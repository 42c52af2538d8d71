"""Fixtures of the platform tests."""
import os
from pathlib import Path

import pytest


@pytest.fixture
def no_settings_from_outside(tmp_path: Path, monkeypatch) -> Path:
    """Only what a test sets decides the settings: not the checkout's .env, nor the shell."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.upper().startswith("MARKETPULSE_")]:
        monkeypatch.delenv(name)
    (tmp_path / "secrets").mkdir()
    monkeypatch.setenv("MARKETPULSE_SECRETS_DIR", str(tmp_path / "secrets"))
    return tmp_path
