"""Kafka TLS/SASL and ClickHouse TLS settings: checked together at load, mapped onto librdkafka's names."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from bus.security import librdkafka_security
from config import ConfigError, load_settings


def test_plain_text_adds_nothing_and_sasl_ssl_maps_every_setting(tmp_path):
    assert librdkafka_security(load_settings().kafka) == {}
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_text("-")
    kafka = load_settings(kafka={
        "security_protocol": "SASL_SSL", "ssl_ca_location": str(ca), "ssl_certificate_location": str(cert),
        "ssl_key_location": str(key), "ssl_key_password": "key-pw", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "tickops", "sasl_password": "sasl-pw"}).kafka
    assert librdkafka_security(kafka) == {
        "security.protocol": "sasl_ssl", "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(ca), "ssl.certificate.location": str(cert), "ssl.key.location": str(key),
        "ssl.key.password": "key-pw", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "tickops",
        "sasl.password": "sasl-pw"}


def test_librdkafka_accepts_the_mapped_settings():
    kafka = load_settings(kafka={"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u",
                                 "sasl_password": "p"}).kafka
    Producer({"bootstrap.servers": "127.0.0.1:1", **librdkafka_security(kafka)}).flush(0)  # unknown names raise


@pytest.mark.parametrize("kafka, error", [
    ({"security_protocol": "SASL_SSL"}, "needs kafka.sasl_username and kafka.sasl_password"),
    ({"sasl_username": "u", "sasl_password": "p"}, "use SASL_PLAINTEXT or SASL_SSL"),
    ({"security_protocol": "SSL", "ssl_ca_location": "/nonexistent/ca.pem"}, "is not a file"),
])
def test_kafka_security_settings_that_contradict_each_other_stop_start_up(kafka, error):
    with pytest.raises(ConfigError, match=error):
        load_settings(kafka=kafka)


def test_tls_files_on_a_plain_text_protocol_and_half_a_client_certificate_are_errors(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-")
    with pytest.raises(ConfigError, match="use SSL or SASL_SSL"):
        load_settings(kafka={"ssl_ca_location": str(ca)})
    with pytest.raises(ConfigError, match="go together"):
        load_settings(kafka={"security_protocol": "SSL", "ssl_certificate_location": str(ca)})


@pytest.mark.parametrize("storage, error", [
    ({"secure": True}, "apply to the server backend"),
    ({"backend": "server", "ca_certs": "/nonexistent/ca.pem", "secure": True}, "is not a file"),
])
def test_clickhouse_tls_settings_are_checked(storage, error):
    with pytest.raises(ConfigError, match=error):
        load_settings(storage=storage)


def test_secrets_of_the_security_settings_are_redacted():
    settings = load_settings(kafka={"security_protocol": "SASL_SSL", "sasl_username": "u",
                                    "sasl_password": "sasl-secret-9f"}, storage={"backend": "server", "secure": True,
                                                                                 "password": "ch-secret-3a"})
    shown = repr(settings) + str(settings.redacted())
    assert "sasl-secret-9f" not in shown and "ch-secret-3a" not in shown
    assert settings.redacted()["kafka"]["sasl_password"] == "**********"
