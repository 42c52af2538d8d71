"""How a failed `marketpulse` command is reported: one line on stderr, and an exit code that says
what kind of failure it was, so scripts can tell "fix the call" from "try again later".

====  ==========================================================================================
code  meaning
====  ==========================================================================================
0     success
1     any other failure (``dashboards check``: some panels return no data)
2     usage, input or configuration: a bad argument, a missing, unreadable or non-UTF-8 file,
      invalid or unknown settings, credentials that Elasticsearch or Kafka rejected
3     a service is unreachable: Kafka or Elasticsearch
130   interrupted (Ctrl-C)
====  ==========================================================================================

``marketpulse --debug ...`` (or ``MARKETPULSE_DEBUG=1``) shows the traceback instead of the line.
The mapping lives here, around the whole command tree, so every command gets it without
catching anything itself; a command with more to say raises ``CommandError``.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import ValidationError
from typer.core import TyperGroup

try:  # newer typer bundles its own copy of click
    from typer._click import exceptions as _click_exc
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click import exceptions as _click_exc
    from click import get_current_context

from marketpulse.settings import ConfigError, Settings, dotted_key, hint_for, settings_models

EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

# Where load_settings leaves the settings, so an error can name the host the command talked to.
SETTINGS_KEY = "marketpulse.settings"


class CommandError(_click_exc.ClickException):
    """An expected failure a command describes itself: printed as ``error: <message>``."""

    def __init__(self, message: str, exit_code: int = EXIT_OTHER):
        super().__init__(message)
        self.exit_code = exit_code


def unreachable(service: str, address: str, exc: BaseException | None = None, setting: str = "") -> CommandError:
    """The error for a service that did not answer at address."""
    detail = f" ({_reason(exc)})" if exc is not None else ""
    hint = f"; is it running, and is {setting} right?" if setting else "; is it running?"
    return CommandError(f"cannot reach {service} at {address}{detail}{hint}", EXIT_UNREACHABLE)


def not_utf8(path: Path) -> str:
    """What is wrong with a file that failed to decode, naming the line of its first bad byte."""
    try:
        data = path.read_bytes()
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return f"{path}: not UTF-8 text (line {line}: byte {data[e.start]:#04x}); save it as UTF-8"
    except OSError as e:
        return f"{path}: {e.strerror}"
    return f"{path}: not UTF-8 text"


def remember_settings(settings: Settings) -> None:
    ctx = get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[SETTINGS_KEY] = settings


def describe(exc: BaseException, settings: Settings | None = None) -> tuple[int, list[str]]:
    """(exit code, lines without the ``error:`` prefix) for an exception a command let through."""
    if isinstance(exc, ConfigError):
        return EXIT_USAGE, exc.problems
    if isinstance(exc, ValidationError):
        return EXIT_USAGE, [validation_line(exc)]
    if isinstance(exc, UnicodeDecodeError):
        return EXIT_USAGE, [f"input is not UTF-8 text ({exc.reason}: byte {exc.object[exc.start]:#04x})"]
    if isinstance(exc, yaml.YAMLError):
        return EXIT_USAGE, [f"invalid YAML: {_first_line(exc)}"]
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return EXIT_USAGE, [f"{exc.filename}: {exc.strerror}" if exc.filename else _first_line(exc)]
    service = _service_error(exc, settings)
    if service is not None:
        return service
    if isinstance(exc, ConnectionError):  # a socket some library opened without wrapping the error
        return EXIT_UNREACHABLE, [f"cannot connect: {_first_line(exc)}"]
    return EXIT_OTHER, [f"{type(exc).__name__}: {_first_line(exc)} (run with --debug for the traceback)"]


def _service_error(exc: BaseException, settings: Settings | None) -> tuple[int, list[str]] | None:
    # Only libraries already imported can have raised: checking sys.modules keeps --help fast.
    client = sys.modules.get("marketpulse.kafka_client")
    if client is not None and isinstance(exc, (client.KafkaAuthFailed, client.KafkaTlsFailed)):
        return EXIT_USAGE, [_reason(exc)]
    kafka = sys.modules.get("kafka.errors")
    if kafka is not None:
        down = tuple(getattr(kafka, n) for n in ("NoBrokersAvailable", "KafkaConnectionError", "KafkaTimeoutError")
                     if hasattr(kafka, n))
        if isinstance(exc, down):
            return EXIT_UNREACHABLE, [_cannot_reach("Kafka", settings and settings.kafka.bootstrap, exc,
                                                   "kafka.bootstrap")]
        if isinstance(exc, (kafka.AuthorizationError, kafka.SaslAuthenticationFailedError)):
            return EXIT_USAGE, [f"Kafka refused the request: {type(exc).__name__}: {_first_line(exc)}"]
    aiokafka = sys.modules.get("aiokafka.errors")
    if aiokafka is not None and isinstance(exc, aiokafka.KafkaConnectionError):
        return EXIT_UNREACHABLE, [_cannot_reach("Kafka", settings and settings.kafka.bootstrap, exc,
                                               "kafka.bootstrap")]
    transport = sys.modules.get("elastic_transport")
    if transport is not None:
        url = settings.elasticsearch.url if settings else None
        if isinstance(exc, transport.TlsError):  # before ConnectionError, its base: a setting to fix
            text = str(exc)
            detail = (text.split("certificate verify failed:")[-1].split("(_ssl")[0].strip()
                      if "certificate verify failed" in text else _reason(exc))
            return EXIT_USAGE, [f"TLS with Elasticsearch at {url} failed ({detail}); set elasticsearch.ca_file "
                                f"or elasticsearch.ssl_fingerprint"]
        if isinstance(exc, (transport.ConnectionError, transport.ConnectionTimeout)):
            return EXIT_UNREACHABLE, [_cannot_reach("Elasticsearch", url, exc, "elasticsearch.url")]
        if isinstance(exc, transport.ApiError):
            meta = getattr(exc, "meta", None)
            status, node = getattr(meta, "status", None), getattr(meta, "node", None)
            url = f"{node.scheme}://{node.host}:{node.port}" if node is not None else url
            where = f"Elasticsearch at {url}" if url else "Elasticsearch"
            if status == 401:
                return EXIT_USAGE, [f"{where} rejected the credentials (HTTP 401); check "
                                    f"elasticsearch.api_key or elasticsearch.username/password"]
            if status == 403:
                return EXIT_USAGE, [f"{where} denied the request (HTTP 403): the configured user or API key "
                                    f"lacks a privilege ({_first_line(exc)})"]
            return EXIT_OTHER, [f"{where} answered HTTP {status}: {_first_line(exc)}"]
    return None


def _cannot_reach(service: str, address: str | None, exc: BaseException, setting: str) -> str:
    detail = _reason(exc)
    head = f"cannot reach {service} at {address}" if address and address not in detail else f"cannot reach {service}"
    return f"{head} ({detail}); is it running, and is {setting} right?"


def _reason(exc: BaseException) -> str:
    """The short cause inside a client library's long message: "Connection refused", ..."""
    text = str(exc)
    # kafka-python puts the class name in front of its message
    text = text[len(type(exc).__name__) + 2:] if text.startswith(f"{type(exc).__name__}: ") else text
    # elastic_transport keeps the cause in .message; str() may only say "Connection error"
    m = re.search(r"\[Errno -?\d+\] ([^)\]'\"]+)", f"{text} {getattr(exc, 'message', '')}")
    if m:
        return m.group(1).strip()
    if "timeout" in type(exc).__name__.lower() and not text:
        return "timed out"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def validation_line(exc: ValidationError) -> str:
    """All of a ValidationError's problems on one line: ``invalid settings: alerts.threshold: ...``."""
    what = "settings" if exc.title in settings_models() else exc.title
    parts = []
    for e in exc.errors():
        loc = dotted_key(e["loc"])
        if e["type"] == "extra_forbidden":
            hint = hint_for(exc.title, e["loc"])
            parts.append(f"unknown key '{loc}'" + (f" (did you mean '{hint}'?)" if hint else ""))
        else:
            cause = (e.get("ctx") or {}).get("error")
            msg = str(cause) if e["type"] == "value_error" and cause is not None else e["msg"]
            parts.append(f"{loc}: {msg}" if loc else msg)
    return f"invalid {what}: " + "; ".join(parts)


def usage_line(e: Any) -> str:
    see = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
    # typer passes pydantic-style text through: "Invalid value for '--x': Value error, 'y' is not one of ..."
    return f"{e.format_message().replace(': Value error, ', ': ')}{see}"


def _debug(ctx: Any) -> bool:
    return bool(ctx.find_root().params.get("debug"))


def _fail(lines: list[str], code: int) -> typer.Exit:
    for line in lines:
        typer.echo(f"error: {line}", err=True)
    return typer.Exit(code)


# Exits, aborts and "no arguments: show the help" keep their own handling.
_PASS_THROUGH = (typer.Exit, typer.Abort, *((_click_exc.NoArgsIsHelpError,) if hasattr(_click_exc, "NoArgsIsHelpError")
                                             else ()))


class ErrorReportingGroup(TyperGroup):
    """The root command group: turns what any command raises into ``error: ...`` and an exit code."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        # Usage errors in the top-level options (before the command name) are raised here.
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _PASS_THROUGH:
            raise
        except _click_exc.UsageError as e:
            raise _fail([usage_line(e)], e.exit_code) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except _click_exc.ClickException as e:
            lines = [usage_line(e) if isinstance(e, _click_exc.UsageError) else e.format_message()]
            raise _fail(lines, e.exit_code) from None
        except Exception as exc:
            if _debug(ctx):
                raise
            code, lines = describe(exc, ctx.meta.get(SETTINGS_KEY))
            raise _fail(lines, code) from None
