"""`marketpulse` subcommands of the dashboards room."""
from __future__ import annotations

import typer


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
        events_index: str = typer.Option("marketpulse-events", help="alias of the daily event indices"),
        alerts_index: str = typer.Option("marketpulse-alerts", help="alerts index"),
        timeout: float = typer.Option(10.0, help="seconds per Grafana request"),
    ) -> None:
        """Create or update the datasources, folder and dashboards in a Grafana (idempotent)."""
        from dashboards.push import PushError, connect, explain, push

        try:
            api = connect(url, api_key, user, password, timeout)
            report = push(api, folder=folder, es_url=es_url, prometheus_url=prometheus_url,
                          events_index=events_index, alerts_index=alerts_index)
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
        es_url: str = typer.Option("http://127.0.0.1:9200", "--es-url", help="Elasticsearch URL from this machine"),
        events_index: str = typer.Option("marketpulse-events", help="alias of the daily event indices"),
        alerts_index: str = typer.Option("marketpulse-alerts", help="alerts index"),
        hours: float = typer.Option(24.0, help="time range: the last N hours"),
    ) -> None:
        """Run every Elasticsearch panel query of the dashboards and report which return no data."""
        from elasticsearch import Elasticsearch

        from dashboards import esquery
        from dashboards.push import ALERTS_UID, EVENTS_UID, load_dashboards, provisioned_datasources

        time_fields = {ds["uid"]: ds["jsonData"]["timeField"] for ds in provisioned_datasources()
                       if ds["type"] == "elasticsearch"}
        try:
            with Elasticsearch(es_url, request_timeout=10) as es:
                results = esquery.check(es, load_dashboards(), {EVENTS_UID: events_index, ALERTS_UID: alerts_index},
                                        time_fields, esquery.default_range(hours))
        except Exception as exc:  # noqa: BLE001 - one line instead of a traceback
            typer.echo(f"error: querying Elasticsearch at {es_url} failed: {type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}", err=True)
            raise typer.Exit(1)
        for label, n in results:
            typer.echo(f"{'ok   ' if n else 'EMPTY'} {n:5d}  {label}")
        raise typer.Exit(0 if all(n for _, n in results) else 3)
