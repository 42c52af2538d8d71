"""`marketpulse train`, `marketpulse classify`, `marketpulse explain` and the `marketpulse model` group
(build, report, repack). Heavy imports stay inside the commands so `marketpulse --help` does not load torch.

``build_cmd`` is also what ``python -m models.build`` runs (``make setup`` and the Dockerfile use it)."""
from __future__ import annotations

import io
import os
import shlex
import shutil
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from marketpulse.cli_errors import EXIT_USAGE, CommandError
from marketpulse.cli_options import ConfigOpt, load_settings as _settings
from marketpulse.schemas import SENTIMENTS
from models.backends import BACKENDS
from models.io import DataFormat

# Fixed choices as enums, so `--help` lists them and typos fail before anything loads.
Backend = Enum("Backend", {n.replace("-", "_"): n for n in ("auto", *BACKENDS)}, type=str)
Sentiment = Enum("Sentiment", {n: n for n in SENTIMENTS}, type=str)
# models.explain.METHODS, spelt out so that `--help` does not import numpy (a test keeps them equal)
ExplainMethod = Enum("ExplainMethod", {n: n for n in ("occlusion", "screened")}, type=str)


class TrainMode(str, Enum):
    full = "full"
    lora = "lora"


def build_cmd(
    force: bool = typer.Option(False, "--force", help="rebuild even when the stamp (version + adapter hash) matches"),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Build the derived model files (merged fp32, ONNX fp32 + int8) for the settings' artifact.

    Reads model.artifact_dir and writes model.build_dir/<version>/; a no-op when the stamp matches.
    `python -m models.build` runs this same command (make setup, Dockerfile).
    """
    from models.build import BuildUnavailable, build_paths, ensure_built, is_built

    ms = _settings(config).model
    if not (Path(ms.artifact_dir) / "config.json").is_file():
        typer.echo(f"models.build: no trained artifact at {ms.artifact_dir}; run `marketpulse train --promote` first",
                   err=True)
        raise typer.Exit(1)
    if not force and is_built(ms):
        typer.echo(f"models.build: {build_paths(ms)['root']} is up to date")
        return
    try:
        ensure_built(ms, force=force, log=typer.echo)
    except BuildUnavailable as exc:  # a lean install (no train extra): say what is missing, no traceback
        typer.echo(f"models.build: {exc}", err=True)
        raise typer.Exit(1) from None


def report_cmd(
    artifact_dir: Optional[Path] = typer.Argument(None, metavar="ARTIFACT_DIR", help="artifact to measure (default: the settings' model.artifact_dir)"),
    skip_export: bool = typer.Option(False, "--skip-export", help="measure torch fp32 only (no ONNX build, no int8 decision)"),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Re-measure an artifact on its dev and test splits, refit its calibration on dev; rewrite its
    metrics.json, calibration.json and MODEL_CARD.md.

    Uses the settings' model.data_dir, build_dir and max_length; builds the ONNX files if needed.
    """
    ms = _settings(config).model
    artifact = Path(artifact_dir or ms.artifact_dir)
    missing = [f for f in ("config.json", "training.json") if not (artifact / f).is_file()]
    if missing:
        typer.echo(f"error: {artifact} is not a trained artifact ({', '.join(missing)} missing)", err=True)
        raise typer.Exit(1)
    from models.report import finalize, metrics_table

    metrics = finalize(artifact, ms.data_dir, ms.build_dir, ms.max_length, run_export=not skip_export)
    typer.echo(metrics_table(metrics))
    typer.echo(f"wrote {artifact / 'metrics.json'} and {artifact / 'MODEL_CARD.md'}")


def repack_cmd(
    artifact_dir: Optional[Path] = typer.Argument(None, metavar="ARTIFACT_DIR", help="artifact to rewrite in place (default: the settings' model.artifact_dir)"),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Rewrite an artifact's tensors in the current storage format (in place).

    Same values up to rounding; config, labels, metrics and card are left as they are.
    """
    ms = _settings(config).model
    artifact = Path(artifact_dir or ms.artifact_dir)
    if not (artifact / "config.json").is_file():
        typer.echo(f"error: no model artifact at {artifact} (config.json missing)", err=True)
        raise typer.Exit(1)
    from models.artifact import ADAPTER_FILE, repack

    repack(artifact)
    typer.echo(f"repacked {artifact / ADAPTER_FILE}")


def _exit_if_rows_failed(stats: dict) -> None:
    """Exit 4 when some rows failed (the others are done and written): the count and the first."""
    if stats["errors"]:
        typer.echo(f"{stats['errors']} of {stats['rows']} rows failed (first: {stats['first_error']})", err=True)
        raise typer.Exit(4)


def _reader_gone() -> typer.Exit:
    """The reader of stdout stopped (`| head`): end quietly with the shell's SIGPIPE status, with
    stdout pointed at /dev/null so the interpreter's final flush does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
    return typer.Exit(141)


def register(app: typer.Typer) -> None:
    """Add this room's commands to the main CLI."""
    model_app = typer.Typer(no_args_is_help=True,
                            help="Model artifact upkeep: build the derived files, re-measure, repack.")
    app.add_typer(model_app, name="model")
    model_app.command("build")(build_cmd)
    model_app.command("report")(report_cmd)
    model_app.command("repack")(repack_cmd)

    @app.command("train")
    def train_cmd(
        version: str = typer.Option("mt-minilm-v1", help="artifact version; output goes to models/artifacts/<version>/"),
        seed: int = typer.Option(13, help="seed for the split, sampling and init"),
        epochs: int = typer.Option(3, min=1),
        batch_size: int = typer.Option(32, min=1),
        mode: TrainMode = typer.Option(TrainMode.full, help="full: all but word embeddings (~11 MB artifact) | lora: adapters (~1.4 MB, lower dev F1)"),
        lr: Optional[float] = typer.Option(None, help="encoder learning rate (default 1e-3 lora, 1e-4 full)"),
        head_lr: float = typer.Option(2e-3, help="learning rate of the two heads"),
        train_max_length: int = typer.Option(96, min=8, help="token cap while training (tweets: p99 = 87)"),
        patience: int = typer.Option(2, min=1, help="dev evaluations without macro-F1 gain before stopping"),
        max_steps: int = typer.Option(0, min=0, help="stop after N steps (0 = no cap); for timing runs"),
        limit_train: int = typer.Option(0, min=0, help="use only N training rows (0 = all); for smoke runs"),
        output_dir: Optional[Path] = typer.Option(None, help="override the output directory"),
        promote: bool = typer.Option(False, "--promote", help="also copy the result to the settings' artifact_dir, "
                                     "unless its CPU model's dev accuracy falls more than 0.01 below the one there"),
        force_promote: bool = typer.Option(False, "--force-promote", help="--promote even when it falls further"),
        skip_export: bool = typer.Option(False, help="skip ONNX export + int8 check after training"),
        layers: int = typer.Option(0, min=0, help="keep only the base's first N transformer layers (0 = all): "
                                                  "a faster student, best with --teacher"),
        teacher: Optional[Path] = typer.Option(None, help="artifact directory of a trained model whose logits "
                                                          "teach both heads of every row (distillation)"),
        temperature: float = typer.Option(2.0, min=0.1, help="distillation temperature"),
        distill_weight: float = typer.Option(1.0, min=0.0, help="weight of the teacher's soft loss"),
        test_fraction: float = typer.Option(0.1, min=0.0, max=0.5, help="share of each file held out for the "
                                            "final report only (stratified; 0 = none)"),
        clean_text: bool = typer.Option(True, "--clean-text/--raw-text", help="train and measure on texts cleaned "
                                        "as the worker cleans them (URLs and markup out), or as they are in the files"),
        config: Optional[Path] = ConfigOpt,
    ) -> None:
        """Fine-tune the two-head classifier on the financial-tweets data (test and dev splits = 10% each,
        stratified; the dev split stops training, the test split is only reported)."""
        from models.train import TrainConfig, train

        s = _settings(config).model
        mode = TrainMode(mode).value
        out = output_dir or Path(__file__).resolve().parent / "artifacts" / version
        if lr is None:
            lr = 1e-3 if mode == "lora" else 1e-4
        cfg = TrainConfig(seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr, mode=mode,
                          train_max_length=train_max_length, patience=patience, max_steps=max_steps,
                          limit_train=limit_train, layers=layers, teacher=str(teacher) if teacher else "",
                          temperature=temperature, distill_weight=distill_weight, test_fraction=test_fraction,
                          clean_text=clean_text)
        command = "marketpulse " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        t0 = time.time()
        train(s.data_dir, out, version, cfg, command)
        from models.report import finalize  # imported late: training alone does not need export deps

        metrics = finalize(out, s.data_dir, s.build_dir, s.max_length, run_export=not skip_export)
        typer.echo(f"artifact: {out}  ({time.time() - t0:.0f}s)")
        for split, m in (("dev", metrics["torch_fp32"]), ("test", metrics.get("test", {}).get("torch_fp32"))):
            for task in ("sentiment", "topic") if m else ():
                t = m[task]
                typer.echo(f"  {split:4s} {task:9s} acc={t['accuracy']:.4f} macro-F1={t['macro_f1']:.4f} "
                           f"weighted-F1={t['weighted_f1']:.4f}")
        if promote or force_promote:
            from models.report import promotion_check

            dest = Path(s.artifact_dir)
            ok, why = promotion_check(metrics, dest)
            typer.echo(f"promotion: {why}")
            if not ok and not force_promote:
                typer.echo(f"not promoted: {out} stays where it is (--force-promote copies it anyway)", err=True)
                raise typer.Exit(1)
            if dest.resolve() != out.resolve():
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(out, dest)
                typer.echo(f"promoted to {dest}")

    @app.command("classify")
    def classify_cmd(
        input: str = typer.Option(..., "--input", "-i", metavar="FILE",
                                  help="CSV/TSV, JSONL or Parquet file; '-' reads stdin"),
        output: str = typer.Option(..., "--output", "-o", metavar="FILE",
                                   help="where the results go, one row per input row in input order; '-' writes stdout"),
        input_format: Optional[DataFormat] = typer.Option(None, "--format", "-f",
                                                          help="input format (default: from the extension; stdin: jsonl)"),
        output_format: Optional[DataFormat] = typer.Option(
            None, "--output-format",
            help="output format (default: from the extension; stdout: jsonl). csv/tsv flatten the scores: "
                 "sentiment_score_<label> per class and topic_score of the top topic"),
        text_column: str = typer.Option("text", help="column (or JSON field) holding the text"),
        id_column: Optional[str] = typer.Option(None, help="column copied into the output as 'id'"),
        title_column: Optional[str] = typer.Option(None, help="column with a title, put before the text as the stream worker does"),
        backend: Backend = typer.Option(Backend.auto, help="auto: fastest available (see docs/models.md)"),
        batch_size: int | None = typer.Option(None, min=1, help="rows per forward pass, length-sorted "
                                                                  "(default: 64 on a CPU, 32 on a GPU)"),
        chunk_size: int = typer.Option(512, min=1, help="rows read, classified and written per step"),
        explain: bool = typer.Option(False, "--explain", help="add the words that drove negative predictions"),
        config: Optional[Path] = ConfigOpt,
    ) -> None:
        """Classify texts offline (sentiment + topic), streaming chunk by chunk.

        Each output row: sentiment, sentiment_scores, topic, topic_scores (top 3,
        as {label, score}), model_version; id with --id-column. A row that cannot
        be classified gets line (1-based line in the file) and error instead.
        Texts are cleaned as the stream worker cleans them (markup, URLs).

        Exit codes: 0 every row classified; 2 bad input, nothing classified;
        4 some rows failed (the others are classified, all are written).
        """
        from models.classify import classify_file
        from models.io import Columns, InputError

        ms = _settings(config).model
        try:
            stats = classify_file(ms, input, output, input_format=input_format, output_format=output_format,
                                  columns=Columns(text_column, id_column, title_column), backend=backend.value,
                                  batch_size=batch_size, explain=explain, chunk_size=chunk_size,
                                  progress=sys.stderr.isatty())
        except (InputError, ValueError, FileNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except BrokenPipeError:
            raise _reader_gone() from None
        # Status goes to stderr so that `-o -` leaves stdout to the data.
        typer.echo(f"{stats['rows']} rows -> {stats['output']} (backend {stats['backend']}, "
                   f"{stats['texts_per_s']:.0f} texts/s)", err=True)
        _exit_if_rows_failed(stats)

    @app.command("explain")
    def explain_cmd(
        texts: Optional[list[str]] = typer.Argument(None, metavar="TEXT", show_default=False,
                                                    help="texts to explain (or --input)"),
        input: Optional[str] = typer.Option(None, "--input", "-i", metavar="FILE",
                                            help="CSV/TSV, JSONL or Parquet file; '-' reads stdin"),
        input_format: Optional[DataFormat] = typer.Option(None, "--format", "-f",
                                                          help="input format (default: from the extension; stdin: jsonl)"),
        text_column: str = typer.Option("text", help="column (or JSON field) holding the text"),
        id_column: Optional[str] = typer.Option(None, help="column copied into the output as 'id'"),
        title_column: Optional[str] = typer.Option(None, help="column with a title, put before the text as the stream worker does"),
        label: Optional[Sentiment] = typer.Option(None, "--label",
                                                  help="explain this sentiment for every text (default: each text's "
                                                       "predicted sentiment)"),
        top_k: int = typer.Option(5, "--top-k", min=1, help="words per explanation"),
        method: Optional[ExplainMethod] = typer.Option(None, "--method",
                                                       help="occlusion (default): drop every word in turn; screened: "
                                                            "in long texts only the words that score highest alone"),
        backend: Backend = typer.Option(Backend.auto, help="auto: fastest available (see docs/models.md)"),
        batch_size: int | None = typer.Option(None, min=1, help="rows per forward pass, length-sorted "
                                                                  "(default: 64 on a CPU, 32 on a GPU)"),
        config: Optional[Path] = ConfigOpt,
    ) -> None:
        """Explain texts: the words that drove their sentiment, as JSONL on stdout.

        Each output row: text (as the model saw it: cleaned as the stream worker
        cleans it), sentiment, sentiment_scores, topic, topic_scores, model_version,
        explained (the sentiment explained: the predicted one unless --label),
        explanation (up to --top-k words whose removal lowers P(explained) the
        most, best first) and explanation_weights (by how much); id with
        --id-column. A row that cannot be explained gets line and error instead.

        Exit codes: 0 every text explained; 2 bad input, nothing explained;
        4 some rows failed (the others are explained, all are written).
        """
        from models.explain_rows import CHUNK_ROWS, argument_rows, explain_chunks
        from models.io import STDIO, Columns, InputError, RecordWriter, open_rows, resolve_format

        if texts and input is not None:
            raise CommandError("give texts as arguments or --input FILE, not both", EXIT_USAGE)
        if not texts and input is None:
            raise CommandError("no texts: give them as arguments, or --input FILE ('-' reads stdin)", EXIT_USAGE)
        ms = _settings(config).model
        columns = Columns(text_column, id_column, title_column)
        out = RecordWriter(STDIO, DataFormat.jsonl)
        options = dict(backend=backend.value, batch_size=batch_size, top_k=top_k,
                       label=label.value if label else None, method=method.value if method else None)
        try:
            if texts:
                stats = explain_chunks(ms, iter([argument_rows(texts)]), out.write, unit="argument", **options)
            else:
                with open_rows(input, resolve_format(input, input_format, "--format"), columns) as source:
                    stats = explain_chunks(ms, source.chunks(CHUNK_ROWS), out.write, with_id=id_column is not None,
                                           unit=source.unit, **options)
        except InputError as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
        except BrokenPipeError:
            raise _reader_gone() from None
        typer.echo(f"{stats['rows'] - stats['errors']} of {stats['rows']} texts explained (backend "
                   f"{stats['backend']}, {stats['method']}, {stats['texts_per_s']:.1f} texts/s)", err=True)
        _exit_if_rows_failed(stats)
