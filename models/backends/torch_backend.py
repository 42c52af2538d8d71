"""PyTorch backend: fp32 on CPU; fp16 on CUDA when a GPU is present."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TorchBackend:
    name = "torch"

    def __init__(self, artifact_dir: Path, merged_weights: Path | None = None, device: str = "auto"):
        from models.artifact import load_merged_model

        # Folding adapters takes well under a second, so the artifact is the source of truth; the
        # merged file in build_dir is used (and checked) when present.
        model, self.config, self.labels = load_merged_model(artifact_dir)
        if merged_weights is not None and Path(merged_weights).is_file():
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(merged_weights)), strict=True)
        self.device = resolve_device(device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.model = model.to(self.device, self.dtype).eval()
        self.name = "torch" if self.device.type == "cpu" else f"torch-{self.device.type}-fp16"

    @torch.inference_mode()
    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray):
        ids = torch.from_numpy(input_ids).to(self.device, non_blocking=True)
        mask = torch.from_numpy(attention_mask).to(self.device, non_blocking=True)
        s, t, e = self.model(ids, mask)
        return tuple(x.float().cpu().numpy() for x in (s, t, e))
