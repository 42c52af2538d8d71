"""`marketpulse model build | report | repack`: the model room's upkeep commands.

Specification:
- they are one `model` group in `marketpulse --help`, next to the unchanged `train` and `classify`;
  listing them loads no torch / transformers / onnxruntime;
- each takes `--config` (the settings YAML); the artifact, build and data directories come from the
  settings' `model` section unless ARTIFACT_DIR is given;
- `python -m models.build` (make setup, Dockerfile) is the same command as `marketpulse model build`;
- nothing here rewrites the committed artifact: report is checked with `finalize` replaced, repack on a copy.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from marketpulse.cli import app
from marketpulse.settings import REPO_ROOT
from models import build

COMMANDS = ("build", "report", "repack")
runner = CliRunner()


def write_config(tmp_path: Path, **model) -> Path:
    cfg = tmp_path / "marketpulse.yaml"
    cfg.write_text(yaml.safe_dump({"model": {k: str(v) for k, v in model.items()}}))
    return cfg


@pytest.fixture(scope="module")
def built(model_settings):
    """The committed artifact's derived files exist (cheap when already built)."""
    build.ensure_built(model_settings)
    return model_settings


# --- discoverability -------------------------------------------------------------------------

def test_model_group_is_listed_next_to_train_and_classify():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0, res.output
    for name in ("model", "train", "classify"):
        assert name in res.output
    res = runner.invoke(app, ["model", "--help"])
    assert res.exit_code == 0, res.output
    for name in COMMANDS:
        assert name in res.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_model_command_takes_config(command):
    res = runner.invoke(app, ["model", command, "--help"])
    assert res.exit_code == 0, res.output
    assert "--config" in res.output


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from typer.testing import CliRunner; from marketpulse.cli import app; "
            "r = CliRunner().invoke(app, ['model', '--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- build ------------------------------------------------------------------------------------

def test_build_with_config_is_a_noop_when_current(built, tmp_path):
    cfg = write_config(tmp_path, artifact_dir=built.artifact_dir, build_dir=built.build_dir)
    res = runner.invoke(app, ["model", "build", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "up to date" in res.output and str(built.build_dir) in res.output


def test_build_reads_the_artifact_dir_from_config(tmp_path):
    empty = tmp_path / "no-artifact"
    empty.mkdir()
    cfg = write_config(tmp_path, artifact_dir=empty, build_dir=tmp_path / "build")
    res = runner.invoke(app, ["model", "build", "--config", str(cfg)])
    assert res.exit_code == 1
    assert f"no trained artifact at {empty}" in res.output
    assert not (tmp_path / "build").exists()


def test_python_dash_m_models_build_is_the_same_command(built, tmp_path):
    """The Makefile's `$(PY) -m models.build` (and the Dockerfile's) keep working, with the same options."""
    help_ = subprocess.run([sys.executable, "-m", "models.build", "--help"], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=60)
    assert help_.returncode == 0, help_.stderr
    assert "--force" in help_.stdout and "--config" in help_.stdout
    cfg = write_config(tmp_path, artifact_dir=built.artifact_dir, build_dir=built.build_dir)
    run = subprocess.run([sys.executable, "-m", "models.build", "--config", str(cfg)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "up to date" in run.stdout


# --- report -----------------------------------------------------------------------------------

@pytest.fixture
def fake_finalize(monkeypatch, model_settings):
    """Replaces the dev-split measurement (about a minute on 2 cores, and it rewrites the artifact's
    metrics.json/MODEL_CARD.md) with the committed metrics; records what the command passed."""
    import models.report

    calls = []
    committed = json.loads((Path(model_settings.artifact_dir) / "metrics.json").read_text())

    def finalize(artifact_dir, data_dir, build_dir, max_length=128, run_export=True):
        calls.append({"artifact_dir": Path(artifact_dir), "data_dir": Path(data_dir), "build_dir": Path(build_dir),
                      "max_length": max_length, "run_export": run_export})
        return committed

    monkeypatch.setattr(models.report, "finalize", finalize)
    return calls


def test_report_measures_the_configured_artifact_with_the_configured_dirs(fake_finalize, model_settings, tmp_path):
    cfg = write_config(tmp_path, artifact_dir=model_settings.artifact_dir, data_dir=tmp_path / "data",
                       build_dir=tmp_path / "build", max_length=64)
    res = runner.invoke(app, ["model", "report", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert fake_finalize == [{"artifact_dir": Path(model_settings.artifact_dir), "data_dir": tmp_path / "data",
                              "build_dir": tmp_path / "build", "max_length": 64, "run_export": True}]
    assert "| torch fp32 |" in res.output and "| onnx int8 (dynamic) |" in res.output


def test_report_artifact_argument_overrides_config_and_skip_export_measures_torch_only(
        fake_finalize, model_settings, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(model_settings.artifact_dir, copy)
    cfg = write_config(tmp_path, artifact_dir=tmp_path / "elsewhere")
    res = runner.invoke(app, ["model", "report", str(copy), "--skip-export", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert [(c["artifact_dir"], c["run_export"]) for c in fake_finalize] == [(copy, False)]


def test_report_refuses_a_directory_without_a_trained_artifact(fake_finalize, tmp_path):
    empty = tmp_path / "no-artifact"
    empty.mkdir()
    cfg = write_config(tmp_path, artifact_dir=empty)
    res = runner.invoke(app, ["model", "report", "--config", str(cfg)])
    assert res.exit_code == 1
    assert str(empty) in res.output and "training.json" in res.output
    assert fake_finalize == []


# --- repack -----------------------------------------------------------------------------------

def test_repack_rewrites_a_copy_of_the_committed_artifact_with_the_same_values(model_settings, tmp_path):
    from safetensors.torch import load_file
    import torch

    from models.artifact import ADAPTER_FILE

    src = Path(model_settings.artifact_dir)
    copy = tmp_path / "artifact"
    shutil.copytree(src, copy)
    cfg = write_config(tmp_path, artifact_dir=copy)
    res = runner.invoke(app, ["model", "repack", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert f"repacked {copy / ADAPTER_FILE}" in res.output

    before, after = load_file(str(src / ADAPTER_FILE)), load_file(str(copy / ADAPTER_FILE))
    assert set(after) == set(before)
    for name, t in before.items():
        assert after[name].dtype == t.dtype and after[name].shape == t.shape, name
        if t.dtype == torch.int8:
            assert (after[name].int() - t.int()).abs().max() <= 1, name
        else:
            torch.testing.assert_close(after[name].float(), t.float(), rtol=1e-5, atol=1e-8, msg=name)
    for f in ("config.json", "labels.json", "metrics.json", "MODEL_CARD.md"):
        assert (copy / f).read_bytes() == (src / f).read_bytes(), f


def test_repack_refuses_a_directory_without_an_artifact(tmp_path):
    res = runner.invoke(app, ["model", "repack", str(tmp_path)])
    assert res.exit_code == 1
    assert f"no model artifact at {tmp_path}" in res.output
