"""`marketpulse` subcommands of the consumers room."""
from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path

import typer

from marketpulse.cli_errors import EXIT_USAGE, CommandError, not_utf8
from marketpulse.cli_options import ConfigOpt, load_settings


class _Aggregate(str, Enum):
    """`detect --aggregate`: how rows with the same timestamp are merged (and so the series kind)."""

    auto = "auto"
    sum = "sum"
    mean = "mean"


class _Source(str, Enum):
    """`replay --source`: where the historical events come from."""

    es = "es"
    kafka = "kafka"


class _Embedder(str, Enum):
    """`--embedder`: the text embeddings emerging topics are clustered on."""

    model = "model"
    tfidf = "tfidf"


def _one_line(e: Exception) -> CommandError:
    """A failure the replay code describes itself (bad range, bad alert config): one line, exit 2."""
    text = str(e).strip()
    return CommandError(text.splitlines()[0] if text else type(e).__name__, EXIT_USAGE)


def _settings(config: Path | None):
    return load_settings(config, configure_logging=True)


def _one_shot_settings(config: Path | None):
    """Settings for a command that runs once and ends: the client libraries' per-retry log lines are
    noise there, since a failure ends the command with one error line that names the host."""
    s = _settings(config)
    for library in ("elastic_transport", "kafka"):
        logging.getLogger(library).setLevel(logging.CRITICAL)
    return s


def _run_until_signalled(run) -> None:
    """Runs run(stop_event) until SIGTERM/SIGINT; the consumer finishes its batch and commits."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(stop)


def _check_thresholds(threshold: float | None, clear: float | None, default: float, default_clear: float) -> None:
    """`detect` thresholds in terms of its flags: an alert opens above one and closes below the other."""
    if threshold is not None and threshold <= 0:
        raise CommandError(f"--threshold must be above 0 (got {threshold:g})", EXIT_USAGE)
    opens = default if threshold is None else threshold
    closes = default_clear if clear is None else clear
    if closes < opens:
        return
    if clear is None:
        raise CommandError(f"--threshold {opens:g} must be above the clear threshold {closes:g} (where an open alert "
                           f"closes); pass a lower one too, e.g. --clear-threshold {opens / 2:g}", EXIT_USAGE)
    raise CommandError(f"--clear-threshold {closes:g} must be below the threshold {opens:g} (where an alert opens)",
                       EXIT_USAGE)


def register(app: typer.Typer) -> None:
    """Add this room's commands to the main CLI."""

    @app.command("sink")
    def sink(config: Path | None = ConfigOpt) -> None:
        """Index labeled events into Elasticsearch (commit after ES acknowledged)."""
        from consumers.es_sink import EsSink
        from marketpulse import metrics
        from marketpulse.kafka_topics import ensure_topics

        s = _settings(config)
        ensure_topics(s.kafka)
        metrics.serve(s.metrics_port, s.metrics_host)
        _run_until_signalled(EsSink(s).run)

    @app.command("alerter")
    def alerter(
        group: str | None = typer.Option(None, help="consumer group / state key (default: settings kafka.alerter_group)"),
        from_time: str | None = typer.Option(None, help="ISO time to start from when the group has no saved state"),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Detect negative-sentiment spikes per ticker, topic and market; publish and deliver alerts."""
        from datetime import datetime

        from consumers.alerter import Alerter
        from marketpulse import metrics
        from marketpulse.kafka_topics import ensure_topics

        s = _settings(config)
        s.require_own_secrets(alerter=True)
        ensure_topics(s.kafka)
        metrics.serve(s.metrics_port, s.metrics_host)
        start = datetime.fromisoformat(from_time) if from_time else None
        _run_until_signalled(Alerter(s, group_id=group, from_time=start).run)

    @app.command("detect")
    def detect(
        input: Path = typer.Option(..., "--input", "-i", help="CSV with timestamp,value (optional total) columns"),
        output: Path = typer.Option(..., "--output", "-o", help="CSV to write: timestamp,value,score,alert,"
                                                              "severity,filled"),
        aggregate: _Aggregate = typer.Option(
            _Aggregate.auto, "--aggregate",
            help="rows with the same timestamp: 'sum' (a count series; if it reports zeros itself, short gaps "
                 "are zero-filled), 'mean' "
                 "(a level series; gaps stay gaps), or 'auto' (sum iff every value is a non-negative integer, "
                 "or there is a total column)"),
        threshold: float | None = typer.Option(
            None, help="score that opens an alert [3.75 decades of evidence; with a total column the alerts "
                       "settings' robust z, 3.5]"),
        clear_threshold: float | None = typer.Option(
            None, "--clear-threshold", min=0,
            help="score below which an open alert closes [1.0; with a total column 2.0]; must stay below "
                 "--threshold"),
        cooldown: int | None = typer.Option(None, min=0, help="rows after an alert with no new one [100; with a "
                                                              "total column 15]"),
        min_volume: float | None = typer.Option(None, min=0, help="count series: smallest value that may alert [5]"),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Find anomalies in a series (sorted, duplicates merged, interval inferred): the shape detector, or
        with a total column the live alerter's volume detector with the alerts settings."""
        from consumers.alerting.series import SeriesError, detector_config, read_series, run_detect
        settings = load_settings(config)  # a broken --config file is still an error here
        if not input.is_file():
            raise CommandError(f"input file {input} does not exist", EXIT_USAGE)
        try:
            series = read_series(input, aggregate.value)
        except SeriesError as e:
            raise CommandError(str(e), EXIT_USAGE) from None
        except UnicodeDecodeError:
            raise CommandError(not_utf8(input), EXIT_USAGE) from None
        base = detector_config(series, settings.alerts)
        _check_thresholds(threshold, clear_threshold, base.threshold, base.clear_threshold)
        # A --threshold above the critical level moves it along, so every alert is then critical.
        critical = max(base.critical_threshold, threshold) if threshold is not None else None
        try:
            cfg = base.with_(threshold=threshold, clear_threshold=clear_threshold, critical_threshold=critical,
                             cooldown_buckets=cooldown, min_volume=min_volume)
        except ValueError as e:
            raise CommandError(str(e), EXIT_USAGE) from None
        try:
            result = run_detect(series, output, cfg)
        except SeriesError as e:
            raise CommandError(str(e), EXIT_USAGE) from None
        for line in result.summary.lines():
            typer.echo(line, err=True)
        detector = "volume detector (alerts settings)" if series.has_total else "shape detector"
        typer.echo(f"{result.rows} rows, interval {result.interval_s}s, {result.alerts} alert(s) -> {output} "
                   f"({detector})")

    replay_app = typer.Typer(help="Re-run the alerter over historical events into run-scoped indices "
                                  "(never the live ones); `replay cleanup` deletes runs' indices.")
    app.add_typer(replay_app, name="replay")

    @replay_app.callback(invoke_without_command=True)
    def replay(
        ctx: typer.Context,
        from_time: str | None = typer.Option(None, "--from", help="ISO start of the range (event time, inclusive)"),
        to_time: str | None = typer.Option(None, "--to", help="ISO end of the range (exclusive)"),
        source: _Source = typer.Option(_Source.es, help="the events alias in Elasticsearch, or the events topic"),
        speed: str = typer.Option("max", help="'max' or a factor such as '10x' (event time vs wall clock)"),
        rescore: bool = typer.Option(False, "--rescore", help="re-classify the texts with the current model"),
        alert_config: list[str] = typer.Option([], "--alert-config", help="YAML with an 'alerts:' section, or "
                                                "'current'; repeat to compare (default: the current settings)"),
        report: Path | None = typer.Option(None, "--report", help="directory for report.md and plots"),
        run_id: str | None = typer.Option(None, "--run-id", help="lower-case id (default: time + random)"),
        topics: bool = typer.Option(True, "--topics/--no-topics", help="emerging topics in the report"),
        embedder: _Embedder = typer.Option(_Embedder.model, help="embeddings for emerging topics: the "
                                                                "classifier's encoder, or TF-IDF (no model needed)"),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Re-run the alerter over historical events into run-scoped indices (never the live ones)."""
        if ctx.invoked_subcommand is not None:
            return
        if from_time is None or to_time is None:
            raise typer.BadParameter("--from and --to are required (or use `replay cleanup`)")
        from pydantic import ValidationError

        from consumers.replay.commands import replay as run_replay

        s = _one_shot_settings(config)
        try:
            run_replay(s, from_time, to_time, source=source.value, speed=speed, rescore=rescore,
                       alert_configs=alert_config or None, report=report, run_id=run_id, topics=topics,
                       embedder=embedder.value, echo=typer.echo)  # type: ignore[arg-type]
        except ValidationError:
            raise  # an --alert-config with a bad or unknown key: the CLI names it
        except (ValueError, FileNotFoundError, RuntimeError) as e:
            raise _one_line(e) from e

    @replay_app.command("cleanup")
    def replay_cleanup(
        run_id: str | None = typer.Option(None, "--run-id", help="delete this run's indices"),
        older_than_days: float | None = typer.Option(None, "--older-than-days",
                                                     help="delete the indices of every run created longer ago"),
        dry_run: bool = typer.Option(False, "--dry-run", help="only list what would be deleted"),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Delete replay runs' indices (one run, or runs older than N days)."""
        from elasticsearch import Elasticsearch

        from consumers.replay.naming import check_run_id, replay_base
        from consumers.retention import replay_indices

        if (run_id is None) == (older_than_days is None):
            raise typer.BadParameter("give exactly one of --run-id and --older-than-days")
        s = _one_shot_settings(config)
        with Elasticsearch(**s.elasticsearch.client_kwargs()) as es:
            names = replay_indices(es, replay_base(s.elasticsearch), run_id=run_id and check_run_id(run_id),
                                   older_than_days=older_than_days)
            for name in names:
                if not dry_run:
                    es.indices.delete(index=name)
                typer.echo(f"{'would delete' if dry_run else 'deleted'} {name}")
        if not names:
            typer.echo("no replay indices matched")

    @app.command("retention")
    def retention(
        dry_run: bool = typer.Option(False, "--dry-run", help="only list what would be deleted"),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Delete daily event indices older than elasticsearch.retention_days (for clusters without ILM)."""
        from elasticsearch import Elasticsearch

        from consumers.retention import apply_retention

        s = _one_shot_settings(config)
        if s.elasticsearch.retention_days is None:
            typer.echo("elasticsearch.retention_days is not set: every index is kept")
            return
        with Elasticsearch(**s.elasticsearch.client_kwargs()) as es:
            expired = apply_retention(es, s.elasticsearch, dry_run=dry_run)
        for name in expired:
            typer.echo(f"{'would delete' if dry_run else 'deleted'} {name}")
        typer.echo(f"{len(expired)} index(es) older than {s.elasticsearch.retention_days} days")

    @app.command("discover-topics")
    def discover_topics(
        from_time: str = typer.Option(..., "--from", help="ISO start of the range"),
        to_time: str = typer.Option(..., "--to", help="ISO end of the range (exclusive)"),
        k: str = typer.Option("auto", "--k", help="number of clusters, or 'auto' (silhouette)"),
        embedder: _Embedder = typer.Option(_Embedder.model, help="the classifier's encoder embeddings, or TF-IDF"),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Cluster the events in a range and show which themes grew fastest."""
        from consumers.replay.commands import discover, print_topics

        s = _one_shot_settings(config)
        try:
            print_topics(discover(s, from_time, to_time, k=k, embedder=embedder.value))  # type: ignore[arg-type]
        except (ValueError, FileNotFoundError, RuntimeError) as e:
            raise _one_line(e) from e
