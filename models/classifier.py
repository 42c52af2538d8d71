"""The inference API used by the stream workers and `marketpulse classify`.

    clf = Classifier.load()            # the committed artifact, onnx-int8 on CPU; or load(path, backend=...)
    clf("$AAPL beats estimates")       # one plain dict; clf([...]) a list of them (same shape as the CLI's JSONL)

    clf = Classifier.from_settings(settings.model)
    preds = clf.predict(["$AAPL beats estimates", ...], explain=True)
    words = clf.explain(["Tesla shares plunge after weak deliveries"])   # [["plunge", ...]]
    vecs = clf.embed(texts)            # (n, 384) L2-normalised

Path: fast batch tokenization (truncation at max_length) -> batches sorted by length and padded
to their own longest row -> backend -> softmax -> rows scattered back to input order.

Empty or whitespace-only texts make ``predict``/``embed`` raise ``ValueError`` naming their indices;
callers that want per-row errors (``marketpulse classify``) filter them out first.

The onnx and onnx-int8 backends need neither torch nor transformers: the tokenizer is read from the
build directory with the ``tokenizers`` package, and torch is imported only by the torch and
TensorRT backends (and by ``auto`` where a GPU may be present).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from marketpulse.settings import ModelSettings
from models.backends import BACKENDS
from models.batching import run_batched, softmax, tokenize
from models.data import LabelMaps
from models.explain import DEFAULT_METHOD, Attribution, attribute
from models.io import model_input

log = logging.getLogger(__name__)
TOP_WORDS = 5  # words per explanation: what an analyst reads at a glance
# Forward passes on a CPU: up to 64 rows (a worker's micro-batch) and 512 padded tokens, so that a
# pass's activations stay in its core's cache and a 64-text call makes enough passes to keep every
# thread busy side by side; ~1.7x the throughput of fixed 32-row passes on all threads at once
# (bench/bench_model_steps.py). GPU backends keep fixed 32-row passes.
CPU_ROWS_PER_PASS, CPU_TOKENS_PER_PASS = 64, 512
GPU_ROWS_PER_PASS = 32


@dataclass
class Prediction:
    sentiment: str
    sentiment_scores: dict[str, float]
    topic: str
    topic_scores: list[tuple[str, float]]  # top 3, best first
    model_version: str
    explanation: list[str] | None = field(default=None)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; ``topic_scores`` as ``[{"label", "score"}, ...]`` like ``LabeledEvent``."""
        d = asdict(self)
        d["topic_scores"] = [{"label": label, "score": score} for label, score in self.topic_scores]
        if self.explanation is None:
            d.pop("explanation")
        return d


def int8_accepted(artifact_dir: Path) -> bool | None:
    """Whether training's dev-split check kept int8 within tolerance of fp32 (see metrics.json);
    None while no check has run (the report itself measures int8 before it decides)."""
    p = Path(artifact_dir) / "metrics.json"
    decision = json.loads(p.read_text()).get("int8", {}) if p.is_file() else {}
    return bool(decision["accepted"]) if "accepted" in decision else None


def gpu_possible() -> bool:
    """False only where no NVIDIA GPU can be present, checked without importing torch (seconds and
    hundreds of MB just to ask): on Linux CUDA needs the driver's /dev/nvidiactl (/dev/dxg on WSL 2)."""
    if sys.platform.startswith("linux"):
        return any(os.path.exists(d) for d in ("/dev/nvidiactl", "/dev/dxg"))
    return sys.platform != "darwin"


def auto_backend(ms: ModelSettings) -> str:
    """Fastest available, per bench/bench_models.py: TensorRT on a GPU with tensorrt installed,
    torch fp16 on a GPU without it, else ONNX Runtime (int8 only if it passed the accuracy check)."""
    if gpu_possible():
        from models.backends.tensorrt_backend import availability

        if availability() is None:
            return "tensorrt"
        try:
            import torch

            if torch.cuda.is_available() and ms.device in ("auto", "cuda"):
                return "torch"
        except ImportError:
            pass
    return "onnx-int8" if int8_accepted(ms.artifact_dir) else "onnx"


class Classifier:
    def __init__(self, backend, tokenizer, labels: LabelMaps, model_version: str, max_length: int = 128,
                 batch_size: int = 32, max_tokens: int | None = None,
                 temperatures: tuple[float, float] = (1.0, 1.0)):
        self._backend = backend
        self.tokenizer = tokenizer
        self.labels = labels
        self.model_version = model_version
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        # (sentiment, topic) logit temperatures fitted on dev (models.calibration); (1, 1) = raw softmax
        self.temperatures = temperatures

    @property
    def backend(self) -> str:
        return self._backend.name

    def __repr__(self) -> str:
        return f"Classifier(model_version={self.model_version!r}, backend={self.backend!r})"

    @classmethod
    def load(cls, path: str | Path | None = None, *, backend: str = "onnx-int8", batch_size: int | None = None,
             threads: int | None = None, device: str = "auto", max_length: int = 128) -> "Classifier":
        """Load a model artifact directory (default: the committed ``models/artifacts/default``)
        without a settings file. ``backend``: onnx-int8 (default, CPU), onnx, torch, tensorrt or auto.
        The derived files are built into ``models/build/`` on first use."""
        ms = ModelSettings(device=device, max_length=max_length)
        if path is not None:
            if not (Path(path) / "config.json").is_file():
                raise FileNotFoundError(f"{path}: not a model artifact (no config.json)")
            ms = ms.model_copy(update={"artifact_dir": Path(path)})
        return cls.from_settings(ms, backend=backend, batch_size=batch_size, threads=threads)

    def __call__(self, texts: str | list[str], explain: bool = False) -> dict | list[dict]:
        """Classify one text (returns a dict) or a list (returns a list of dicts, same order), each
        ``{"sentiment", "sentiment_scores", "topic", "topic_scores", "model_version"}`` (+ ``explanation``
        with ``explain=True``): the shape of `marketpulse classify`'s JSONL rows. Texts are cleaned as the
        stream worker cleans them (markup and URLs removed) first; an empty one raises ``ValueError``."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        prepared = [model_input(t) if isinstance(t, str) else t for t in batch]
        out = [p.to_dict() for p in self.predict(prepared, explain=explain)]
        return out[0] if single else out

    @classmethod
    def from_settings(cls, ms: ModelSettings, backend: str | None = None, batch_size: int | None = None,
                      threads: int | None = None) -> "Classifier":
        """Build derived files if missing (``models.build``), then load the chosen backend.
        ``backend`` overrides ``ms.backend``; "auto" picks the fastest available. ``batch_size``
        caps the rows per forward pass (None: 64 on a CPU, 32 on a GPU): a larger ``predict`` call is
        split into length-sorted passes, which pad far less than one big batch; on a CPU a pass also
        holds at most ``CPU_TOKENS_PER_PASS`` padded tokens. ``threads`` overrides ``ms.threads``
        (ONNX Runtime: passes side by side, one thread each; torch: intra-op threads; None: one per
        usable core)."""
        from models.artifact import read_config, read_labels
        from models.build import BACKEND_FILES, ensure_built
        from models.calibration import read_temperatures
        from models.tokenizer import FastTokenizer

        name = backend or ms.backend
        threads = threads if threads is not None else ms.threads
        if name == "auto":
            name = auto_backend(ms)
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; choose from auto, {', '.join(BACKENDS)}")
        cfg = read_config(ms.artifact_dir)
        labels = read_labels(ms.artifact_dir)
        paths = ensure_built(ms, log=log.info, need=BACKEND_FILES[name])
        if name == "torch":
            from models.backends.torch_backend import TorchBackend

            impl = TorchBackend(ms.artifact_dir, paths["merged"], ms.device)
            on_cpu = impl.device.type == "cpu"
            if threads:
                import torch

                torch.set_num_threads(threads)
        elif name in ("onnx", "onnx-int8"):
            from models.backends.onnx_backend import OnnxBackend

            if name == "onnx-int8" and int8_accepted(ms.artifact_dir) is False:
                log.warning("onnx-int8 requested although it failed the dev-split accuracy check")
            impl = OnnxBackend(paths["onnx" if name == "onnx" else "int8"], name, threads)
            on_cpu = True
        else:
            from models.backends.tensorrt_backend import TensorRTBackend

            impl = TensorRTBackend(paths["onnx"], ms.build_dir, cfg["version"])
            on_cpu = False
        return cls(impl, FastTokenizer.from_file(paths["tokenizer"]), labels, cfg["version"], ms.max_length,
                   batch_size or (CPU_ROWS_PER_PASS if on_cpu else GPU_ROWS_PER_PASS),
                   CPU_TOKENS_PER_PASS if on_cpu else None, read_temperatures(ms.artifact_dir))

    # -- tokenize -> batch -> run -> unbatch ---------------------------------------------------
    def _check(self, texts: list[str]) -> None:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not a single string")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(f"empty, whitespace-only or non-string text at index(es) {bad[:10]}"
                             f"{' ...' if len(bad) > 10 else ''}; filter them out before calling")

    def _forward(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = tokenize(self.tokenizer, texts, self.max_length)
        pool = getattr(self._backend, "pool", None)  # CPU backends whose passes run side by side
        if pool is None:
            return run_batched(self._backend.run, ids, self.batch_size, self.max_tokens)
        # At least one pass per thread, so that a small micro-batch is not left to a single core.
        threads = self._backend.threads
        rows = min(self.batch_size, -(-len(ids) // threads))
        return run_batched(self._backend.run, ids, rows, self.max_tokens, pool, in_flight=4 * threads)

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(sentiment probabilities (n, 3), topic probabilities (n, 20)), columns in label-map order,
        calibrated by the artifact's temperatures."""
        self._check(texts)
        if not texts:
            return np.zeros((0, len(self.labels.sentiment))), np.zeros((0, len(self.labels.topic)))
        s, t, _ = self._forward(texts)
        ts, tt = self.temperatures
        return softmax(s / ts), softmax(t / tt)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised encoder embeddings, shape (n, hidden)."""
        self._check(texts)
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return self._forward(texts)[2]

    def predictions(self, s_probs: np.ndarray, t_probs: np.ndarray) -> list[Prediction]:
        """``Prediction`` rows from ``predict_proba``'s probabilities."""
        s_labels, t_labels = self.labels.sentiment, self.labels.topic
        preds = []
        for sp, tp in zip(s_probs, t_probs):
            top3 = np.argsort(-tp, kind="stable")[:3]
            preds.append(Prediction(
                sentiment=s_labels[int(sp.argmax())],
                sentiment_scores={l: round(float(p), 6) for l, p in zip(s_labels, sp)},
                topic=t_labels[int(top3[0])],
                topic_scores=[(t_labels[int(i)], round(float(tp[i]), 6)) for i in top3],
                model_version=self.model_version,
            ))
        return preds

    def predict(self, texts: list[str], explain: bool = False) -> list[Prediction]:
        """``explain=True`` also explains the negative predictions (``explanation``: up to 5 words
        that raised P(negative) the most; ``[]`` for the others). It costs ~11x the classification of
        a negative text; ``explain`` does it for chosen texts only."""
        s_probs, t_probs = self.predict_proba(texts)
        preds = self.predictions(s_probs, t_probs)
        if explain:
            for p in preds:
                p.explanation = []  # present but empty for non-negative rows when explain=True
            neg = [i for i, p in enumerate(preds) if p.sentiment == "negative"]
            if neg:
                found = self.attribute([texts[i] for i in neg], label="negative", sentiment_probs=s_probs[neg])
                for i, a in zip(neg, found):
                    preds[i].explanation = a.top(TOP_WORDS)
        return preds

    def explain(self, texts: list[str], top_k: int = TOP_WORDS, *, label: str | None = None,
                method: str | None = None) -> list[list[str]]:
        """For each text, up to ``top_k`` words whose removal lowers the probability of its sentiment
        the most, best first: the predicted sentiment, or ``label`` ("negative", "neutral",
        "positive") for every text. Words are the text's own (``str.split``), so pass the text
        exactly as it is shown; like ``predict``, it is not cleaned first."""
        return [a.top(top_k) for a in self.attribute(texts, label=label, method=method)]

    def attribute(self, texts: list[str], *, label: str | None = None, method: str | None = None,
                  sentiment_probs: np.ndarray | None = None) -> list[Attribution]:
        """What ``explain`` computes, with the weights: per text, the words whose removal lowers
        P(sentiment) and by how much (``Attribution.ranked``), best first. ``method``: occlusion
        (default) or screened (models/explain.py). ``sentiment_probs`` (from ``predict_proba``)
        spares a caller that already classified the texts one forward pass."""
        self._check(texts)
        if not texts:
            return []
        if label is not None and label not in self.labels.sentiment:
            raise ValueError(f"unknown sentiment {label!r}; choose from {', '.join(self.labels.sentiment)}")
        s = self.predict_proba(texts)[0] if sentiment_probs is None else np.asarray(sentiment_probs)
        if s.shape != (len(texts), len(self.labels.sentiment)):
            raise ValueError(f"sentiment_probs has shape {s.shape}, expected {(len(texts), len(self.labels.sentiment))}")
        classes = s.argmax(axis=1) if label is None else np.full(len(texts), self.labels.sentiment.index(label))
        base = s[np.arange(len(texts)), classes]
        return attribute(texts, classes, base, lambda v: self.predict_proba(v)[0], method or DEFAULT_METHOD)
