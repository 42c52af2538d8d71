"""`marketpulse` subcommands of the stream room: topics, worker, produce, generate."""
from __future__ import annotations

from pathlib import Path

import typer

from marketpulse.cli_options import ConfigOpt, load_settings



def _settings(config: Path | None):
    return load_settings(config, configure_logging=True)


def register(app: typer.Typer) -> None:
    @app.command("topics")
    def topics(config: Path | None = ConfigOpt) -> None:
        """Create the Kafka topics (missing ones only) with the configured partitions and retention."""
        from marketpulse.kafka_topics import ensure_topics

        created = ensure_topics(_settings(config).kafka)
        typer.echo(f"created: {', '.join(created) if created else 'nothing (all exist)'}")

    @app.command("worker")
    def worker(config: Path | None = ConfigOpt) -> None:
        """Run a stream worker: validate, enrich, micro-batch and classify the raw topics."""
        from marketpulse import metrics
        from stream.app import run_worker
        from marketpulse.kafka_topics import ensure_topics

        s = _settings(config)
        s.require_own_secrets(worker=True)
        ensure_topics(s.kafka)
        metrics.serve(s.metrics_port, s.metrics_host)

        def make_processor():
            from models.classifier import Classifier
            from stream.processor import BatchProcessor

            return BatchProcessor(s, Classifier.from_settings(s.model))

        run_worker(s, make_processor)

    @app.command("produce")
    def produce(
        files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="JSONL, CSV or RSS/Atom XML"),
        source: str = typer.Option(..., "--source", help="news or social"),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Send records from files to the raw topic of SOURCE, keyed by their stable id."""
        from collections import Counter

        from tqdm import tqdm

        from stream.producer import RawProducer
        from stream.sources.files import read_records

        if source not in ("news", "social"):
            raise typer.BadParameter("--source must be news or social")
        s = _settings(config)
        rejected: Counter[str] = Counter()
        with RawProducer(s.kafka) as producer:
            for path in files:
                for item in tqdm(read_records(path, source), desc=path.name, unit="rec"):
                    if item.event is None:
                        rejected[item.reason] += 1
                        typer.echo(f"{path}:{item.line}: rejected: {item.reason}: {item.detail}", err=True)
                    else:
                        producer.send_event(item.event)
            producer.flush()
            sent, failed, why = producer.sent, producer.failed, producer.errors
        typer.echo(f"sent {sent - failed}, rejected {sum(rejected.values())}"
                   + (f" ({', '.join(f'{k}: {v}' for k, v in rejected.items())})" if rejected else "")
                   + (f", NOT DELIVERED {failed} ({', '.join(f'{k}: {v}' for k, v in why.items())})" if failed else ""))
        if failed:
            raise typer.Exit(1)

    @app.command("generate")
    def generate(
        rate: float = typer.Option(20.0, help="records per second"),
        duration: float = typer.Option(60.0, help="seconds of stream"),
        seed: int = typer.Option(7),
        scenario: list[str] = typer.Option([], help="e.g. burst:TSLA@30+20x5 (ticker @start +duration x rate)"),
        malformed: float = typer.Option(0.0, help="fraction of malformed records, to exercise dead-lettering"),
        realtime: bool = typer.Option(True, help="pace to wall clock (--no-realtime sends as fast as possible)"),
        config: Path | None = ConfigOpt,
    ) -> None:
        """A realistic synthetic stream of financial news and posts, with scripted scenarios."""
        from stream.generate.runner import run_generator

        s = _settings(config)
        stats = run_generator(s.kafka, rate=rate, duration=duration, seed=seed, scenarios=scenario,
                              malformed_fraction=malformed, realtime=realtime)
        failed = stats["failed"]
        typer.echo(f"sent {stats['sent'] - failed} records ({stats['malformed']} malformed) "
                   f"to {s.kafka.topics.raw_news} / {s.kafka.topics.raw_social}"
                   + (f", NOT DELIVERED {failed} ({', '.join(f'{k}: {v}' for k, v in stats['errors'].items())})"
                      if failed else ""))
        if failed:
            raise typer.Exit(1)
