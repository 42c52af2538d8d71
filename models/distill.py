"""Knowledge distillation: a teacher artifact's logits on every training row become soft targets.

Each training row carries the label of one task only; the teacher labels both heads of every row, so
the student learns topic from sentiment rows and the reverse. The soft loss is the KL divergence
between temperature-softened distributions, scaled by T^2 so its gradients keep the hard loss's
size whatever the temperature (Hinton et al., 2015).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.data import pad_batch


def teacher_logits(artifact_dir: Path, token_ids: list[list[int]], batch_size: int = 128,
                   progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(sentiment, topic) logits of the teacher for each row of ``token_ids`` (tokenized with the
    student's tokenizer, which must be the teacher's too), in input order."""
    from models.artifact import load_merged_model, read_config
    from models.base import BASE_MODEL_NAME

    base = read_config(artifact_dir).get("base_model")
    if base != BASE_MODEL_NAME:
        raise ValueError(f"teacher {artifact_dir} is built on {base}, not {BASE_MODEL_NAME}: its tokens differ")

    teacher, _, labels = load_merged_model(artifact_dir)
    s_out = np.zeros((len(token_ids), len(labels.sentiment)), np.float32)
    t_out = np.zeros((len(token_ids), len(labels.topic)), np.float32)
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))  # little padding per pass
    with torch.inference_mode():
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            ids, mask = pad_batch([token_ids[i] for i in idx])
            s, t, _ = teacher(torch.from_numpy(ids), torch.from_numpy(mask))
            s_out[idx], t_out[idx] = s.numpy(), t.numpy()
            if progress:
                progress(len(idx))
    return s_out, t_out


def distillation_loss(student: tuple[torch.Tensor, torch.Tensor], teacher: tuple[torch.Tensor, torch.Tensor],
                      temperature: float) -> torch.Tensor:
    """Sum over the two heads of T^2 * KL(teacher_T || student_T), averaged over the rows."""
    total = student[0].new_zeros(())
    for s, t in zip(student, teacher):
        target = F.softmax(t.detach() / temperature, dim=-1)  # the teacher is not trained by it
        total = total + F.kl_div(F.log_softmax(s / temperature, dim=-1), target,
                                 reduction="batchmean") * temperature ** 2
    return total


def init_from_teacher(student: torch.nn.Module, artifact_dir: Path) -> int:
    """Copy the teacher's weights into the student wherever a parameter has the same name and shape
    (a student with fewer layers of the same base starts as the teacher's first layers); returns how
    many tensors were copied. A teacher of another architecture copies nothing."""
    from models.artifact import load_merged_model

    teacher, _, _ = load_merged_model(artifact_dir)
    theirs = teacher.state_dict()
    mine = student.state_dict()
    same = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
    student.load_state_dict(same, strict=False)
    return len(same)
