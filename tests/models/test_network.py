"""Network: masked multi-task loss, LoRA adapters and their merge, mean pooling. Uses a tiny random
BERT so no weights are needed."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel

from models.network import (
    LoraConfig,
    LoRALinear,
    MultiTaskModel,
    apply_lora,
    freeze_for_lora,
    mean_pool,
    merge_lora,
    multitask_loss,
    trainable_state,
)


def test_loss_only_counts_rows_labelled_for_each_task():
    torch.manual_seed(0)
    s_logits, t_logits = torch.randn(4, 3), torch.randn(4, 5)
    s_y = torch.tensor([0, 2, -100, -100])
    t_y = torch.tensor([-100, -100, 4, 1])
    loss = multitask_loss(s_logits, t_logits, s_y, t_y)
    expected = F.cross_entropy(s_logits[:2], s_y[:2]) + F.cross_entropy(t_logits[2:], t_y[2:])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_masked_rows_get_no_gradient():
    s_logits = torch.randn(4, 3, requires_grad=True)
    t_logits = torch.randn(4, 5, requires_grad=True)
    multitask_loss(s_logits, t_logits, torch.tensor([0, 2, -100, -100]), torch.tensor([-100, -100, 4, 1])).backward()
    assert torch.all(s_logits.grad[2:] == 0) and torch.any(s_logits.grad[:2] != 0)
    assert torch.all(t_logits.grad[:2] == 0) and torch.any(t_logits.grad[2:] != 0)


def test_batch_with_a_single_task_is_finite_and_ignores_the_other_head():
    s_logits, t_logits = torch.randn(3, 3), torch.randn(3, 5)
    loss = multitask_loss(s_logits, t_logits, torch.tensor([1, 0, 2]), torch.full((3,), -100))
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(F.cross_entropy(s_logits, torch.tensor([1, 0, 2])).item(), rel=1e-6)


def test_class_weights_change_the_loss_as_a_weighted_mean():
    s_logits, t_logits = torch.randn(3, 3), torch.randn(3, 5)
    s_y, t_y = torch.tensor([0, 0, 2]), torch.full((3,), -100)
    w = torch.tensor([1.0, 1.0, 5.0])
    got = multitask_loss(s_logits, t_logits, s_y, t_y, sentiment_weight=w).item()
    assert got == pytest.approx(F.cross_entropy(s_logits, s_y, weight=w).item(), rel=1e-6)
    assert got != pytest.approx(multitask_loss(s_logits, t_logits, s_y, t_y).item(), rel=1e-3)


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 5.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 3.0]]


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32)
    enc = BertModel(cfg, add_pooling_layer=False)
    apply_lora(enc, LoraConfig(r=4, alpha=8))
    model = MultiTaskModel(enc, 3, 5)
    freeze_for_lora(model)
    for m in model.modules():  # adapters start as a no-op; give them a real effect to test the merge
        if isinstance(m, LoRALinear):
            torch.nn.init.normal_(m.lora_B, std=0.2)
    return model.eval()


def test_lora_wraps_every_attention_and_ffn_linear(tiny_model):
    wrapped = [n for n, m in tiny_model.named_modules() if isinstance(m, LoRALinear)]
    assert len(wrapped) == 2 * 6  # q, k, v, attention out, intermediate, output per layer


def test_only_adapters_layernorms_and_heads_are_trained(tiny_model):
    names = set(trainable_state(tiny_model))
    assert names and all(("lora_" in n) or ("LayerNorm" in n) or n.startswith(("sentiment_head", "topic_head")) for n in names)
    assert "encoder.embeddings.word_embeddings.weight" not in names


def test_merged_model_computes_the_same_outputs(tiny_model):
    ids = torch.randint(1, 50, (3, 7))
    mask = torch.ones_like(ids)
    mask[2, 4:] = 0
    with torch.no_grad():
        before = tiny_model(ids, mask)
        merge_lora(tiny_model)
        after = tiny_model(ids, mask)
    assert not any(isinstance(m, LoRALinear) for m in tiny_model.modules())
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_embedding_output_is_unit_length(tiny_model):
    ids = torch.randint(1, 50, (2, 5))
    with torch.no_grad():
        _, _, emb = tiny_model(ids, torch.ones_like(ids))
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
