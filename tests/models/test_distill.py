"""models.distill and distillation in training: the soft loss, students with fewer layers, a student
initialised from its teacher, and a short distillation run end to end into a loadable artifact."""
from __future__ import annotations

import json

import pytest
import torch

from models.distill import distillation_loss


def test_the_soft_loss_is_zero_when_the_student_matches_the_teacher_and_grows_apart_from_it():
    torch.manual_seed(0)
    s, t = torch.randn(5, 3), torch.randn(5, 20)
    assert distillation_loss((s, t), (s, t), 2.0).item() == pytest.approx(0.0, abs=1e-6)
    near = distillation_loss((s + 0.1 * torch.randn(5, 3), t), (s, t), 2.0).item()
    far = distillation_loss((s + torch.randn(5, 3), t), (s, t), 2.0).item()
    assert 0 < near < far


def test_the_soft_loss_teaches_the_student_only():
    s = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    topic = torch.randn(4, 20)
    distillation_loss((s, topic), (teacher, topic), 2.0).backward()
    assert s.grad is not None and torch.any(s.grad != 0)
    assert teacher.grad is None or torch.all(teacher.grad == 0)


@pytest.fixture(scope="module")
def default_artifact(model_settings):
    return model_settings.artifact_dir


def test_a_student_keeps_the_first_layers_of_the_base_and_starts_as_its_teacher(default_artifact):
    from models.artifact import load_merged_model, new_model, read_labels
    from models.distill import init_from_teacher

    student = new_model(read_labels(default_artifact), None, layers=2)
    assert len(student.encoder.encoder.layer) == 2
    copied = init_from_teacher(student, default_artifact)
    teacher, _, _ = load_merged_model(default_artifact)
    q = "encoder.encoder.layer.1.attention.self.query.weight"
    assert torch.equal(student.state_dict()[q], teacher.state_dict()[q])
    assert torch.equal(student.sentiment_head.weight, teacher.sentiment_head.weight)
    assert copied == len(student.state_dict())  # every tensor of the smaller student has its twin
    with pytest.raises(ValueError, match="layers must be"):
        new_model(read_labels(default_artifact), None, layers=99)


def test_a_short_distillation_run_writes_a_student_artifact_that_loads_with_its_layers(default_artifact,
                                                                                        model_settings, tmp_path):
    from models.artifact import load_merged_model
    from models.train import TrainConfig, train

    if not (model_settings.data_dir / "sentiment_train.csv").is_file():
        pytest.skip(f"training data not found in {model_settings.data_dir}")
    cfg = TrainConfig(layers=1, teacher=str(default_artifact), limit_train=64, max_steps=2, evals_per_epoch=1)
    training = train(model_settings.data_dir, tmp_path, "student-test", cfg, "test", progress=False)
    assert training["steps_run"] == 2
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["layers"] == 1 and config["distilled_from"] == str(default_artifact)
    assert config["teacher_version"] == json.loads((default_artifact / "config.json").read_text())["version"]
    model, _, _ = load_merged_model(tmp_path)
    assert len(model.encoder.encoder.layer) == 1
    ids = torch.tensor([[101, 7592, 102]])
    s, t, _ = model(ids, torch.ones_like(ids))
    assert s.shape == (1, 3) and t.shape == (1, 20)
