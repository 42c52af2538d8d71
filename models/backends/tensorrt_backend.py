"""TensorRT backend (NVIDIA GPUs): an FP16 engine built from the ONNX export, cached on disk.

Needs the ``tensorrt`` package (10.x) and a CUDA build of torch; device memory and the stream come
from torch, so no extra CUDA bindings are required. Engines are keyed by GPU name, TensorRT version
and model version, because a serialized engine only runs on the GPU model and TensorRT release that
built it. Output buffers and pinned host buffers are allocated once at the largest profile shape and
reused for every batch.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from models.export import INPUT_NAMES, OUTPUT_NAMES

log = logging.getLogger(__name__)

# Optimization profile: (min, opt, max) for batch and sequence length. opt = the stream workers'
# usual micro-batch (64) at a typical tweet length.
BATCH_RANGE = (1, 64, 256)
SEQ_RANGE = (2, 64, 128)


def availability() -> str | None:
    """None when the backend can run here, else the reason it cannot."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install raising OSError on its .so
        return f"tensorrt is not importable ({type(exc).__name__}: {exc})"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


def engine_path(build_dir: Path, model_version: str, fp16: bool = True) -> Path:
    import tensorrt as trt
    import torch

    gpu = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name()).strip("-")
    key = f"{model_version}-{gpu}-trt{trt.__version__}-{'fp16' if fp16 else 'fp32'}"
    key += f"-b{BATCH_RANGE[2]}-s{SEQ_RANGE[2]}"
    return Path(build_dir) / "tensorrt" / f"{key}.engine"


def build_engine(onnx_path: Path, out: Path, fp16: bool = True, workspace_gb: float = 2.0) -> Path:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10 networks are always explicit-batch; the flag is kept for 8.x compatibility.
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16:
        if not builder.platform_has_fast_fp16:
            log.warning("GPU has no fast FP16; building the engine anyway")
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name in INPUT_NAMES:
        profile.set_shape(
            name,
            (BATCH_RANGE[0], SEQ_RANGE[0]),
            (BATCH_RANGE[1], SEQ_RANGE[1]),
            (BATCH_RANGE[2], SEQ_RANGE[2]),
        )
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT engine build failed (see the TensorRT log above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(out)
    return out


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, onnx_path: Path, build_dir: Path, model_version: str, fp16: bool = True):
        reason = availability()
        if reason:
            raise RuntimeError(f"tensorrt backend unavailable: {reason}")
        import tensorrt as trt
        import torch

        self.torch = torch
        self.trt = trt
        path = engine_path(build_dir, model_version, fp16)
        if not path.is_file():
            log.info("building TensorRT engine %s (one-off, a few minutes)", path)
            build_engine(onnx_path, path, fp16)
        self.engine_file = path
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"could not deserialize {path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.device = torch.device("cuda")
        self.stream = torch.cuda.Stream()
        max_b, max_s = BATCH_RANGE[2], SEQ_RANGE[2]
        # Inputs: device buffers at the largest profile shape, fed from pinned host memory so the
        # host->device copies are truly asynchronous.
        self.d_in = {n: torch.empty((max_b, max_s), dtype=torch.int64, device=self.device) for n in INPUT_NAMES}
        self.h_in = {n: torch.empty((max_b, max_s), dtype=torch.int64).pin_memory() for n in INPUT_NAMES}
        self.d_out, self.h_out = {}, {}
        for n in OUTPUT_NAMES:
            width = self.engine.get_tensor_shape(n)[-1]
            dtype = self._torch_dtype(self.engine.get_tensor_dtype(n))
            self.d_out[n] = torch.empty((max_b, width), dtype=dtype, device=self.device)
            self.h_out[n] = torch.empty((max_b, width), dtype=dtype).pin_memory()

    def _torch_dtype(self, dt):
        trt, torch = self.trt, self.torch
        return {trt.float32: torch.float32, trt.float16: torch.float16, trt.int64: torch.int64,
                trt.int32: torch.int32}[dt]

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray):
        b, s = input_ids.shape
        if b > BATCH_RANGE[2] or s > SEQ_RANGE[2]:
            # Larger than the engine profile: split the batch (sequence is capped by max_length).
            if s > SEQ_RANGE[2]:
                raise ValueError(f"sequence length {s} exceeds the engine profile max {SEQ_RANGE[2]}")
            parts = [self.run(input_ids[i : i + BATCH_RANGE[2]], attention_mask[i : i + BATCH_RANGE[2]])
                     for i in range(0, b, BATCH_RANGE[2])]
            return tuple(np.concatenate(p) for p in zip(*parts))
        torch = self.torch
        with torch.cuda.stream(self.stream):
            for name, arr in zip(INPUT_NAMES, (input_ids, attention_mask)):
                # Contiguous (b, s) views at the buffer start: TensorRT reads them densely.
                h = self.h_in[name].view(-1)[: b * s].view(b, s)
                h.copy_(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.int64)))
                d = self.d_in[name].view(-1)[: b * s].view(b, s)
                d.copy_(h, non_blocking=True)
                self.context.set_input_shape(name, (b, s))
                self.context.set_tensor_address(name, d.data_ptr())
            for name in OUTPUT_NAMES:
                self.context.set_tensor_address(name, self.d_out[name].data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
            outs = []
            for name in OUTPUT_NAMES:
                h = self.h_out[name][:b]
                h.copy_(self.d_out[name][:b], non_blocking=True)
                outs.append(h)
        self.stream.synchronize()
        return tuple(o.float().numpy().copy() for o in outs)
