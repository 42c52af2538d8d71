"""A failed `marketpulse` command prints one `error:` line naming the file, key or host, and exits
2 (usage, input, settings), 3 (Kafka or Elasticsearch unreachable) or 1 (anything else); --debug
(or MARKETPULSE_DEBUG=1) shows the traceback instead. No Kafka or Elasticsearch is needed: the
unreachable ones are closed ports."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from marketpulse.cli import app
from marketpulse.cli_errors import EXIT_UNREACHABLE, EXIT_USAGE, CommandError, ErrorReportingGroup, describe

REPO_ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("no_settings_from_outside")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # released on close: nothing listens there


def marketpulse(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real command in its own process: what a user sees on the terminal, exit code included."""
    return subprocess.run([sys.executable, "-m", "marketpulse.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})})


# --- settings ---------------------------------------------------------------------------------

def test_a_typo_in_the_yaml_names_the_key_and_the_closest_valid_one(tmp_path: Path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("kafka:\n  bootstrapp: 10.0.0.1:9092\n")
    result = runner.invoke(app, ["topics", "--config", str(cfg)])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines() == [
        f"error: {cfg}: unknown key 'kafka.bootstrapp' (did you mean 'kafka.bootstrap'?)"]


def test_a_typo_in_an_environment_variable_names_the_closest_valid_one():
    result = runner.invoke(app, ["settings"], env={"MARKETPULSE_ALERTS__THRESHOLDD": "4"})
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines() == [
        "error: environment: unknown variable MARKETPULSE_ALERTS__THRESHOLDD "
        "(did you mean MARKETPULSE_ALERTS__THRESHOLD?)"]


def test_a_typo_in_a_list_item_of_the_yaml_is_found(tmp_path: Path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("alerts:\n  webhooks:\n    - urll: https://hooks.example.com/x\n")
    result = runner.invoke(app, ["alerter", "--config", str(cfg)])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines() == [
        f"error: {cfg}: unknown key 'alerts.webhooks[0].urll' (did you mean 'alerts.webhooks[0].url'?)"]


def test_a_missing_config_file_is_one_line_without_a_traceback(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    proc = marketpulse("settings", "--config", str(missing))
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr.splitlines() == [f"error: config file {missing} does not exist"]
    assert proc.stdout == ""


# --- unreachable services ---------------------------------------------------------------------

def test_topics_with_kafka_unreachable_fails_within_the_connect_timeout_with_exit_3():
    address = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    proc = marketpulse("topics", env={"MARKETPULSE_KAFKA__BOOTSTRAP": address,
                                      "MARKETPULSE_KAFKA__CONNECT_TIMEOUT_S": "2"})
    elapsed = time.monotonic() - started
    assert proc.returncode == EXIT_UNREACHABLE, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: cannot reach Kafka (no broker answered at {address} within 2 s); is it running, and is "
        f"kafka.bootstrap right?"]
    assert elapsed < 2 + 8  # the wait, plus starting Python and importing the client


def test_elasticsearch_unreachable_is_exit_3_naming_the_url():
    url = f"http://127.0.0.1:{closed_port()}"
    result = runner.invoke(app, ["dashboards", "check"], env={"MARKETPULSE_ELASTICSEARCH__URL": url})
    assert result.exit_code == EXIT_UNREACHABLE
    assert result.stderr.splitlines() == [
        f"error: cannot reach Elasticsearch at {url} (Connection refused); is it running, and is "
        f"--es-url or elasticsearch.url right?"]


def test_a_command_that_lets_a_connection_error_through_still_names_the_configured_url():
    from elastic_transport import ConnectionError as EsConnectionError

    from marketpulse.settings import Settings

    settings = Settings(elasticsearch={"url": "http://es.internal:9200"})
    code, lines = describe(EsConnectionError("Connection error caused by: NewConnectionError(<...>: Failed to "
                                             "establish a new connection: [Errno 111] Connection refused)"), settings)
    assert (code, lines) == (EXIT_UNREACHABLE, [
        "cannot reach Elasticsearch at http://es.internal:9200 (Connection refused); is it running, and is "
        "elasticsearch.url right?"])


def test_credentials_elasticsearch_rejects_are_exit_2():
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
    from elasticsearch import AuthenticationException

    meta = ApiResponseMeta(status=401, http_version="1.1", headers=HttpHeaders(), duration=0.0,
                           node=NodeConfig("https", "es.internal", 9200))
    code, lines = describe(AuthenticationException("security_exception", meta=meta, body={}))
    assert (code, lines) == (EXIT_USAGE, [
        "Elasticsearch at https://es.internal:9200 rejected the credentials (HTTP 401); check "
        "elasticsearch.api_key or elasticsearch.username/password"])


# --- input files and arguments ----------------------------------------------------------------

def test_detect_on_a_non_utf8_file_names_the_file_and_the_line(tmp_path: Path):
    src = tmp_path / "latin1.csv"
    src.write_bytes("timestamp,value\n0,1\n60,2 \u20ac\n".encode("cp1252"))
    result = runner.invoke(app, ["detect", "-i", str(src), "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines() == [f"error: {src}: not UTF-8 text (line 3: byte 0x80); save it as UTF-8"]


def test_detect_threshold_at_the_clear_threshold_says_which_flag_to_lower(tmp_path: Path):
    src = tmp_path / "s.csv"
    src.write_text("timestamp,value\n0,1\n60,2\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out), "--threshold", "1"])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines() == [
        "error: --threshold 1 must be above the clear threshold 1 (where an open alert closes); pass a lower "
        "one too, e.g. --clear-threshold 0.5"]
    result = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out), "--threshold", "1",
                                 "--clear-threshold", "0.5"])
    assert result.exit_code == 0, result.output


def test_a_bad_argument_is_one_line_pointing_at_the_help(tmp_path: Path):
    result = runner.invoke(app, ["detect", "-i", "x.csv", "-o", "y.csv", "--cooldown", "-1"], prog_name="marketpulse")
    assert result.exit_code == EXIT_USAGE
    [line] = result.stderr.splitlines()
    assert line.startswith("error: Invalid value for '--cooldown'")
    assert line.endswith("(see 'marketpulse detect --help')")


def test_an_unknown_command_suggests_the_closest_one():
    result = runner.invoke(app, ["topicz"], prog_name="marketpulse")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines() == [
        "error: No such command 'topicz'. Did you mean 'topics'? (see 'marketpulse --help')"]


# --- anything else, and --debug -----------------------------------------------------------------

def probe_app() -> typer.Typer:
    """A two-command CLI built like marketpulse's, to fail in ways the real commands do not."""
    probe = typer.Typer(cls=ErrorReportingGroup)

    @probe.callback()
    def main(debug: bool = typer.Option(False, "--debug", envvar="MARKETPULSE_DEBUG")) -> None:
        pass

    @probe.command()
    def crash() -> None:
        raise RuntimeError("the flux capacitor\nis broken")

    @probe.command()
    def refuse() -> None:
        raise CommandError("the reason, in the command's words", 4)

    return probe


def test_an_unexpected_error_is_one_line_with_exit_1_and_a_hint():
    result = runner.invoke(probe_app(), ["crash"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: RuntimeError: the flux capacitor (run with --debug for the traceback)"]


def test_a_command_error_keeps_its_message_and_exit_code():
    result = runner.invoke(probe_app(), ["refuse"])
    assert (result.exit_code, result.stderr) == (4, "error: the reason, in the command's words\n")


def test_debug_lets_the_exception_through():
    for args, env in ((["--debug", "crash"], {}), (["crash"], {"MARKETPULSE_DEBUG": "1"})):
        result = runner.invoke(probe_app(), args, env=env)
        assert isinstance(result.exception, RuntimeError)
        assert "error:" not in result.stderr


def test_debug_shows_the_traceback_of_the_real_command(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    proc = marketpulse("--debug", "settings", "--config", str(missing))
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert proc.stderr.rstrip().endswith(f"FileNotFoundError: config file {missing} does not exist")
