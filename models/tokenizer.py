"""The run-time tokenizer: the base model's fast (Rust) tokenizer, read with the ``tokenizers``
package from the ``tokenizer.json`` that ``models.build`` writes next to the ONNX files.

transformers' fast tokenizers wrap this same Rust object; ``FastTokenizer.__call__`` applies the
settings their ``__call__`` applies for ``truncation=True, max_length=N, padding=False`` (truncate
longest-first on the right, special tokens added, special-token strings in the text kept as special
tokens), so the ids are identical (tests/models/test_tokenizer.py) while the ONNX backends need
neither transformers nor torch.
"""
from __future__ import annotations

import threading
from pathlib import Path


class FastTokenizer:
    is_fast = True

    def __init__(self, tokenizer):
        self._tok = tokenizer
        self._tok.no_padding()  # rows are padded per batch (models.data.pad_batch)
        self._tok.no_truncation()
        self._tok.encode_special_tokens = False
        # Truncation is state on the Rust object: set and used under one lock so that two threads
        # asking for different max lengths cannot see each other's setting.
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path) -> "FastTokenizer":
        from tokenizers import Tokenizer

        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} missing; run `python -m models.build`")
        return cls(Tokenizer.from_file(str(path)))

    def __call__(self, texts: list[str], truncation: bool = True, max_length: int | None = None,
                 padding: bool = False) -> dict[str, list[list[int]]]:
        """``{"input_ids", "attention_mask"}``, one unpadded row per text (a subset of a transformers
        tokenizer's call: batches of plain strings, no padding)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings")
        if padding:
            raise ValueError("padding is done per batch; call with padding=False")
        want = {"max_length": max_length, "stride": 0, "strategy": "longest_first", "direction": "right"} \
            if truncation and max_length is not None else None
        with self._lock:
            current = self._tok.truncation
            if want is None:
                if current is not None:
                    self._tok.no_truncation()
            elif current is None or any(current.get(k) != v for k, v in want.items()):
                self._tok.enable_truncation(**want)
            encodings = self._tok.encode_batch(list(texts), add_special_tokens=True)
        return {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings]}
