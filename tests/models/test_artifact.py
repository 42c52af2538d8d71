"""Artifact storage: trained matrices as int8 deltas over the base weights, the rest fp16."""
from __future__ import annotations

import torch

from models.artifact import DELTA_Q, DELTA_SCALE, pack_state, unpack_state


def _weights():
    g = torch.Generator().manual_seed(0)
    base = {"enc.w": torch.randn(64, 32, generator=g) * 0.05, "enc.ln": torch.ones(32)}
    trained = {
        "enc.w": base["enc.w"] + torch.randn(64, 32, generator=g) * 1e-3,  # fine-tuned matrix
        "enc.ln": base["enc.ln"] + 0.01,  # 1-D: stored as is
        "head.w": torch.randn(3, 32, generator=g),  # not in the base: stored as is
    }
    return base, trained


def test_matrices_from_the_base_are_stored_as_int8_deltas():
    base, trained = _weights()
    packed = pack_state(trained, base)
    assert packed["enc.w" + DELTA_Q].dtype == torch.int8
    assert packed["enc.w" + DELTA_SCALE].shape == (64,)
    assert "enc.w" not in packed
    assert packed["enc.ln"].dtype == torch.float16 and packed["head.w"].dtype == torch.float16


def test_round_trip_error_is_within_half_a_quantization_step():
    base, trained = _weights()
    packed = pack_state(trained, base)
    restored = unpack_state(packed, base)
    assert set(restored) == set(trained)
    step = packed["enc.w" + DELTA_SCALE].unsqueeze(1)
    err = (restored["enc.w"] - trained["enc.w"]).abs()
    assert torch.all(err <= step / 2 + 1e-7)
    # no worse than storing the fine-tuned weight itself in fp16
    fp16_err = (trained["enc.w"].half().float() - trained["enc.w"]).abs()
    assert err.max() <= fp16_err.max()
    torch.testing.assert_close(restored["head.w"], trained["head.w"], atol=2e-3, rtol=1e-3)


def test_untouched_matrix_restores_exactly():
    base, trained = _weights()
    trained["enc.w"] = base["enc.w"].clone()
    restored = unpack_state(pack_state(trained, base), base)
    torch.testing.assert_close(restored["enc.w"], base["enc.w"], atol=0, rtol=0)
