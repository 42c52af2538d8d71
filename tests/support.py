"""Helpers for integration tests: isolated settings and real `marketpulse` processes."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from marketpulse.settings import Settings



@dataclass
class Isolated:
    """Settings whose topics, groups and indices belong to one test only."""

    settings: Settings
    config: Path
    logs: Path
    procs: list = field(default_factory=list)

    def start(self, *command: str) -> subprocess.Popen:
        """Start `marketpulse <command> --config <this test's config>` as a real process."""
        log = open(self.logs / f"{command[0]}-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "marketpulse.cli", *command, "--config", str(self.config)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill(); proc.wait()
        return proc.returncode

    def log_tail(self, proc: subprocess.Popen, n: int = 40) -> str:
        return "\n".join(Path(proc.log_path).read_text(errors="replace").splitlines()[-n:])


def wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)




def labeled_from_truth(sample) -> "LabeledEvent":
    """A LabeledEvent built from a generated sample's ground truth (no model needed): for tests of
    what happens after classification (sink, alerter, replay)."""
    from marketpulse.schemas import LabeledEvent

    neg = {"negative": 0.9, "neutral": 0.07, "positive": 0.03}
    pos = {"negative": 0.03, "neutral": 0.07, "positive": 0.9}
    mid = {"negative": 0.1, "neutral": 0.8, "positive": 0.1}
    scores = {"negative": neg, "positive": pos}.get(sample.sentiment, mid)
    tickers = [{"symbol": sample.ticker, "relevance": 1.0, "matched": sample.ticker}] if sample.ticker else []
    return LabeledEvent(**sample.event.model_dump(), sentiment=sample.sentiment, sentiment_scores=scores,
                        topic=sample.topic, topic_scores=[{"label": sample.topic, "score": 0.9}], tickers=tickers,
                        duplicate_of=sample.duplicate_of, model_version="ground-truth")
