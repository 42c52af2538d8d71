"""Grafana dashboards (JSON) and their provisioning."""
