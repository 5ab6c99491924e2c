"""The TickOps schema as versioned, idempotent migrations, portable across ClickHouse versions.

Portability rules (DESIGN.md): the same DDL must run on Debian's ClickHouse 18.16 and on
current ClickHouse (chDB 26.x), so there is no DateTime64 (times are Int64 UTC epoch ns),
no column CODECs, no TTL. Event tables are ReplacingMergeTree ordered by their identity
(events/kinds.py): trades by content (symbol, ts_ns, total_volume, price, size, since
migration 8), the others by a key containing (symbol, ts_ns, source, seq), so a
redelivered row collapses on merge; each row carries the bus partition/offset it came
from so the writer can resume exactly after what is stored.

A migration's statements are frozen once released: change the schema by appending a
new migration, never by editing an old one. ``{db}`` is replaced by the database name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from events.kinds import TRADES
from storage.add_column import AddColumn
from storage.rekey import Rekey
from storage.store import Store

_DAY_PARTITION = "toYYYYMMDD(toDateTime(intDiv(ts_ns, 1000000000)))"

# Envelope columns every event table carries: who produced the event, in what order,
# when it was read from the socket, and where it sat on the bus.
_ENVELOPE = """
    source String,
    seq UInt64,
    recv_ns Int64,
    stored_ns Int64,
    bus_partition Int32,
    bus_offset Int64"""


def probe_table(table: str) -> str:
    """The ``ENGINE = Null`` twin of an event table (migration 4)."""
    return f"{table}_probe"


def _probe_ddl(table: str) -> str:
    return f"CREATE TABLE IF NOT EXISTS {{db}}.{probe_table(table)} AS {{db}}.{table} ENGINE = Null"


# The 1-minute bars' aggregate states of trades: the view of migration 2 and the rebuild of migration 8
# must compute the same states.
_BARS_STATES = """SELECT
    symbol,
    intDiv(ts_ns, 60000000000) * 60000000000 AS minute_ns,
    argMinState(price, ts_ns) AS open,
    maxState(price) AS high,
    minState(price) AS low,
    argMaxState(price, ts_ns) AS close,
    sumState(size) AS volume,
    countState() AS trades
FROM {db}.trades"""
_BARS_VIEW = f"CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.bars_1m_mv TO {{db}}.bars_1m AS\n{_BARS_STATES}\nGROUP BY symbol, minute_ns"
_BARS_REBUILD = f"INSERT INTO {{db}}.bars_1m\n{_BARS_STATES}\nWHERE {{where}}\nGROUP BY symbol, minute_ns"


@dataclass(frozen=True)
class Migration:
    """Statements run in order; a ``procedure`` (run after them) does what DDL alone cannot, idempotently."""

    version: int
    name: str
    statements: tuple[str, ...]
    procedure: Callable[[Store], None] | None = None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "event tables, outages and feed status",
        (
            f"""CREATE TABLE IF NOT EXISTS {{db}}.trades (
    symbol String,
    ts_ns Int64,
    price Float64,
    size Int64,
    conditions Array(String),
    market_center Int32,
    tick_id Int64,
    total_volume Int64,
    basis String,
    backfilled UInt8,{_ENVELOPE}
) ENGINE = ReplacingMergeTree
PARTITION BY {_DAY_PARTITION}
ORDER BY (symbol, ts_ns, source, seq)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.quotes (
    symbol String,
    ts_ns Int64,
    bid Nullable(Float64),
    bid_size Nullable(Int64),
    ask Nullable(Float64),
    ask_size Nullable(Int64),{_ENVELOPE}
) ENGINE = ReplacingMergeTree
PARTITION BY {_DAY_PARTITION}
ORDER BY (symbol, ts_ns, source, seq)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.depth (
    symbol String,
    ts_ns Int64,
    action String,
    side String,
    price Nullable(Float64),
    size Nullable(Int64),
    order_id String,
    mmid String,
    order_count Nullable(Int64),{_ENVELOPE}
) ENGINE = ReplacingMergeTree
PARTITION BY {_DAY_PARTITION}
ORDER BY (symbol, ts_ns, source, seq)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.feed_status (
    ts_ns Int64,
    name String,
    fields Array(String),
    connected Int8,{_ENVELOPE}
) ENGINE = ReplacingMergeTree
PARTITION BY {_DAY_PARTITION}
ORDER BY (ts_ns, source, seq)""",
            """CREATE TABLE IF NOT EXISTS {db}.feed_outages (
    source String,
    connection String,
    symbol String,
    cause String,
    start_ns Int64,
    end_ns Int64,
    recorded_ns Int64
) ENGINE = ReplacingMergeTree(recorded_ns)
ORDER BY (source, connection, symbol, start_ns)""",
        ),
    ),
    # 1-minute bars, aggregated as trades are inserted. States (argMin/argMax by ts_ns for
    # open/close) merge in any order, so parts from any batch combine correctly; read them
    # through storage.bars.query_bars, which finalizes with the -Merge combinators. Bars
    # cover trades inserted after this migration, and count each inserted row: the writer
    # never inserts a stored row twice, but a second insert of the same trades (e.g. a
    # restore over existing data) would count them again.
    Migration(
        2,
        "1-minute bars over trades",
        (
            """CREATE TABLE IF NOT EXISTS {db}.bars_1m (
    symbol String,
    minute_ns Int64,
    open AggregateFunction(argMin, Float64, Int64),
    high AggregateFunction(max, Float64),
    low AggregateFunction(min, Float64),
    close AggregateFunction(argMax, Float64, Int64),
    volume AggregateFunction(sum, Int64),
    trades AggregateFunction(count)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMMDD(toDateTime(intDiv(minute_ns, 1000000000)))
ORDER BY (symbol, minute_ns)""",
            _BARS_VIEW,
        ),
    ),
    # Operator-facing durable state: alerts (one row per state change, latest wins),
    # the append-only audit log of operator actions, and the desired symbol list.
    Migration(
        3,
        "alerts, audit log and desired symbols",
        (
            """CREATE TABLE IF NOT EXISTS {db}.alerts (
    rule String,
    subject String,
    severity String,
    state String,
    summary String,
    started_ns Int64,
    updated_ns Int64,
    value Nullable(Float64),
    fired_ns Int64,
    resolved_ns Int64,
    acked_by String,
    acked_ns Int64,
    ack_note String
) ENGINE = ReplacingMergeTree(updated_ns)
ORDER BY (rule, subject, started_ns)""",
            """CREATE TABLE IF NOT EXISTS {db}.audit_log (
    ts_ns Int64,
    actor String,
    action String,
    subject String,
    details String
) ENGINE = MergeTree
ORDER BY ts_ns""",
            """CREATE TABLE IF NOT EXISTS {db}.symbols (
    symbol String,
    level1 UInt8,
    depth UInt8,
    silent_after_s Float64,
    updated_ns Int64,
    updated_by String
) ENGINE = ReplacingMergeTree(updated_ns)
ORDER BY symbol""",
        ),
    ),
    # Probe twins of the event tables (storage/probe.py): same columns, ENGINE = Null, so an
    # insert is parsed and converted like the table's and then discarded; no materialized view
    # reads them. The writer bisects a failed insert on them to find the rows that fail alone.
    # A migration that changes an event table's columns must recreate its twin (a test compares them).
    Migration(
        4,
        "probe twins of the event tables",
        tuple(_probe_ddl(table) for table in ("trades", "quotes", "depth", "feed_status")),
    ),
    # Per-minute health of each component (runtime/uptime.py), so availability survives a restart.
    # One row per (instance, component, minute) and write; a minute written twice (a restart within
    # it) is read as min(ok). Plain MergeTree: a replacing merge would keep either row.
    Migration(
        5,
        "per-minute component health",
        (
            """CREATE TABLE IF NOT EXISTS {db}.health_minutes (
    instance_id String,
    component String,
    minute_ns Int64,
    ok UInt8,
    samples UInt32,
    recorded_ns Int64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(toDateTime(intDiv(minute_ns, 1000000000)))
ORDER BY (instance_id, component, minute_ns)""",
        ),
    ),
    # The tamper-evident audit trail (storage/audit_chain.py): one hash chain per source (an
    # instance id or a tool's name), each record linked to the one before it by prev_hash. A new
    # table because ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS; audit_log keeps the entries
    # written before this migration (unchained, so they cannot be verified).
    Migration(
        6,
        "chained audit trail",
        (
            """CREATE TABLE IF NOT EXISTS {db}.audit_trail (
    source String,
    seq UInt64,
    ts_ns Int64,
    actor String,
    action String,
    subject String,
    details String,
    prev_hash String,
    hash String
) ENGINE = MergeTree
ORDER BY (source, seq)""",
        ),
    ),
    # End-of-day completeness (runtime/completeness/): one row per (trading day, symbol) and check;
    # re-checking a day replaces its rows (latest checked_ns wins). Volumes -1: that reference was
    # unknown (no Total Volume seen, no daily bar); history_trades -1: the tick history was not fetched.
    Migration(
        7,
        "end-of-day completeness",
        (
            """CREATE TABLE IF NOT EXISTS {db}.day_completeness (
    day Date,
    symbol String,
    stored_volume Int64,
    stored_trades Int64,
    feed_volume Int64,
    bar_volume Int64,
    history_trades Int64,
    trades_recovered Int64,
    volume_recovered Int64,
    verdict String,
    detail String,
    checked_by String,
    checked_ns Int64
) ENGINE = ReplacingMergeTree(checked_ns)
ORDER BY (day, symbol)""",
        ),
    ),
    # Trades are stored once by what they are, whoever delivered them: the sorting key becomes the trade's
    # identity (events/kinds.py), so the ReplacingMergeTree backstop merges the same print from two
    # collectors or a backfill. 18.16 cannot change a sorting key in place: storage/rekey.py copies the
    # table (one row per identity, a live row before a backfilled one), swaps the names, recreates the
    # bars view on the new table and rebuilds bars_1m from the copied trades, and recreates the probe twin.
    Migration(
        8,
        "trades keyed by content identity",
        (),
        Rekey(
            table="trades",
            order_by=TRADES.identity,
            partition_by=_DAY_PARTITION,
            prefer=("backfilled", "stored_ns", "source", "seq"),
            views=(("bars_1m_mv", _BARS_VIEW),),
            rebuilds=(("bars_1m", _BARS_REBUILD),),
            twins=((probe_table("trades"), _probe_ddl("trades")),),
        ),
    ),
    # Staged rollouts kept across restarts (runtime/rollout_store.py): one row per change, the whole
    # record as JSON, the highest revision of a rollout wins. And the desired symbols' ``critical`` flag
    # (watched first over a watch limit), which storage did not keep: rows written before read 0.
    Migration(
        9,
        "staged rollouts and critical symbols",
        (
            """CREATE TABLE IF NOT EXISTS {db}.rollouts (
    rollout_id String,
    revision UInt64,
    state String,
    begun_by String,
    updated_ns Int64,
    record String
) ENGINE = ReplacingMergeTree(revision)
ORDER BY rollout_id""",
        ),
        AddColumn("symbols", "critical", "UInt8 DEFAULT 0"),
    ),
)

_LEDGER = """CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
    version UInt32,
    name String,
    applied_ns Int64
) ENGINE = ReplacingMergeTree
ORDER BY version"""


def ledger_ddl(database: str) -> str:
    """DDL of the table that records which migrations ran."""
    return _LEDGER.format(db=database)
