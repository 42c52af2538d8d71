"""marketpulse: real-time market-sentiment risk monitor (shared core: settings, schemas, CLI)."""

__version__ = "0.1.0"
