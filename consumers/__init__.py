"""Consumers of labeled events: Elasticsearch sink, alerter, webhooks, replay."""
