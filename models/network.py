"""The multi-task network: one BERT encoder, mean pooling, two linear heads; LoRA adapters.

Two fine-tuning modes. ``lora``: only LoRA adapters, LayerNorms and heads are trained. ``full``:
every weight except the word-embedding table. In both, the word-embedding table (half of the
parameters) stays at the PyPI base values, so the committed artifact holds only what changed; ``merge_lora`` folds the adapters back into plain Linear layers
for export and fast inference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

LORA_TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


@dataclass
class LoraConfig:
    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0  # adapter input dropout nearly doubled the CPU step time
    targets: tuple[str, ...] = field(default_factory=lambda: LORA_TARGETS)


class LoRALinear(nn.Module):
    """y = base(x) + (dropout(x) A^T B^T) * alpha/r, with base frozen and B starting at zero."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / r
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(self.drop(x), self.lora_A), self.lora_B) * self.scale

    def merged(self) -> nn.Linear:
        lin = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(self.base.weight + (self.lora_B @ self.lora_A) * self.scale)
            if self.base.bias is not None:
                lin.bias.copy_(self.base.bias)
        return lin


def _matches(name: str, targets: tuple[str, ...]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def apply_lora(encoder: nn.Module, cfg: LoraConfig) -> None:
    for name, module in list(encoder.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and _matches(full, cfg.targets) and "pooler" not in full:
                setattr(module, child_name, LoRALinear(child, cfg.r, cfg.alpha, cfg.dropout))


def merge_lora(module: nn.Module) -> None:
    for parent in list(module.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, child_name, child.merged())


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class MultiTaskModel(nn.Module):
    """forward(input_ids, attention_mask) -> (sentiment_logits, topic_logits, normalised embedding)."""

    def __init__(self, encoder: nn.Module, n_sentiment: int, n_topic: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.sentiment_head = nn.Linear(hidden, n_sentiment)
        self.topic_head = nn.Linear(hidden, n_topic)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        # token_type_ids are all zero for single sentences; passing them explicitly keeps the exported
        # graph free of a buffer-expansion that depends on the batch shape.
        hidden = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        h = self.dropout(pooled)
        return self.sentiment_head(h), self.topic_head(h), F.normalize(pooled, p=2, dim=-1)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that differ from the base model: what the artifact stores."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def freeze_for_lora(model: MultiTaskModel) -> None:
    """Train adapters, LayerNorms and heads; everything else keeps the base weights."""
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n or "LayerNorm" in n or n.startswith(("sentiment_head", "topic_head")))


def freeze_embeddings(model: MultiTaskModel) -> None:
    """Full fine-tuning minus the word-embedding table (11.7M of 22.7M parameters): the table stays
    at the base values, so the artifact only needs the other weights."""
    for n, p in model.named_parameters():
        p.requires_grad_("word_embeddings" not in n)


def multitask_loss(
    sentiment_logits: torch.Tensor,
    topic_logits: torch.Tensor,
    sentiment_labels: torch.Tensor,
    topic_labels: torch.Tensor,
    sentiment_weight: torch.Tensor | None = None,
    topic_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sum of the two class-weighted cross-entropies, each over only the rows labelled for its task
    (label -100 elsewhere). A task with no labelled row in the batch contributes exactly zero."""
    total = sentiment_logits.new_zeros(())
    for logits, labels, weight in (
        (sentiment_logits, sentiment_labels, sentiment_weight),
        (topic_logits, topic_labels, topic_weight),
    ):
        mask = labels != -100
        if not bool(mask.any()):
            continue
        l, y = logits[mask], labels[mask]
        per_row = F.cross_entropy(l, y, reduction="none")
        w = weight[y] if weight is not None else torch.ones_like(per_row)
        total = total + (per_row * w).sum() / w.sum()
    return total
