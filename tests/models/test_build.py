"""Derived files: `marketpulse model build` (= `python -m models.build`) output and its staleness check."""
from __future__ import annotations

import json
import shutil

import onnx
from typer.testing import CliRunner

from marketpulse.cli import app
from models import build
from models.export import INPUT_NAMES, OUTPUT_NAMES


def test_build_produces_all_files_and_is_a_noop_when_current(model_settings):
    paths = build.ensure_built(model_settings)
    assert build.is_built(model_settings)
    mtime = paths["onnx"].stat().st_mtime_ns
    res = CliRunner().invoke(app, ["model", "build"])
    assert res.exit_code == 0, res.output
    assert "up to date" in res.output
    assert paths["onnx"].stat().st_mtime_ns == mtime
    assert paths["int8"].stat().st_size < paths["onnx"].stat().st_size / 2
    assert json.loads(paths["tokenizer"].read_text())["truncation"] is None  # set per call at run time


def test_onnx_graph_has_dynamic_batch_and_sequence_axes(model_settings):
    m = onnx.load(str(build.build_paths(model_settings)["onnx"]), load_external_data=False)
    assert [i.name for i in m.graph.input] == INPUT_NAMES
    assert [o.name for o in m.graph.output] == OUTPUT_NAMES
    for inp in m.graph.input:
        dims = inp.type.tensor_type.shape.dim
        assert len(dims) == 2 and all(d.dim_param and not d.dim_value for d in dims)


def test_stale_stamp_is_detected(model_settings, tmp_path):
    src = build.build_paths(model_settings)
    ms = model_settings.model_copy(update={"build_dir": tmp_path})
    dst = build.build_paths(ms)
    dst["root"].mkdir(parents=True)
    for k in (*build.FILES, "stamp"):
        shutil.copy(src[k], dst[k])
    assert build.is_built(ms)
    stamp = json.loads(dst["stamp"].read_text())
    stamp["adapter_sha256"] = "0" * 64
    dst["stamp"].write_text(json.dumps(stamp))
    assert not build.is_built(ms)
    dst["stamp"].unlink()
    assert not build.is_built(ms)
