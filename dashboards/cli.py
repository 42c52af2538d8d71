"""`marketpulse` subcommands of the dashboards room."""
from __future__ import annotations

from pathlib import Path

import typer

from marketpulse.cli_errors import EXIT_OTHER, CommandError, unreachable
from marketpulse.cli_options import ConfigOpt, load_settings

# No [brackets] in help texts: rich takes them for markup and drops them.
EVENTS_INDEX_HELP = "alias of the daily event indices (default: settings elasticsearch.index_prefix)"
ALERTS_INDEX_HELP = "alerts index (default: settings elasticsearch.alerts_index)"


def _settings(config: Path | None):
    """Settings for --config (else MARKETPULSE_CONFIG / env); the CLI reports a bad file in one line."""
    return load_settings(config)


def register(app: typer.Typer) -> None:
    """Add this room's commands to the main CLI."""
    dashboards_app = typer.Typer(no_args_is_help=True, help="Grafana dashboards and datasources.")
    app.add_typer(dashboards_app, name="dashboards")

    @dashboards_app.command("push")
    def push_cmd(
        url: str = typer.Option(..., "--url", help="Grafana base URL, e.g. http://localhost:3000"),
        api_key: str | None = typer.Option(None, "--api-key", envvar="GRAFANA_API_KEY",
                                           help="service-account token (or --user/--password)"),
        user: str | None = typer.Option(None, "--user", help="basic-auth user"),
        password: str | None = typer.Option(None, "--password", envvar="GRAFANA_PASSWORD", help="basic-auth password"),
        folder: str = typer.Option("marketpulse", "--folder", help="Grafana folder for the dashboards"),
        es_url: str = typer.Option("http://elasticsearch:9200", "--es-url",
                                   help="Elasticsearch URL as Grafana (not this machine) reaches it"),
        prometheus_url: str | None = typer.Option(None, "--prometheus-url",
                                                  help="Prometheus URL as Grafana reaches it; omit to skip that datasource"),
        events_index: str | None = typer.Option(None, "--events-index", help=EVENTS_INDEX_HELP),
        alerts_index: str | None = typer.Option(None, "--alerts-index", help=ALERTS_INDEX_HELP),
        timeout: float = typer.Option(10.0, help="seconds per Grafana request"),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Create or update the datasources, folder and dashboards in a Grafana (idempotent)."""
        from dashboards.push import PushError, connect, explain, push

        s = _settings(config)
        try:
            api = connect(url, api_key, user, password, timeout)
            report = push(api, folder=folder, es_url=es_url, prometheus_url=prometheus_url,
                          events_index=events_index, alerts_index=alerts_index, es_settings=s.elasticsearch)
        except PushError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        except Exception as exc:  # noqa: BLE001 - any client/transport failure becomes one line, no traceback
            typer.echo(f"error: {explain(exc, url)}", err=True)
            raise typer.Exit(1)
        for line in report.lines():
            typer.echo(line)

    @dashboards_app.command("check")
    def check_cmd(
        es_url: str | None = typer.Option(None, "--es-url",
                                          help="Elasticsearch URL from this machine (default: settings elasticsearch.url)"),
        events_index: str | None = typer.Option(None, "--events-index", help=EVENTS_INDEX_HELP),
        alerts_index: str | None = typer.Option(None, "--alerts-index", help=ALERTS_INDEX_HELP),
        hours: float = typer.Option(24.0, help="time range: the last N hours"),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Run every Elasticsearch panel query of the dashboards and report which return no data."""
        from elasticsearch import AuthenticationException, AuthorizationException, ConnectionTimeout, Elasticsearch
        from elasticsearch import ConnectionError as EsConnectionError
        from elastic_transport import TlsError

        from dashboards import esquery
        from dashboards.push import es_indices, load_dashboards, provisioned_datasources

        s = _settings(config)
        es_url = es_url or s.elasticsearch.url
        indices = es_indices(s.elasticsearch, events_index=events_index, alerts_index=alerts_index)
        time_fields = {ds["uid"]: ds["jsonData"]["timeField"] for ds in provisioned_datasources()
                       if ds["type"] == "elasticsearch"}
        try:
            # the settings' auth and TLS, with the URL as this machine sees it
            with Elasticsearch(**{**s.elasticsearch.client_kwargs(), "hosts": [es_url], "request_timeout": 10}) as es:
                results = esquery.check(es, load_dashboards(), indices, time_fields, esquery.default_range(hours))
        except (EsConnectionError, ConnectionTimeout) as exc:  # named here: --es-url may differ from the settings
            if isinstance(exc, TlsError):
                raise  # not unreachable: a certificate setting to fix (the CLI's error handler says which)
            raise unreachable("Elasticsearch", es_url, exc, "--es-url or elasticsearch.url") from exc
        except (AuthenticationException, AuthorizationException):
            raise  # exit code 2, reported by the CLI
        except Exception as exc:  # noqa: BLE001 - one line instead of a traceback
            raise CommandError(f"querying Elasticsearch at {es_url} failed: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        for label, n in results:
            typer.echo(f"{'ok   ' if n else 'EMPTY'} {n:5d}  {label}")
        # 1, like any failed check; 3 means Elasticsearch could not be reached.
        raise typer.Exit(0 if all(n for _, n in results) else EXIT_OTHER)
