"""ONNX export (dynamo exporter, dynamic batch and sequence axes) and dynamic int8 quantization."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# The graph's input/output names are also read by the TensorRT backend and by tests; torch is only
# imported to export, so importing these names costs nothing.
INPUT_NAMES = ["input_ids", "attention_mask"]
OUTPUT_NAMES = ["sentiment_logits", "topic_logits", "pooled_embedding"]
MAX_POSITIONS = 512

log = logging.getLogger(__name__)


def export_onnx(model: torch.nn.Module, path: Path, opset: int = 18) -> Path:
    """Export with ``dynamo=True``: the legacy TorchScript exporter produced wrong hidden states with
    transformers 5.x. The graph takes int64 ids/mask of shape (batch, seq) and returns both heads'
    logits plus the L2-normalised mean-pooled embedding."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    ids = torch.randint(1000, 2000, (2, 16), dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("seq", min=2, max=MAX_POSITIONS)
    with torch.no_grad(), warnings.catch_warnings():
        # ids and mask share their Dims; the exporter warns that it keeps one name per axis.
        warnings.filterwarnings("ignore", message=".*will not be used, since it shares the same shape constraints.*")
        program = torch.onnx.export(
            model,
            (ids, mask),
            dynamo=True,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            opset_version=opset,
            optimize=True,
            verbose=False,
        )
        # One self-contained file (the model is ~90 MB, far below protobuf's 2 GB limit).
        program.save(str(path), external_data=False)
    return path


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8: weights quantized offline, activations per batch at run time (no calibration set)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)
    return dst
