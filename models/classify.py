"""File-to-file classification behind `marketpulse classify`."""
from __future__ import annotations

import time
from pathlib import Path

from marketpulse.settings import ModelSettings
from models.io import read_texts, row_problem, write_jsonl


def classify_texts(clf, texts: list[str | None], explain: bool = False, chunk: int = 4096) -> list[dict]:
    """One output object per input, same order; unusable rows get ``{"row": i, "error": reason}``."""
    out: list[dict | None] = [None] * len(texts)
    good = []
    for i, t in enumerate(texts):
        problem = row_problem(t)
        if problem:
            out[i] = {"row": i, "error": f"cannot classify row {i}: {problem}"}
        else:
            good.append(i)
    # Chunks bound memory on large files; each chunk is batched/sorted inside predict.
    for s in range(0, len(good), chunk):
        idx = good[s : s + chunk]
        for i, p in zip(idx, clf.predict([texts[i] for i in idx], explain=explain)):
            out[i] = p.to_dict()
    return out  # type: ignore[return-value]


def classify_file(ms: ModelSettings, input_path: Path, output_path: Path, backend: str = "auto",
                  batch_size: int = 32, explain: bool = False) -> dict:
    from models.classifier import Classifier

    texts = read_texts(input_path)
    clf = Classifier.from_settings(ms, backend=backend, batch_size=batch_size)
    t0 = time.perf_counter()
    rows = classify_texts(clf, texts, explain=explain)
    dt = time.perf_counter() - t0
    write_jsonl(output_path, rows)
    errors = sum("error" in r for r in rows)
    return {"rows": len(rows), "errors": errors, "backend": clf.backend,
            "texts_per_s": (len(rows) - errors) / dt if dt > 0 else 0.0}
