"""The Python API example in docs/models.md runs as written, so the docs cannot drift from the code."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- example: python-api"


def docs_example() -> str:
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    assert MARKER in text, "docs/models.md lost its marked Python API example"
    m = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], re.DOTALL)
    assert m, "no ```python block after the marker"
    return m.group(1)


def test_python_api_example_in_docs_runs(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the example loads "models/artifacts/default" relative to the repository
    ns: dict = {}
    exec(compile(docs_example(), "docs/models.md:python-api", "exec"), ns)
    rows, clf = ns["rows"], ns["clf"]
    assert len(rows) == 2 and all(isinstance(r, dict) for r in rows)
    assert set(rows[0]) == {"sentiment", "sentiment_scores", "topic", "topic_scores", "model_version", "explanation"}
    assert clf.backend == "onnx"
    assert "Fed | Central Banks" in capsys.readouterr().out
