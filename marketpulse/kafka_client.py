"""Kafka clients, made in one place from the settings.

``producer``/``consumer``/``admin`` build kafka-python clients with the security arguments
(``client_kwargs``) and a bounded first connection (``kafka.connect_timeout_s``). When that first
connection fails, the reason the library only logged becomes the error: ``KafkaAuthFailed`` for
credentials the broker rejected, ``KafkaTlsFailed`` for a certificate that is not trusted, else
``KafkaConnectionError`` (no broker answered). The faust worker (aiokafka) takes the same
``ssl_context`` through its credentials (``stream/app.py``).

TLS is one ``ssl.SSLContext``: the CA file (else the system trust store), an optional client
certificate for mutual TLS, and the hostname check.
"""
from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from marketpulse.settings import KafkaSecurity, KafkaSettings

T = TypeVar("T")


class KafkaAuthFailed(KafkaError):
    """The broker rejected the SASL credentials."""


class KafkaTlsFailed(KafkaError):
    """The TLS handshake failed: the broker's certificate is not trusted, or does not name the host."""


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
    """``bootstrap_servers``, the security arguments and the bounded first-connection wait, for any
    kafka-python client; ``extra`` is the client's own."""
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


def producer(kafka: KafkaSettings, **kw: Any) -> KafkaProducer:
    return _connect(kafka, lambda: KafkaProducer(**client_kwargs(kafka, **kw)))


def consumer(kafka: KafkaSettings, *topics: str, **kw: Any) -> KafkaConsumer:
    return _connect(kafka, lambda: KafkaConsumer(*topics, **client_kwargs(kafka, **kw)))


def admin(kafka: KafkaSettings, **kw: Any) -> KafkaAdminClient:
    return _connect(kafka, lambda: KafkaAdminClient(**client_kwargs(kafka, **kw)))


def topic_partitions(consumer: KafkaConsumer, topic: str, wait_s: float = 30.0) -> list[TopicPartition]:
    """The topic's partitions, sorted; waits up to ``wait_s`` for a topic that is being created."""
    parts = consumer.partitions_for_topic(topic)
    deadline = time.monotonic() + wait_s
    while not parts and time.monotonic() < deadline:
        time.sleep(0.5)
        parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise RuntimeError(f"topic {topic} does not exist")
    return [TopicPartition(topic, p) for p in sorted(parts)]


def read_to_end(consumer: KafkaConsumer, tps: list[TopicPartition]) -> Iterator[Any]:
    """Every record from the assigned partitions' positions up to their ends as of now."""
    ends = consumer.end_offsets(tps)
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        for records in consumer.poll(timeout_ms=1000).values():
            yield from records


class _Reasons(logging.Handler):
    """Keeps what kafka-python logs about failed connection attempts (it retries, then times out
    with a message that says only "Unable to bootstrap")."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _reasons() -> Iterator[_Reasons]:
    logger = logging.getLogger("kafka")
    handler, level, propagate = _Reasons(), logger.level, logger.propagate
    logger.addHandler(handler)
    # Each failed attempt is logged; the one error raised below says it all.
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _connect(kafka: KafkaSettings, make: Callable[[], T]) -> T:
    with _reasons() as seen:
        try:
            return make()
        except (KafkaTimeoutError, KafkaConnectionError) as exc:
            raise diagnose(kafka, seen.messages) from exc


def diagnose(kafka: KafkaSettings, messages: list[str]) -> KafkaError:
    """The error a failed first connection deserves, from what the library logged meanwhile."""
    where = f"Kafka at {kafka.bootstrap}"
    if any("SaslAuthenticationFailed" in m or "Authentication failed" in m for m in messages):
        return KafkaAuthFailed(f"{where} rejected the credentials of {kafka.security.username!r} "
                               f"({kafka.security.sasl_mechanism}); check kafka.security.username/password")
    for m in messages:
        if "certificate verify failed" in m:
            detail = m.split("certificate verify failed:")[-1].split("(_ssl")[0].strip()
            return KafkaTlsFailed(f"{where}: TLS certificate not trusted ({detail}); set kafka.security.ca_file "
                                  f"to the CA that signed it")
    for m in messages:
        if "Handshake failed" in m:
            return KafkaTlsFailed(f"{where}: TLS handshake failed ({m.split('Handshake failed:')[-1].strip()[:200]}); "
                                  f"check kafka.security.protocol and the broker's listener")
    if kafka.security.uses_sasl and any("socket disconnected" in m for m in messages):
        # A broker answers failed SASL logins by closing the connection, at times before the
        # client has read the error response: the same cause, seen from the socket.
        return KafkaAuthFailed(f"{where} closed the connection while checking the credentials of "
                               f"{kafka.security.username!r} ({kafka.security.sasl_mechanism}); check "
                               f"kafka.security.username/password/sasl_mechanism")
    return KafkaConnectionError(f"no broker answered at {kafka.bootstrap} within {kafka.connect_timeout_s:g} s")
