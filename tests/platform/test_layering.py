"""The rooms are layered: the core (marketpulse's settings, schemas, wire, metrics, Kafka topic
admin, text, event clock, consumer loop) imports no room; models imports only the core; stream may
use models; consumers and dashboards use neither stream nor each other's internals beyond what is
listed; the application (marketpulse.cli, marketpulse.demo) sits above every room and nothing
imports it. Every import counts, including those inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("marketpulse", "models", "stream", "consumers", "dashboards")
APPLICATION = {"marketpulse.cli", "marketpulse.demo"}
# What each layer may import (besides itself, third-party and the standard library).
ALLOWED = {
    "core": {"core"},
    "models": {"core", "models"},
    "stream": {"core", "models", "stream"},
    "consumers": {"core", "models", "consumers"},
    "dashboards": {"core", "dashboards"},
    "application": {"core", "models", "stream", "consumers", "dashboards", "application"},
}


def layer(module: str) -> str | None:
    top = module.split(".")[0]
    if top not in ROOMS:
        return None
    if top == "marketpulse":
        return "application" if any(module == a or module.startswith(a + ".") for a in APPLICATION) else "core"
    return top


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            # `from marketpulse import metrics` imports the module marketpulse.metrics
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def source_files() -> list[Path]:
    return sorted(p for room in ROOMS for p in (ROOT / room).rglob("*.py"))


def test_the_layers_are_known_for_every_module():
    files = source_files()
    assert len(files) > 50
    assert {layer(module_name(p)) for p in files} == set(ALLOWED)


def violations(module: str, source: str) -> list[str]:
    own = layer(module)
    assert own is not None
    return [f"line {line}: {target} ({own} -> {to})" for line, target in imports(source)
            if (to := layer(target)) is not None and to not in ALLOWED[own]]


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_runs_from_a_lower_room_to_a_higher_one(path):
    bad = violations(module_name(path), path.read_text())
    assert not bad, "\n".join(bad)


def test_the_checker_sees_imports_that_run_the_wrong_way_even_inside_functions():
    probe = "from marketpulse import wire\n\ndef f():\n    from stream.validate import check_record\n"
    assert violations("consumers.probe", probe)[0] == "line 4: stream.validate (consumers -> stream)"
    assert violations("marketpulse.settings", "import consumers.cli\n") == ["line 1: consumers.cli (core -> consumers)"]
    assert violations("stream.app", "from marketpulse.cli import app\n") == [
        "line 1: marketpulse.cli (stream -> application)", "line 1: marketpulse.cli.app (stream -> application)"]
