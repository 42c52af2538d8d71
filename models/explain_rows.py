"""Behind `marketpulse explain`: texts (arguments, or the rows of a file or stdin, read as
`marketpulse classify` reads them) in, one JSON record per text out, in input order: the text as the
model saw it, its scores, and the words that explain its sentiment.

What is explained: by default each text's predicted sentiment (for a positive text, the words that
made it positive), or one chosen sentiment for every text (``label``). ``explained`` in each record
names it, so a record never leaves that open.
"""
from __future__ import annotations

import itertools
import time
from typing import Callable, Iterable, Iterator

from marketpulse.settings import ModelSettings
from models.classify import Tally, usable_rows
from models.explain import DEFAULT_METHOD
from models.io import Row

CHUNK_ROWS = 32  # explaining costs ~11x classifying: small steps keep records flowing out


def explain_rows(clf, rows: list[Row], top_k: int = 5, label: str | None = None, method: str | None = None,
                 with_id: bool = False, unit: str = "line") -> list[dict]:
    """One record per row, same order. Good rows: ``{"text", <the classify scores>, "explained",
    "explanation", "explanation_weights"}`` (``explanation_weights[i]``: how much P(explained)
    falls without ``explanation[i]``); unusable rows: ``{"line", "error"}`` as in ``classify``."""
    out, good, texts = usable_rows(rows, with_id, unit)
    if not texts:
        return out  # type: ignore[return-value]
    s_probs, t_probs = clf.predict_proba(texts)
    preds = clf.predictions(s_probs, t_probs)
    found = clf.attribute(texts, label=label, method=method, sentiment_probs=s_probs)
    for i, text, p, a in zip(good, texts, preds, found):
        out[i] = {**({"id": rows[i].id} if with_id else {}), "text": text, **p.to_dict(),
                  "explained": label or p.sentiment, "explanation": a.top(top_k),
                  "explanation_weights": a.weights(top_k)}
    return out  # type: ignore[return-value]


def argument_rows(texts: Iterable[str]) -> list[Row]:
    """Texts given on the command line as rows; ``line`` is the argument's 1-based position."""
    return [Row(i, t) for i, t in enumerate(texts, 1)]


def explain_chunks(ms: ModelSettings, chunks: Iterator[list[Row]], write: Callable[[list[dict]], None], *,
                   backend: str = "auto", batch_size: int | None = None, top_k: int = 5, label: str | None = None,
                   method: str | None = None, with_id: bool = False, unit: str = "line") -> dict:
    """Explain chunk by chunk, handing each chunk's records to ``write`` as soon as they are done.
    The first chunk is read before the model loads, so an input without rows (``NoRows``) or with a
    bad header costs no model load. Returns counts: rows, errors, first_error, backend, method,
    texts_per_s."""
    from models.classifier import Classifier

    first = next(chunks)
    clf = Classifier.from_settings(ms, backend=backend, batch_size=batch_size)
    tally = Tally()
    for chunk in itertools.chain([first], chunks):
        t0 = time.perf_counter()
        records = explain_rows(clf, chunk, top_k, label, method, with_id, unit)
        tally.add(records, time.perf_counter() - t0)
        write(records)
    return {**tally.counts(), "backend": clf.backend, "method": method or DEFAULT_METHOD}
