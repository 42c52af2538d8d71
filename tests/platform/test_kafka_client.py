"""One mapping from kafka.security to every client, and a failed first connection explained."""
import ssl

import pytest
from kafka.errors import KafkaConnectionError

from marketpulse.kafka_client import KafkaAuthFailed, KafkaTlsFailed, client_kwargs, diagnose
from marketpulse.settings import KafkaSettings

SASL = KafkaSettings(bootstrap="b:9094", security={"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                                                   "username": "mp", "password": "pw"})


def test_sasl_over_tls_maps_to_the_kafka_python_arguments():
    kw = client_kwargs(SASL, client_id="x")
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("mp", "pw")
    assert isinstance(kw["ssl_context"], ssl.SSLContext) and kw["ssl_context"].check_hostname
    assert kw["client_id"] == "x" and kw["bootstrap_timeout_ms"] == 8000
    plain = client_kwargs(KafkaSettings())
    assert plain["security_protocol"] == "PLAINTEXT" and "ssl_context" not in plain and "sasl_mechanism" not in plain


@pytest.mark.parametrize("security,problem", [
    ({"protocol": "SASL_SSL"}, "needs username and password"),
    ({"protocol": "SSL", "cert_file": "c.pem"}, "needs both cert_file and key_file"),
    ({"protocol": "PLAINTEXT", "ca_file": "ca.pem"}, "are for SSL or SASL_SSL"),
])
def test_incomplete_security_settings_are_refused(security, problem):
    with pytest.raises(ValueError, match=problem):
        KafkaSettings(security=security)


@pytest.mark.parametrize("logged,kind,says", [
    (["Bootstrap connection to bootstrap-0 failed: [Error 58] SaslAuthenticationFailedError: Authentication failed"],
     KafkaAuthFailed, "rejected the credentials of 'mp'"),
    (["Connection lost: KafkaConnectionError: socket disconnected"], KafkaAuthFailed, "closed the connection"),
    (["Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate "
      "in certificate chain (_ssl.c:1006)"], KafkaTlsFailed, "not trusted (self-signed certificate in certificate chain)"),
    (["Connect attempt returned error 111. Disconnecting."], KafkaConnectionError, "no broker answered at b:9094"),
    ([], KafkaConnectionError, "within 8 s"),
])
def test_a_failed_first_connection_is_explained_by_what_the_client_logged(logged, kind, says):
    err = diagnose(SASL, logged)
    assert type(err) is kind and says in str(err)
