"""Kafka connection arguments, mapped once from the settings for every client marketpulse makes.

kafka-python's producers, consumers and admin clients take ``client_kwargs``; the faust worker
(aiokafka) takes the same ``ssl_context`` through its credentials (``stream/app.py``). TLS is one
``ssl.SSLContext`` for all of them: the CA file (else the system trust store), an optional client
certificate for mutual TLS, and the hostname check.
"""
from __future__ import annotations

import ssl
from typing import Any

from marketpulse.settings import KafkaSecurity, KafkaSettings


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext | None:
    if not security.uses_tls:
        return None
    ctx = ssl.create_default_context(cafile=str(security.ca_file) if security.ca_file else None)
    ctx.check_hostname = security.check_hostname
    if security.cert_file is not None:
        ctx.load_cert_chain(str(security.cert_file), str(security.key_file),
                            security.key_password.get_secret_value() if security.key_password else None)
    return ctx


def client_kwargs(kafka: KafkaSettings, **extra: Any) -> dict[str, Any]:
    """``bootstrap_servers``, the security arguments and the bounded first-connection wait, for
    ``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient``; ``extra`` is the client's own."""
    sec = kafka.security
    kw: dict[str, Any] = {"bootstrap_servers": kafka.bootstrap, "security_protocol": sec.protocol,
                          "bootstrap_timeout_ms": int(kafka.connect_timeout_s * 1000)}
    if sec.uses_tls:
        kw["ssl_context"] = ssl_context(sec)
    if sec.uses_sasl:
        kw["sasl_mechanism"] = sec.sasl_mechanism
        kw["sasl_plain_username"] = sec.username
        kw["sasl_plain_password"] = sec.password.get_secret_value() if sec.password else None
    return {**kw, **extra}
