"""ONNX Runtime CPU backend, for the fp32 export or its dynamic-int8 quantization."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from models.machine import usable_cores


def session_options(threads: int | None = None, spinning: bool = False):
    """The session settings the classifier runs with (also what bench profiles run with)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
    # Busy-waiting worker threads burn cores that the stream workers, Kafka and ES share; on a
    # 2-core machine turning spinning off roughly doubled int8 throughput under load.
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return so


class OnnxBackend:
    """``threads`` (None: one per usable core) run whole forward passes side by side, each pass on
    one thread (``pool``, for ``run_batched``). Threads that share each operator of one pass instead
    (``side_by_side=False``) wait for the slower one at every parallel kernel, so a core taken by
    Kafka, Elasticsearch or the worker's own loop stalls both; bench/bench_model_steps.py measures
    the two (docs/models.md, "Optimisation steps")."""

    def __init__(self, model_path: Path, name: str = "onnx", threads: int | None = None, spinning: bool = False,
                 side_by_side: bool = True):
        import onnxruntime as ort

        if not Path(model_path).is_file():
            raise FileNotFoundError(f"{model_path} missing; run `python -m models.build`")
        self.threads = threads or usable_cores()
        self.pool = None
        if side_by_side and self.threads > 1:
            self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="model-pass")
        so = session_options(1 if self.pool else threads, spinning)
        self.session = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
        self.model_path = Path(model_path)
        self.name = name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray):
        out = self.session.run(self.output_names, {"input_ids": input_ids, "attention_mask": attention_mask})
        return tuple(np.asarray(o, dtype=np.float32) for o in out)
