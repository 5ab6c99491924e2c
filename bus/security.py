"""librdkafka's security settings from ours: every Kafka client of a process (producer, consumers,
admin, the reconcile tool) connects the same way.

The SASL password is in the returned mapping, which goes to librdkafka and nowhere else:
never log it (``KafkaBus`` keeps it out of its repr).
"""

from __future__ import annotations

from config import KafkaSettings


def librdkafka_security(kafka: KafkaSettings) -> dict[str, str]:
    """The ``security.protocol``, ``ssl.*`` and ``sasl.*`` client settings; empty for plain text."""
    if kafka.security_protocol == "PLAINTEXT":
        return {}
    config = {"security.protocol": kafka.security_protocol.lower()}
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        config["ssl.endpoint.identification.algorithm"] = "https" if kafka.ssl_verify_hostname else "none"
        if kafka.ssl_ca_location is not None:
            config["ssl.ca.location"] = str(kafka.ssl_ca_location)
        if kafka.ssl_certificate_location is not None and kafka.ssl_key_location is not None:
            config["ssl.certificate.location"] = str(kafka.ssl_certificate_location)
            config["ssl.key.location"] = str(kafka.ssl_key_location)
            if kafka.ssl_key_password.get_secret_value():
                config["ssl.key.password"] = kafka.ssl_key_password.get_secret_value()
    if kafka.security_protocol.startswith("SASL_"):
        config["sasl.mechanism"] = kafka.sasl_mechanism
        config["sasl.username"] = kafka.sasl_username
        config["sasl.password"] = kafka.sasl_password.get_secret_value()
    return config
