"""The one settings object for every TickOps process.

Values come, in order of precedence, from keyword arguments, ``TICKOPS_*`` environment
variables (nested with ``__``: ``TICKOPS_KAFKA__BOOTSTRAP_SERVERS``), a TOML file
(``TICKOPS_CONFIG`` or ``./tickops.toml``) and the defaults below. Defaults are the
embedded demo (simulator feed, in-process bus, chDB under ./data) so that ``make run``
needs nothing else. A bad value, or a pair of values that contradict each other, stops
start-up with :class:`ConfigError` naming the setting and what it accepts.

Secrets (credentials, password digests, the webhook URL with its token) are typed
``SecretStr``: that type is the one redaction mechanism, so reprs, ``redacted()`` and
every log line that carries settings show ``**********`` and only the component that
needs a secret calls ``get_secret_value()``.
"""

from __future__ import annotations

import operator
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_PORT = {"ge": 1, "le": 65535}


class ConfigError(ValueError):
    """Start-up configuration is invalid; the message names each bad setting."""


class _Section(BaseModel):
    """A settings section; unknown keys are errors so a typo never silently falls back to a default.

    Defaults are validated too, so a rule between two fields holds when only one of them is set.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)


_RELATIONS = {
    "at least": operator.ge,
    "at most": operator.le,
    "greater than": operator.gt,
}


def _relative_to(field: str, relation: str, other: str) -> Any:
    """A validator of ``field`` against ``other`` of the same section, declared earlier (so already validated).

    Pairs such as an initial and a maximum backoff are checked here, when settings load, so
    a bad pair stops start-up naming both settings instead of failing later inside a
    component (a circuit breaker, librdkafka) with a message about its own arguments.
    """
    holds = _RELATIONS[relation]

    def check(cls: type, value: Any, info: ValidationInfo) -> Any:
        bound = info.data.get(other)  # absent when ``other`` failed its own validation: that error is reported
        if bound is not None and not holds(value, bound):
            raise ValueError(f"is {value} but must be {relation} {other} ({bound}): change {field} or {other}")
        return value

    return field_validator(field)(check)


def _existing_files(*fields: str) -> Any:
    """A validator that each of ``fields`` (a path, or None) names a file: a certificate missing at start
    is a ConfigError naming the setting, not a TLS handshake failing later inside a client library."""

    def check(cls: type, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value

    return field_validator(*fields)(check)


class FeedSettings(_Section):
    """Where IQFeed data comes from and how the client treats the connection."""

    mode: Literal["simulator", "iqconnect"] = "simulator"
    host: str = "127.0.0.1"
    level1_port: int = Field(5009, **_PORT)
    level2_port: int = Field(9200, **_PORT)
    admin_port: int = Field(9300, **_PORT)
    lookup_port: int = Field(9100, **_PORT)
    protocol: Literal["6.1", "6.2"] = "6.2"
    client_name: str = "tickops"
    symbols: list[str] = Field(default_factory=lambda: ["AAPL", "MSFT", "SPY", "QQQ", "TSLA"])
    depth_symbols: list[str] = Field(default_factory=list)
    watch_limit: int = Field(500, ge=1, le=100_000)
    heartbeat_timeout_s: float = Field(3.0, gt=0, le=300)
    reconnect_initial_s: float = Field(0.2, gt=0, le=60)
    reconnect_max_s: float = Field(10.0, gt=0, le=600)
    lookup_rate_per_s: float = Field(50.0, gt=0, le=1000)
    lookup_timeout_s: float = Field(30.0, gt=0, le=600)  # silence that abandons a lookup request
    # Catch-up: whenever a symbol starts being watched (start, restart after a crash, takeover, an
    # operator's start), its trades since its watermark (last stored trade) come from tick history
    # (runtime/catchup.py). The range reaches back at most catch_up_max_s from the watch, on the feed's
    # clock; 0 means to the start of the trading day (04:00 Eastern pre-market, XNYS calendar), so a first
    # start or a long outage asks for one day at most. catch_up_batch symbols are fetched per pass (one
    # progress line in the log each).
    catch_up: bool = True
    catch_up_max_s: float = Field(0.0, ge=0, le=30 * 86_400)
    catch_up_batch: int = Field(50, ge=1, le=10_000)
    depth_book: Literal["levels", "orders"] = "levels"  # Level 2 watch: WPL price levels or WOR orders
    # A watched symbol silent this long while others trade gets an outage window and a
    # re-watch; 0 disables. The threshold follows the NYSE session at the feed's own time
    # (its heartbeats): regular, pre/post-market, closed. Outside the regular session a
    # quiet symbol is normal, so the others are off by default. Alerting on silence is
    # separate (alerts.symbol_silent_s).
    symbol_silence_s: float = Field(60.0, ge=0, le=86_400)
    symbol_silence_extended_s: float = Field(0.0, ge=0, le=86_400)
    symbol_silence_closed_s: float = Field(0.0, ge=0, le=86_400)
    # IQConnect launch (mode=iqconnect); login and password are secrets.
    product_id: str = ""
    product_version: str = "1.0"
    login: SecretStr = SecretStr("")
    password: SecretStr = SecretStr("")
    launch_command: str = (
        "wine iqconnect.exe -product {product} -version {version} "
        "-login {login} -password {password} -autoconnect"
    )
    connect_timeout_s: float = Field(60.0, gt=0, le=3600)
    launch_under_xvfb: bool = False  # prefix the launch command with xvfb-run -a (wine needs a display)
    # The engine launches and supervises IQConnect (collectors/iqfeed/iqconnect.py, runtime/iqconnect_link.py);
    # false when IQConnect runs elsewhere (another host, its own service) and only feed.host is dialled.
    supervise: bool = True
    restart_initial_s: float = Field(2.0, gt=0, le=600)  # IQConnect restart backoff
    restart_max_s: float = Field(60.0, gt=0, le=3600)
    # Embedded simulator (mode=simulator): synthetic message rate across all symbols.
    simulator_rate: float = Field(200.0, ge=0, le=5_000_000)
    simulator_seed: int = 7

    _reconnect_order = _relative_to("reconnect_max_s", "at least", "reconnect_initial_s")
    _restart_order = _relative_to("restart_max_s", "at least", "restart_initial_s")

    @field_validator("client_name")
    @classmethod
    def _wire_safe(cls, value: str) -> str:
        """The name is sent in an ``S,SET CLIENT NAME,<name>`` line: a comma or control character would
        corrupt the command, and anything outside ASCII cannot be encoded for IQConnect."""
        if not value:
            raise ValueError("must not be empty")
        if "," in value:
            raise ValueError("must not contain a comma (it would split the command sent to IQConnect)")
        bad = sorted({ch for ch in value if not " " <= ch <= "~"})
        if bad:
            raise ValueError(f"must be printable ASCII (it is sent to IQConnect); found {bad}")
        return value


class BusSettings(_Section):
    kind: Literal["memory", "kafka"] = "memory"
    # In-process bus: messages held per partition before producers see "queue full" and spool.
    memory_capacity: int = Field(1_000_000, ge=1, le=100_000_000)
    # ... and bytes held over all event topics (payload plus per-message overhead) before the same.
    memory_max_mb: int = Field(512, ge=1, le=1_000_000)
    # Up to this many events of one partition travel in one bus message (bus/codec.py's batch format),
    # which divides Kafka's per-message costs; 1 sends one event per message, the format of old builds.
    events_per_message: int = Field(200, ge=1, le=10_000)


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "tickops"
    partitions: int = Field(6, ge=1, le=1024)
    linger_ms: int = Field(5, ge=0, le=1000)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    consumer_group: str = "tickops-writer"
    spool_budget_mb: int = Field(1024, ge=1, le=1_000_000)
    replication_factor: int = Field(1, ge=1, le=16)
    # How long librdkafka keeps retrying a message before its delivery report fails (then it is spooled).
    message_timeout_ms: int = Field(60_000, ge=1_000, le=3_600_000)
    queue_max_messages: int = Field(100_000, ge=1, le=10_000_000)
    spool_segment_mb: int = Field(16, ge=1, le=1024)
    # 0 = fsync every spool append; >0 = group commit (a machine crash may lose this window, a process crash nothing).
    spool_fsync_ms: int = Field(10, ge=0, le=1000)
    breaker_reset_s: float = Field(1.0, gt=0, le=300)
    breaker_reset_max_s: float = Field(5.0, gt=0, le=3600)
    # A writer that dies is replaced in its group after this long (broker minimum is 6000).
    session_timeout_ms: int = Field(10_000, ge=1_000, le=300_000)
    # The dead-letter topic is never consumed: the oldest dead letters are deleted after this long
    # or beyond this size per partition (topic configs retention.ms / retention.bytes; the
    # in-process bus applies the size).
    deadletter_retention_ms: int = Field(7 * 86_400_000, ge=60_000, le=10 * 365 * 86_400_000)
    deadletter_retention_mb: int = Field(64, ge=1, le=1_000_000)

    # Security (bus/security.py turns these into librdkafka settings for every client: producer,
    # consumers, admin). TLS: security_protocol SSL or SASL_SSL, the brokers' CA in ssl_ca_location
    # (else the system's), a client certificate and key for mutual TLS. SASL: SASL_PLAINTEXT or
    # SASL_SSL with a mechanism, user name and password.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr = SecretStr("")
    ssl_verify_hostname: bool = True  # the broker's certificate must name the host connected to
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")

    _spool_segment_fits = _relative_to("spool_segment_mb", "at most", "spool_budget_mb")
    _timeout_after_linger = _relative_to("message_timeout_ms", "greater than", "linger_ms")  # librdkafka's rule
    _breaker_order = _relative_to("breaker_reset_max_s", "at least", "breaker_reset_s")

    _tls_files = _existing_files("ssl_ca_location", "ssl_certificate_location", "ssl_key_location")

    @model_validator(mode="after")
    def _consistent_security(self) -> KafkaSettings:
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        sasl = self.security_protocol.startswith("SASL_")
        tls_files = [name for name in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location")
                     if getattr(self, name) is not None]
        if tls_files and not tls:
            raise ValueError(f"kafka.{', kafka.'.join(tls_files)} set but kafka.security_protocol is "
                             f"{self.security_protocol}: use SSL or SASL_SSL, or unset them")
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError("kafka.ssl_certificate_location and kafka.ssl_key_location go together (mutual TLS)")
        credentials = bool(self.sasl_username) or bool(self.sasl_password.get_secret_value())
        if sasl and not (self.sasl_username and self.sasl_password.get_secret_value()):
            raise ValueError(f"kafka.security_protocol {self.security_protocol} needs kafka.sasl_username and "
                             "kafka.sasl_password")
        if credentials and not sasl:
            raise ValueError("kafka.sasl_username/sasl_password set but kafka.security_protocol is "
                             f"{self.security_protocol}: use SASL_PLAINTEXT or SASL_SSL")
        return self


class FleetSettings(_Section):
    """The collector fleet on Kafka (docs/HA.md); used only with ``bus.kind = "kafka"``.

    Instances share the desired symbols through consumer-group membership of
    ``<kafka.topic_prefix>-collectors`` over the compacted ``<prefix>.symbols`` topic, which has
    ``assignment_partitions`` partitions (many more than instances, so hashing spreads symbols
    evenly; an existing topic keeps its own count, because re-partitioning would move symbols).
    Each instance publishes its status to ``<prefix>.fleet`` every ``status_interval_s`` and at
    every change (writers too, every ``status_interval_s``); a status older than ``stale_after_s``
    means the instance left: "gone since" on the Fleet page, off the fleet's capacity, its alerts
    resolved by the rules owner. An instance that has not joined the group ``join_timeout_s`` after its start
    (Kafka unreachable) watches the stored desired set on its own, up to its limit, rather than
    nothing.
    """

    enabled: bool = True
    assignment_partitions: int = Field(64, ge=1, le=10_000)
    status_interval_s: float = Field(5.0, ge=0.5, le=300)
    stale_after_s: float = Field(20.0, gt=0, le=3600)
    join_timeout_s: float = Field(30.0, gt=0, le=3600)
    # Hot standby (docs/HA.md "Redundancy"): each critical symbol is also watched by one other responsive
    # collector, which publishes only its trades (deduplicated by content identity) while it stands by.
    standby_critical: bool = False
    # A minute's digest is published this long after the feed clock passed the minute's end (late prints).
    consistency_close_s: float = Field(10.0, ge=0, le=600)
    # The rules owner compares two instances' digests of a minute; one side alone is dropped after this long.
    consistency_wait_s: float = Field(180.0, gt=0, le=86_400)

    _stale_after_interval = _relative_to("stale_after_s", "greater than", "status_interval_s")


class StorageSettings(_Section):
    backend: Literal["chdb", "server"] = "chdb"
    database: str = "tickops"
    host: str = "127.0.0.1"
    port: int = Field(9000, **_PORT)
    user: str = "default"
    password: SecretStr = SecretStr("")
    # A batch is written when it holds batch_rows records or its oldest is batch_age_ms old. Live, the age
    # decides (50 ms at 50k events/s is 2,500 rows); batch_rows bounds a writer catching up, where fewer,
    # larger parts let ClickHouse keep up (BENCHMARKS.md: 20,000 stored 49.6k events/s where 5,000 fell
    # behind at 42.5k). At most 1,000,000: a run then fits one ClickHouse insert block (1,048,576 rows),
    # so a part never cuts a bus message of several events in two (storage/inserter.py).
    batch_rows: int = Field(20_000, ge=1, le=1_000_000)
    batch_age_ms: int = Field(50, ge=1, le=60_000)
    # Writer backoff while storage is failing: the batch is kept and retried, offsets stay uncommitted.
    retry_initial_ms: int = Field(100, ge=1, le=60_000)
    retry_max_ms: int = Field(5_000, ge=1, le=600_000)
    # Server backend: connections shared by all threads (the writer inserts from 4 at once, plus
    # its resume queries, alert jobs and dashboard reruns); a statement waits pool_wait_s for one.
    pool_size: int = Field(8, ge=1, le=1000)
    pool_wait_s: float = Field(10.0, gt=0, le=600)
    # While storage is down, operator actions, alert states and symbol changes wait in memory, in order;
    # beyond this many the oldest is dropped (counted, logged as an error).
    pending_writes_max: int = Field(10_000, ge=1, le=1_000_000)

    # Per bus partition, the writer remembers the keys of this many recent rows and drops a re-sent copy
    # of one of them (about 140 bytes a key: 20,000 keys ~ 3 MB per partition). docs/DELIVERY.md.
    dedup_keys: int = Field(20_000, ge=1, le=10_000_000)
    # Server backend: TLS to the server's secure native port (tcp_port_secure, usually 9440), checked
    # against ca_certs (else the system's CAs); verify = false accepts any certificate (tests only).
    secure: bool = False
    ca_certs: Path | None = None
    verify: bool = True
    # The engine stores the bus itself; false when ``python -m storage.writer`` processes do (needs bus.kind=kafka).
    embedded_writer: bool = True

    _retry_order = _relative_to("retry_max_ms", "at least", "retry_initial_ms")

    _ca_file = _existing_files("ca_certs")

    @model_validator(mode="after")
    def _tls_for_the_server(self) -> StorageSettings:
        if self.backend == "chdb" and (self.secure or self.ca_certs is not None):
            raise ValueError("storage.secure and storage.ca_certs apply to the server backend; chDB is embedded "
                             "(set storage.backend = \"server\" or unset them)")
        if self.ca_certs is not None and not self.secure:
            raise ValueError("storage.ca_certs is set but storage.secure is false: set secure = true")
        return self

    @field_validator("database")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.replace("_", "").isalnum() or value[0].isdigit():
            raise ValueError("must be letters, digits and underscores, not starting with a digit")
        return value


class BackupSettings(_Section):
    """Rotating zstd segment files beside the bus (storage/backup.py, docs/BACKUP.md).

    ``directory`` defaults to ``<data_dir>/backup``. A frame is written when
    ``flush_max_kb`` of records are pending or the oldest is ``flush_max_ms`` old: a
    crash loses at most that. ``fsync`` also syncs each frame (survives power loss, at
    the cost of a disk round trip per flush); sealed segments are always synced. After
    a write failure the writer retries every ``retry_s``.
    """

    enabled: bool = True
    directory: Path | None = None
    segment_max_mb: int = Field(64, ge=1, le=10_000)
    segment_max_s: int = Field(300, ge=1, le=86_400)
    retention_days: int = Field(14, ge=1, le=3650)
    budget_mb: int = Field(10_240, ge=1, le=10_000_000)
    flush_max_kb: int = Field(256, ge=1, le=65_536)
    flush_max_ms: int = Field(200, ge=1, le=60_000)
    compression_level: int = Field(3, ge=1, le=19)
    fsync: bool = False
    retry_s: float = Field(1.0, gt=0, le=3600)
    # A second copy on another disk or mount (storage/mirror.py): sealed segments and operator
    # snapshots are copied there and verified by sha256; never created by TickOps (mount it first).
    mirror_directory: Path | None = None
    mirror_interval_s: float = Field(10.0, ge=1, le=3600)
    # Alerts, audit log, symbols, outages and uptime minutes exported to <directory>/operator/
    # (storage/operator_backup.py): how often, and how many of this instance's snapshots are kept.
    operator_snapshot_s: int = Field(300, ge=10, le=86_400)
    operator_snapshot_keep: int = Field(48, ge=1, le=100_000)

    _segment_fits = _relative_to("budget_mb", "at least", "segment_max_mb")

    @field_validator("mirror_directory")
    @classmethod
    def _elsewhere(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        directory = info.data.get("directory")
        if value is not None and directory is not None and value.resolve() == directory.resolve():
            raise ValueError("is the backup directory itself: a mirror must be another disk or mount")
        return value


class MonitoringSettings(_Section):
    """``/metrics`` and ``/healthz`` (monitoring/http.py); port 0 picks a free port."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)
    # Availability objective per component (runtime/uptime.py): 0.999 leaves 43 bad minutes in 30 days.
    uptime_objective: float = Field(0.999, gt=0, lt=1)


# A salted scrypt entry as `python -m dashboard.users add` prints it (dashboard/passwords.py):
# scrypt:ln=<log2 n>,r=<r>,p=<p>:<salt>:<key>, salt and key in unpadded URL-safe base64.
_SCRYPT_ENTRY = re.compile(r"scrypt:ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2}):[A-Za-z0-9_-]{16,}:[A-Za-z0-9_-]{32,}")
OPERATOR_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
USERS_COMMAND = "python -m dashboard.users add NAME --role ROLE"


class OperatorSettings(_Section):
    """A dashboard login: ``password_hash`` as printed by ``python -m dashboard.users add`` (salted scrypt),
    or, for now, a legacy unsalted ``password_sha256`` digest (accepted with a warning at every start)."""

    role: Literal["viewer", "operator", "admin"] = "viewer"
    password_hash: SecretStr | None = None
    password_sha256: SecretStr | None = None

    @field_validator("password_hash")
    @classmethod
    def _scrypt_entry(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            match = _SCRYPT_ENTRY.fullmatch(value.get_secret_value())
            if match is None or not (10 <= int(match[1]) <= 18 and 1 <= int(match[2]) <= 16
                                     and 1 <= int(match[3]) <= 16):
                raise ValueError(f"must be an entry printed by `{USERS_COMMAND}` "
                                 "(scrypt:ln=14,r=8,p=1:SALT:KEY, ln 10..18, r 1..16, p 1..16)")
        return value

    @field_validator("password_sha256")
    @classmethod
    def _hex_digest(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        text = value.get_secret_value()
        if len(text) != 64 or any(ch not in "0123456789abcdef" for ch in text.lower()):
            raise ValueError("must be a SHA-256 hex digest (64 hex characters); better, replace it by the "
                             f"password_hash that `{USERS_COMMAND}` prints")
        return value

    @model_validator(mode="after")
    def _one_password(self) -> OperatorSettings:
        if (self.password_hash is None) == (self.password_sha256 is None):
            raise ValueError(f"give exactly one of password_hash (from `{USERS_COMMAND}`) and the legacy "
                             "password_sha256")
        return self

    @property
    def legacy(self) -> bool:
        return self.password_hash is None


class DashboardSettings(_Section):
    """Operator logins and their protection (dashboard/auth.py).

    Without operators the dashboard runs in demo mode (every visitor acts as ``local``, an
    admin), which it does only while Streamlit listens on loopback (``server.address``
    127.0.0.1, ::1 or localhost); on any other address it refuses to run unless
    ``allow_demo`` says so. After ``lockout_after_failures`` failed logins in a row, a user
    name, and separately a client address, is locked out for ``lockout_initial_s``, doubling
    with each further failure up to ``lockout_max_s``; failures older than
    ``lockout_forget_s`` are forgotten.
    """

    operators: dict[str, OperatorSettings] = Field(default_factory=dict)
    refresh_s: float = Field(1.0, ge=0.2, le=60)
    allow_demo: bool = False
    lockout_after_failures: int = Field(3, ge=1, le=1000)
    lockout_initial_s: float = Field(1.0, gt=0, le=3600)
    lockout_max_s: float = Field(900.0, gt=0, le=86_400)
    lockout_forget_s: float = Field(3600.0, gt=0, le=7 * 86_400)
    # Attached: the dashboard starts no engine; it reads storage and the /healthz of the processes named in
    # ``process_endpoints`` (collectors, writers: "http://collector:9464") and writes symbol changes and
    # acknowledgements to storage, where the collectors take them in (runtime/attached.py).
    attach: bool = False
    process_endpoints: list[str] = Field(default_factory=list)

    _lockout_order = _relative_to("lockout_max_s", "at least", "lockout_initial_s")

    @field_validator("operators")
    @classmethod
    def _names(cls, value: dict[str, OperatorSettings]) -> dict[str, OperatorSettings]:
        bad = sorted(name for name in value if not OPERATOR_NAME.fullmatch(name))
        if bad:
            raise ValueError(f"operator names must be 1-64 letters, digits or . _ @ -: {bad}")
        return value

    def legacy_operators(self) -> list[str]:
        """Operators still on an unsalted SHA-256 digest; each should get a new entry from USERS_COMMAND."""
        return sorted(name for name, entry in self.operators.items() if entry.legacy)

    @field_validator("process_endpoints")
    @classmethod
    def _http_endpoints(cls, value: list[str]) -> list[str]:
        bad = [url for url in value if not url.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"not http:// or https:// URLs: {bad}")
        return value


class LogSettings(_Section):
    """Log lines (JSON) go to stderr and, with ``file``, to ``<directory>/<process>.log`` (monitoring/logs.py).

    ``directory`` defaults to ``<data_dir>/logs``; processes that run apart share it (a volume, a mount)
    so that the dashboard's Logs page reads them all. A file is rotated when it would pass
    ``max_file_mb`` or is ``rotate_after_h`` old; ``keep_files`` rotated files are kept, none older
    than ``max_age_days``.
    """

    file: bool = True
    directory: Path | None = None
    max_file_mb: int = Field(20, ge=1, le=100_000)
    rotate_after_h: float = Field(24.0, gt=0, le=24 * 366)
    keep_files: int = Field(10, ge=1, le=10_000)
    max_age_days: float = Field(14.0, gt=0, le=3650)


class AlertSettings(_Section):
    """Thresholds of the alert rules (alerts/rules.py); docs/RUNBOOK.md says what each alert means.

    Silence: a watched symbol alerts after ``symbol_silent_s`` without data in the regular
    session, ``symbol_silent_extended_s`` in the pre/post-market (0: never), counted from
    the later of its last data, the session's start and its watch; a symbol with nothing
    since then gets ``symbol_grace_s`` more. Latency objectives are p99s over the last
    ``latency_window_s``, judged once ``latency_min_samples`` events were measured in it.
    Memory growth is a least-squares RSS slope over ``memory_window_s`` of samples taken
    after ``memory_warmup_s`` (caches filling up after start are not a leak).
    """

    symbol_silent_s: float = Field(300.0, gt=0, le=86_400)
    symbol_silent_extended_s: float = Field(0.0, ge=0, le=86_400)
    symbol_grace_s: float = Field(120.0, ge=0, le=86_400)
    heartbeat_missing_s: float = Field(3.0, gt=0, le=3600)
    live_p99_ms: float = Field(100.0, gt=0, le=60_000)
    freshness_p99_ms: float = Field(1000.0, gt=0, le=600_000)
    latency_window_s: int = Field(60, ge=5, le=300)
    latency_min_samples: int = Field(100, ge=1, le=1_000_000)
    memory_warmup_s: float = Field(900.0, ge=0, le=86_400)
    memory_window_s: float = Field(1800.0, ge=60, le=3000)
    memory_growth_mib_per_h: float = Field(128.0, gt=0, le=1_000_000)
    dropped_window_s: float = Field(900.0, gt=0, le=86_400)
    disk_free_min_pct: float = Field(10.0, ge=0, le=100)
    error_rate_per_min: float = Field(60.0, ge=0)


class CompletenessSettings(_Section):
    """End-of-day completeness (runtime/completeness/): after each trading day, each watched symbol's
    stored volume against the feed's Total Volume and the daily bar; a shortfall is backfilled.

    ``enabled``: None (default) runs it unless the feed is the embedded simulator, whose market
    starts afresh with each process (a day spanning a restart would not add up). A day is
    checked ``grace_s`` after its extended session ends (20:00 Eastern, 17:00 on early-close
    days); a process that was down then catches up on the last ``lookback_days`` calendar
    days. Tolerances are percentages of each reference; ``day_incomplete`` alerts for days
    within the last ``alert_days``.
    """

    enabled: bool | None = None
    grace_s: float = Field(600.0, ge=0, le=86_400)
    lookback_days: int = Field(4, ge=0, le=30)
    feed_volume_tolerance_pct: float = Field(0.0, ge=0, le=100)
    daily_bar_tolerance_pct: float = Field(1.0, ge=0, le=100)
    alert_days: int = Field(7, ge=0, le=366)


class NotifySettings(_Section):
    """Where alert notifications go (alerts/notify/); with no channel set, alerts only reach the log.

    ``webhook_url`` gets an HTTP POST of a JSON body per firing, resolved or acknowledged
    alert; ``smtp_host`` plus ``email_to`` send the same as an email (STARTTLS and login
    optional). Alerts below ``min_severity`` are not sent. Deliveries run on a background
    thread: ``queue_size`` notifications wait at most (the oldest is dropped and counted
    when full), and a failed delivery is tried ``retry_attempts`` times in all, waiting
    ``retry_initial_s`` doubling up to ``retry_max_s`` in between.
    """

    webhook_url: SecretStr | None = None  # a secret: such URLs usually carry a token or credentials
    webhook_timeout_s: float = Field(5.0, gt=0, le=120)
    smtp_host: str | None = None
    smtp_port: int = Field(587, **_PORT)
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_timeout_s: float = Field(10.0, gt=0, le=120)
    email_from: str = "tickops@localhost"
    email_to: list[str] = Field(default_factory=list)
    min_severity: Literal["info", "warning", "critical"] = "warning"
    queue_size: int = Field(1000, ge=1, le=100_000)
    retry_attempts: int = Field(4, ge=1, le=20)
    retry_initial_s: float = Field(1.0, gt=0, le=600)
    retry_max_s: float = Field(30.0, gt=0, le=3600)

    _retry_order = _relative_to("retry_max_s", "at least", "retry_initial_s")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("email_from")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("must be an email address (user@host)")
        return value

    @field_validator("email_to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = [address for address in value if "@" not in address]
        if bad:
            raise ValueError(f"not email addresses (user@host): {bad}")
        return value

    @model_validator(mode="after")
    def _complete_channels(self) -> NotifySettings:
        if self.smtp_host and not self.email_to:
            raise ValueError("notify.smtp_host is set but notify.email_to is empty: list at least one recipient "
                             "or unset smtp_host")
        if self.email_to and not self.smtp_host:
            raise ValueError("notify.email_to is set but notify.smtp_host is not: name the SMTP server "
                             "or clear email_to")
        if bool(self.smtp_username) != bool(self.smtp_password.get_secret_value()):
            raise ValueError("notify.smtp_username and notify.smtp_password go together: set both or neither")
        return self

    @property
    def configured(self) -> bool:
        """True when at least one channel is set, i.e. a notifier is worth starting."""
        return bool(self.webhook_url or self.smtp_host)


class Settings(BaseSettings):
    """Everything a TickOps process can be told; see the module docstring for sources."""

    model_config = SettingsConfigDict(
        env_prefix="TICKOPS_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Path("data")
    instance_id: str = Field("tickops-1", min_length=1, max_length=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # A stop (SIGTERM, Ctrl-C) flushes the producer and drains the bus into storage for at most this
    # long, whatever is down; the process exits within it plus a few seconds.
    drain_timeout_s: float = Field(10.0, gt=0, le=600)
    feed: FeedSettings = Field(default_factory=FeedSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    fleet: FleetSettings = Field(default_factory=FleetSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    logs: LogSettings = Field(default_factory=LogSettings)
    completeness: CompletenessSettings = Field(default_factory=CompletenessSettings)

    @model_validator(mode="after")
    def _processes_apart(self) -> Settings:
        """Settings that split the pipeline over processes need a bus and a store that processes share."""
        if not self.storage.embedded_writer and self.bus.kind != "kafka":
            raise ValueError("storage.embedded_writer = false needs bus.kind = \"kafka\": the in-process bus "
                             "cannot be read by a writer process")
        if self.dashboard.attach and self.storage.backend != "server":
            raise ValueError("dashboard.attach = true needs storage.backend = \"server\": chDB's data path "
                             "belongs to one process, the collector's")
        return self

    def log_directory(self) -> Path:
        return self.logs.directory or self.data_dir / "logs"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("TICKOPS_CONFIG", "tickops.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))

    def redacted(self) -> dict[str, Any]:
        """A loggable view: pydantic's JSON dump masks every ``SecretStr`` value."""
        return self.model_dump(mode="json")


def load_settings(**overrides: Any) -> Settings:
    """Build the settings or raise :class:`ConfigError` with one line per bad setting."""
    config_file = os.environ.get("TICKOPS_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"TICKOPS_CONFIG points at {config_file!r}, which is not a file")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:  # TOML syntax errors and similar
        raise ConfigError(f"invalid configuration: {exc}") from None


def _describe(exc: ValidationError) -> str:
    lines = ["invalid TickOps configuration:"]
    for error in exc.errors():
        if not error["loc"]:  # a rule between sections: its message names the settings
            lines.append(f"  {error['msg']}")
            continue
        dotted = ".".join(str(part) for part in error["loc"])
        env_name = "TICKOPS_" + "__".join(str(part) for part in error["loc"]).upper()
        lines.append(f"  {dotted} (env {env_name}): {error['msg']}")
    return "\n".join(lines)
