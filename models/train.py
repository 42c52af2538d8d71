"""Multi-task fine-tuning: LoRA adapters on the shared encoder, two masked, class-weighted losses,
length-grouped batches with dynamic padding, early stopping on mean dev macro-F1; optionally
distilled from a teacher artifact (models.distill) into a student with fewer layers."""
from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from models.artifact import new_model, read_config, save_artifact
from models.base import BASE_MODEL_NAME, BASE_MODEL_PACKAGE, load_tokenizer
from models.batching import run_batched, softmax, tokenize
from models.data import DEV_FRACTION, SPLIT_SEED, class_weights, length_grouped_batches, load_splits, pad_batch
from models.evaluate import evaluate, selection_score
from models.machine import cpu_name
from models.network import LoraConfig, multitask_loss, trainable_state

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    seed: int = SPLIT_SEED
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    train_max_length: int = 96
    dev_fraction: float = DEV_FRACTION
    test_fraction: float = 0.1  # held out for the final report only (models.data)
    clean_text: bool = True  # train and measure on texts cleaned as they are served (models.data.load_splits)
    evals_per_epoch: int = 2
    patience: int = 2
    max_steps: int = 0  # >0: stop after this many steps (timing runs, smoke tests)
    limit_train: int = 0  # >0: use only this many training rows (smoke tests)
    class_weight_power: float = 0.5
    threads: int = 2
    mode: str = "full"  # full | lora (see models.network)
    lora_r: int = 16
    lora_alpha: float = 32.0
    layers: int = 0  # >0: keep only the base's first N transformer layers
    teacher: str = ""  # artifact directory whose logits teach both heads of every row (models.distill)
    temperature: float = 2.0
    distill_weight: float = 1.0  # soft loss weight next to the hard, class-weighted loss


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def torch_prob_fn(model, tokenizer, max_length: int, batch_size: int = 128):
    def fn(texts: list[str]):
        ids = tokenize(tokenizer, texts, max_length)

        @torch.inference_mode()
        def run(i, m):
            s, t, _ = model(torch.from_numpy(i), torch.from_numpy(m))
            return softmax(s.float().numpy()), softmax(t.float().numpy())

        return run_batched(run, ids, batch_size)

    return fn


def train(data_dir: Path, out_dir: Path, version: str, cfg: TrainConfig, command: str, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    t_start = time.time()
    torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    splits = load_splits(data_dir, cfg.dev_fraction, cfg.seed, cfg.test_fraction, cfg.clean_text)
    train_rows = splits.train
    if cfg.limit_train:
        train_rows = random.Random(cfg.seed).sample(train_rows, min(cfg.limit_train, len(train_rows)))
    labels = splits.labels
    tok = load_tokenizer()
    if cfg.mode not in ("lora", "full"):
        raise ValueError(f"mode must be lora or full, not {cfg.mode!r}")
    lora = LoraConfig(r=cfg.lora_r, alpha=cfg.lora_alpha) if cfg.mode == "lora" else None
    model = new_model(labels, lora, layers=cfg.layers or None)

    token_ids = tokenize(tok, [e.text for e in train_rows], cfg.train_max_length)
    y_sent = np.array([e.sentiment for e in train_rows], dtype=np.int64)
    y_top = np.array([e.topic for e in train_rows], dtype=np.int64)
    w_sent = torch.from_numpy(class_weights(y_sent.tolist(), len(labels.sentiment), cfg.class_weight_power))
    w_top = torch.from_numpy(class_weights(y_top.tolist(), len(labels.topic), cfg.class_weight_power))
    soft = None
    if cfg.teacher:
        from models.distill import init_from_teacher, teacher_logits

        t0 = time.time()
        soft = tuple(torch.from_numpy(a) for a in teacher_logits(Path(cfg.teacher), token_ids))
        copied = init_from_teacher(model, Path(cfg.teacher))
        log.info("teacher %s: logits for %d rows in %.0f s; %d tensors copied into the student",
                 cfg.teacher, len(token_ids), time.time() - t0, copied)

    head_params = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith(("sentiment_head", "topic_head"))]
    body_params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(("sentiment_head", "topic_head"))]
    opt = torch.optim.AdamW(
        [{"params": body_params, "lr": cfg.lr}, {"params": head_params, "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train_rows) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    warmup = max(1, int(total_steps * cfg.warmup_fraction))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    )
    eval_every = max(1, steps_per_epoch // cfg.evals_per_epoch)
    dev_fn = torch_prob_fn(model, tok, cfg.train_max_length)

    best_score, best_state, best_step, bad_evals = -1.0, None, 0, 0
    history: list[dict] = []
    step = 0
    stop = False
    bar = tqdm(total=total_steps, desc="train", disable=not progress, mininterval=5)
    for epoch in range(cfg.epochs):
        model.train()
        for batch in length_grouped_batches([len(t) for t in token_ids], cfg.batch_size, cfg.seed + epoch):
            ids, mask = pad_batch([token_ids[i] for i in batch])
            s_logits, t_logits, _ = model(torch.from_numpy(ids), torch.from_numpy(mask))
            loss = multitask_loss(
                s_logits, t_logits, torch.from_numpy(y_sent[batch]), torch.from_numpy(y_top[batch]), w_sent, w_top
            )
            if soft is not None:
                from models.distill import distillation_loss

                loss = loss + cfg.distill_weight * distillation_loss(
                    (s_logits, t_logits), (soft[0][batch], soft[1][batch]), cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(body_params + head_params, 1.0)
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", epoch=epoch + 1)
            last = step >= total_steps
            # the last step is evaluated too, unless an evaluation just happened
            if step % eval_every == 0 or (last and step % eval_every > eval_every // 4):
                model.eval()
                m = evaluate(dev_fn, splits.dev_sentiment, splits.dev_topic, labels)
                model.train()
                score = selection_score(m)
                history.append({
                    "step": step, "epoch": round(step / steps_per_epoch, 2), "score": round(score, 4),
                    "sentiment_macro_f1": m["sentiment"]["macro_f1"], "sentiment_weighted_f1": m["sentiment"]["weighted_f1"],
                    "topic_macro_f1": m["topic"]["macro_f1"], "topic_accuracy": m["topic"]["accuracy"],
                    "elapsed_s": round(time.time() - t_start, 1),
                })
                log.info("dev %s", history[-1])
                bar.write(f"dev @ step {step}: {json.dumps(history[-1])}")
                if score > best_score:
                    best_score, best_step, bad_evals = score, step, 0
                    best_state = {k: v.clone() for k, v in trainable_state(model).items()}
                else:
                    bad_evals += 1
                    if bad_evals >= cfg.patience:
                        bar.write(f"early stop: no dev macro-F1 gain in {cfg.patience} evaluations")
                        stop = True
            if stop or last:
                stop = True
                break
        if stop:
            break
    bar.close()
    train_s = time.time() - t_start

    model.load_state_dict(best_state, strict=False)
    model.eval()
    config = {
        "version": version,
        "base_model": BASE_MODEL_NAME,
        "base_package": BASE_MODEL_PACKAGE,
        "architecture": "BertModel encoder, mean pooling, linear sentiment + topic heads",
        "mode": cfg.mode,
        "lora": {**asdict(lora), "targets": list(lora.targets)} if lora else None,
        "layers": cfg.layers or None,
        "distilled_from": cfg.teacher or None,
        # the path may later hold another model (``default`` is promoted over); the version names it
        "teacher_version": read_config(Path(cfg.teacher))["version"] if cfg.teacher else None,
        "train_max_length": cfg.train_max_length,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    save_artifact(model, out_dir, config, labels)
    training = {
        "config": asdict(cfg),
        "command": command,
        "train_rows": len(train_rows),
        "dev_rows": {"sentiment": len(splits.dev_sentiment), "topic": len(splits.dev_topic)},
        "test_rows": {"sentiment": len(splits.test_sentiment), "topic": len(splits.test_topic)},
        "best_step": best_step,
        "steps_run": step,
        "steps_per_epoch": steps_per_epoch,
        "wall_time_s": round(train_s, 1),
        "history": history,
        "machine": {"cpu": cpu_name(), "threads": cfg.threads},
    }
    (out_dir / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    return training
