"""Private Kafka and ClickHouse servers that only speak TLS with a password, for the security options.

Certificates come from the openssl command line: a throw-away CA, and a server certificate
it signs for 127.0.0.1/localhost. The Kafka broker is the jar set scripts/services.sh fetched,
with a SASL_SSL listener for clients (PLAIN, one user) beside a plain-text one for itself;
the ClickHouse server is Debian's 18.16 with only its secure native port and a password user.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
KAFKA_USER, KAFKA_PASSWORD = "tickops", "kafka-pw-61c2e0"
CLICKHOUSE_USER, CLICKHOUSE_PASSWORD = "tickops", "ch-pw-0b9d47"


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA's certificate: what clients trust
    cert: Path  # the server's certificate, signed by the CA
    key: Path  # its private key (PKCS#8, unencrypted)
    other_ca: Path  # a CA that signed nothing here: trusting it must fail


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=tickops-test-{name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
             "-out", "server.csr", cwd=directory)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.cnf", "-out", "server.pem", cwd=directory)
    return Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key",
                        directory / "other-ca.pem")


def _wait_port(port: int, proc: subprocess.Popen, logs: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); logs:\n{_tails(logs)}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"nothing listens on {port} after {timeout_s} s; logs:\n{_tails(logs)}")


def _tails(directory: Path) -> str:
    return "\n".join(f"== {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in directory.glob("*.log"))


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _kafka_libs() -> Path:
    version = next(line.split(">")[1].split("<")[0] for line in (REPO / "scripts/kafka/pom.xml").read_text().splitlines()
                   if "<kafka.version>" in line)
    cache = Path(os.environ.get("TICKOPS_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                 / "tickops")
    return cache / f"kafka-{version}" / "libs"


@contextmanager
def sasl_ssl_kafka(directory: Path, certs: Certificates) -> Iterator[str]:
    """A single-node KRaft broker whose client listener is SASL_SSL (PLAIN); yields its bootstrap address."""
    port, internal, controller = free_port(), free_port(), free_port()
    (directory / "data").mkdir(parents=True)
    keystore = directory / "keystore.pem"
    keystore.write_text(certs.key.read_text() + certs.cert.read_text())
    jaas = (f'org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'user_{KAFKA_USER}="{KAFKA_PASSWORD}";')
    properties = directory / "server.properties"
    properties.write_text(f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config={jaas}
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
log.dirs={directory / "data"}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
""")
    java = ["java", "-Xms128m", "-Xmx512m", "-Djava.awt.headless=true", f"-Dkafka.logs.dir={directory}",
            f"-Dlog4j2.configurationFile={REPO / 'scripts/kafka/log4j2.properties'}", "-cp", f"{_kafka_libs()}/*"]
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    subprocess.run([*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)],
                   check=True, capture_output=True, timeout=120)
    with open(directory / "stdout.log", "wb") as out:
        proc = subprocess.Popen([*java, "kafka.Kafka", str(properties)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, directory)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextmanager
def tls_clickhouse(directory: Path, certs: Certificates) -> Iterator[int]:
    """Debian's ClickHouse 18.16 with only a TLS native port and a password user; yields that port."""
    port, http = free_port(), free_port()
    for sub in ("data/tmp", "data/user_files", "data/format_schemas", "logs"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    (directory / "config.xml").write_text(f"""<?xml version="1.0"?>
<yandex>
    <logger><level>information</level><log>{directory}/logs/server.log</log>
        <errorlog>{directory}/logs/server.err.log</errorlog></logger>
    <http_port>{http}</http_port>
    <tcp_port_secure>{port}</tcp_port_secure>
    <listen_host>127.0.0.1</listen_host>
    <mark_cache_size>536870912</mark_cache_size>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <openSSL><server>
        <certificateFile>{certs.cert}</certificateFile>
        <privateKeyFile>{certs.key}</privateKeyFile>
        <verificationMode>none</verificationMode>
        <loadDefaultCAFile>false</loadDefaultCAFile>
        <cacheSessions>true</cacheSessions>
        <disableProtocols>sslv2,sslv3</disableProtocols>
        <preferServerCiphers>true</preferServerCiphers>
    </server></openSSL>
    <path>{directory}/data/</path>
    <tmp_path>{directory}/data/tmp/</tmp_path>
    <user_files_path>{directory}/data/user_files/</user_files_path>
    <format_schema_path>{directory}/data/format_schemas/</format_schema_path>
    <users_config>{directory}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
</yandex>
""")
    (directory / "users.xml").write_text(f"""<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users>
        <{CLICKHOUSE_USER}>
            <password>{CLICKHOUSE_PASSWORD}</password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile><quota>default</quota>
        </{CLICKHOUSE_USER}>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default>
    </quotas>
</yandex>
""")
    binary = "/usr/sbin/clickhouse-server" if Path("/usr/sbin/clickhouse-server").exists() else "clickhouse-server"
    with open(directory / "logs" / "stdout.log", "wb") as out:
        proc = subprocess.Popen([binary, f"--config-file={directory / 'config.xml'}"], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, directory / "logs")
        yield port
    finally:
        _stop(proc)
