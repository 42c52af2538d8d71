"""`marketpulse train` and `marketpulse classify`. Heavy imports stay inside the commands so
`marketpulse --help` does not load torch."""
from __future__ import annotations

import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from marketpulse.cli_options import ConfigOpt, load_settings as _settings


def register(app: typer.Typer) -> None:
    """Add this room's commands to the main CLI."""

    @app.command("train")
    def train_cmd(
        version: str = typer.Option("mt-minilm-v1", help="artifact version; output goes to models/artifacts/<version>/"),
        seed: int = typer.Option(13, help="seed for the split, sampling and init"),
        epochs: int = typer.Option(3, min=1),
        batch_size: int = typer.Option(32, min=1),
        mode: str = typer.Option("full", help="full: all but word embeddings (~11 MB artifact) | lora: adapters (~1.4 MB, lower dev F1)"),
        lr: Optional[float] = typer.Option(None, help="encoder learning rate (default 1e-3 lora, 1e-4 full)"),
        head_lr: float = typer.Option(2e-3, help="learning rate of the two heads"),
        train_max_length: int = typer.Option(96, min=8, help="token cap while training (tweets: p99 = 87)"),
        patience: int = typer.Option(2, min=1, help="dev evaluations without macro-F1 gain before stopping"),
        max_steps: int = typer.Option(0, min=0, help="stop after N steps (0 = no cap); for timing runs"),
        limit_train: int = typer.Option(0, min=0, help="use only N training rows (0 = all); for smoke runs"),
        output_dir: Optional[Path] = typer.Option(None, help="override the output directory"),
        promote: bool = typer.Option(False, "--promote", help="also copy the result to the settings' artifact_dir"),
        skip_export: bool = typer.Option(False, help="skip ONNX export + int8 check after training"),
        config: Optional[Path] = ConfigOpt,
    ) -> None:
        """Fine-tune the two-head classifier on the financial-tweets data (dev split = 10%, stratified)."""
        from models.train import TrainConfig, train

        s = _settings(config).model
        out = output_dir or Path(__file__).resolve().parent / "artifacts" / version
        if lr is None:
            lr = 1e-3 if mode == "lora" else 1e-4
        cfg = TrainConfig(seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr, mode=mode,
                          train_max_length=train_max_length, patience=patience, max_steps=max_steps,
                          limit_train=limit_train)
        command = "marketpulse " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        t0 = time.time()
        train(s.data_dir, out, version, cfg, command)
        from models.report import finalize  # imported late: training alone does not need export deps

        metrics = finalize(out, s.data_dir, s.build_dir, s.max_length, run_export=not skip_export)
        typer.echo(f"artifact: {out}  ({time.time() - t0:.0f}s)")
        for task in ("sentiment", "topic"):
            m = metrics["torch_fp32"][task]
            typer.echo(f"  {task:9s} acc={m['accuracy']:.4f} macro-F1={m['macro_f1']:.4f} weighted-F1={m['weighted_f1']:.4f}")
        if promote:
            dest = Path(s.artifact_dir)
            if dest.resolve() != out.resolve():
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(out, dest)
                typer.echo(f"promoted to {dest}")

    @app.command("classify")
    def classify_cmd(
        input: Path = typer.Option(..., "--input", "-i", exists=True, dir_okay=False, help="CSV with a 'text' column or JSONL with a 'text' field"),
        output: Path = typer.Option(..., "--output", "-o", help="JSONL: one object per input row, input order"),
        backend: str = typer.Option("auto", help="auto | torch | onnx | onnx-int8 | tensorrt"),
        batch_size: int = typer.Option(32, min=1, help="rows per forward pass (length-sorted)"),
        explain: bool = typer.Option(False, "--explain", help="add the words that drove negative predictions"),
        config: Optional[Path] = ConfigOpt,
    ) -> None:
        """Classify texts offline (sentiment + topic). Rows without usable text get an 'error' object."""
        from models.classify import classify_file
        from models.io import InputError

        ms = _settings(config).model
        try:
            stats = classify_file(ms, input, output, backend=backend, batch_size=batch_size, explain=explain)
        except (InputError, ValueError, FileNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"{stats['rows']} rows -> {output} ({stats['errors']} errors, backend {stats['backend']}, "
                   f"{stats['texts_per_s']:.0f} texts/s)")
