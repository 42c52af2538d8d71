"""Synthetic event stream for ``marketpulse generate``."""
from stream.generate.generator import GEN_TICKERS, MALFORMED_KINDS, Generator, RawRecord, Sample, malformed_value
from stream.generate.scenarios import NegativeBurst, Scenario, parse_scenario, parse_scenarios
from stream.generate.templates import TOPICS

__all__ = [
    "GEN_TICKERS", "MALFORMED_KINDS", "TOPICS", "Generator", "NegativeBurst", "RawRecord", "Sample", "Scenario",
    "malformed_value", "parse_scenario", "parse_scenarios",
]
