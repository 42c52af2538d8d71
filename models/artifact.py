"""The model artifact: small files in git (adapters, label maps, metrics, card) over the PyPI base.

Layout of ``models/artifacts/<version>/``::

    config.json          version, base model, LoRA settings, max lengths
    labels.json          label maps (index -> name) for both heads
    adapter.safetensors  tensors that differ from the base: LoRA adapters + LayerNorms + heads (mode
                         lora), or all weights but the word embeddings (mode full); see pack_state
    training.json        training settings, dev-metric history, split sizes
    metrics.json         dev- and test-split metrics (models.report)
    calibration.json     one temperature per head, fitted on dev (models.calibration)
    MODEL_CARD.md        with confusion_matrices.png (test split)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from models.data import LabelMaps

if TYPE_CHECKING:
    import torch

    from models.network import LoraConfig, MultiTaskModel

# torch, transformers and models.network are imported inside the functions that need them: the ONNX
# backends read the config and labels from here and must run where torch is not installed.

ADAPTER_FILE = "adapter.safetensors"


def new_model(labels: LabelMaps, lora: LoraConfig | None, attn_implementation: str = "sdpa",
              layers: int | None = None) -> MultiTaskModel:
    """Base encoder + heads; with ``lora`` adapters (mode lora), else all but word embeddings train (mode full).
    ``layers``: keep only the base's first N transformer layers (a smaller, faster student)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from models.base import base_model_path
    from models.network import MultiTaskModel, apply_lora, freeze_embeddings, freeze_for_lora

    # The base checkpoint carries a pooler we do not use; its "unexpected keys" report and the
    # weight-loading progress bar are noise in worker logs.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # Attention-probability dropout makes CPU SDPA fall back to the slow math kernel (training ran
    # ~2x slower); hidden-state dropout stays on as the regulariser.
    encoder = AutoModel.from_pretrained(
        str(base_model_path()), add_pooling_layer=False, attn_implementation=attn_implementation,
        attention_probs_dropout_prob=0.0,
    )
    if layers:
        if not 1 <= layers <= len(encoder.encoder.layer):
            raise ValueError(f"layers must be 1..{len(encoder.encoder.layer)}, not {layers}")
        encoder.encoder.layer = encoder.encoder.layer[:layers]
        encoder.config.num_hidden_layers = layers
    if lora is not None:
        apply_lora(encoder, lora)
    model = MultiTaskModel(encoder, len(labels.sentiment), len(labels.topic))
    if lora is not None:
        freeze_for_lora(model)
    else:
        freeze_embeddings(model)
    return model


DELTA_Q, DELTA_SCALE = ".delta_int8", ".delta_scale"


def base_parameters(model: MultiTaskModel) -> dict[str, torch.Tensor]:
    """The parameters that come from the pretrained checkpoint (so deltas to them are reproducible):
    the encoder's, not the randomly initialised heads or LoRA factors."""
    return {k: v.detach().clone() for k, v in model.named_parameters() if k.startswith("encoder.") and "lora_" not in k}


def pack_state(trained: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the artifact stores. A trained matrix that exists in the base model is stored as its
    difference from the base, int8 with one fp32 scale per row: fine-tuning moves weights by
    little, so the delta quantizes with an error below fp16 rounding of the weight itself, at half
    the bytes. Everything else (biases, LayerNorms, heads, LoRA factors) is stored in fp16."""
    import torch

    out = {}
    for name, t in trained.items():
        b = base.get(name)
        if b is not None and t.ndim == 2 and b.shape == t.shape:
            delta = t.detach().float() - b.float()
            scale = delta.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
            out[name + DELTA_Q] = torch.round(delta / scale).clamp(-127, 127).to(torch.int8).contiguous()
            out[name + DELTA_SCALE] = scale.squeeze(1).contiguous()
        else:
            out[name] = t.detach().to(torch.float16).contiguous()
    return out


def unpack_state(stored: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of ``pack_state``: fp32 tensors by parameter name."""
    out = {}
    for key, t in stored.items():
        if key.endswith(DELTA_SCALE):
            continue
        if key.endswith(DELTA_Q):
            name = key[: -len(DELTA_Q)]
            scale = stored[name + DELTA_SCALE].float().unsqueeze(1)
            out[name] = base[name].float() + t.float() * scale
        else:
            out[key] = t.float()
    return out


def save_artifact(model: MultiTaskModel, out_dir: Path, config: dict, labels: LabelMaps,
                  base: dict[str, torch.Tensor] | None = None) -> None:
    """``base``: the model's parameters before training (defaults to a fresh copy of the base)."""
    from safetensors.torch import save_file

    from models.network import trainable_state

    out_dir.mkdir(parents=True, exist_ok=True)
    if base is None:
        base = base_parameters(new_model(labels, _lora_config(config), layers=config.get("layers")))
    state = pack_state(trainable_state(model), base)
    save_file(state, str(out_dir / ADAPTER_FILE), metadata={"version": str(config["version"])})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "labels.json").write_text(json.dumps(labels.to_json(), indent=2) + "\n")


def _lora_config(cfg: dict) -> LoraConfig | None:
    from models.network import LoraConfig

    return LoraConfig(**{**cfg["lora"], "targets": tuple(cfg["lora"]["targets"])}) if cfg.get("lora") else None


def read_config(artifact_dir: Path) -> dict:
    p = Path(artifact_dir) / "config.json"
    if not p.is_file():
        raise FileNotFoundError(f"no model artifact at {artifact_dir} (config.json missing); run `marketpulse train`")
    return json.loads(p.read_text())


def read_labels(artifact_dir: Path) -> LabelMaps:
    return LabelMaps.from_json(json.loads((Path(artifact_dir) / "labels.json").read_text()))


def load_merged_model(artifact_dir: Path, attn_implementation: str = "sdpa") -> tuple[MultiTaskModel, dict, LabelMaps]:
    """Base weights + adapters, adapters folded into the Linear layers, fp32, eval mode."""
    from safetensors.torch import load_file

    from models.network import merge_lora, trainable_state

    cfg = read_config(artifact_dir)
    labels = read_labels(artifact_dir)
    model = new_model(labels, _lora_config(cfg), attn_implementation, layers=cfg.get("layers"))
    base = base_parameters(model)
    state = unpack_state(load_file(str(Path(artifact_dir) / ADAPTER_FILE)), base)
    expected = set(trainable_state(model))
    if set(state) != expected:
        raise ValueError(
            f"{artifact_dir}/{ADAPTER_FILE} does not match the network: "
            f"missing {sorted(expected - set(state))[:3]}, unexpected {sorted(set(state) - expected)[:3]}"
        )
    model.load_state_dict(state, strict=False)
    merge_lora(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, cfg, labels


def repack(artifact_dir: Path) -> None:
    """Rewrite an artifact's tensors in the current storage format (same values up to rounding).

    Command line: ``marketpulse model repack [ARTIFACT_DIR] [--config FILE]``."""
    from safetensors.torch import load_file, save_file

    cfg = read_config(artifact_dir)
    labels = read_labels(artifact_dir)
    base = base_parameters(new_model(labels, _lora_config(cfg), layers=cfg.get("layers")))
    trained = unpack_state(load_file(str(Path(artifact_dir) / ADAPTER_FILE)), base)
    save_file(pack_state(trained, base), str(Path(artifact_dir) / ADAPTER_FILE), metadata={"version": str(cfg["version"])})
