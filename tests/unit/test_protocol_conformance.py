"""Conformance: the decode CLI over every real sample line, exactly as an operator runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path("/work/shared/iqfeed/samples/messages.txt")
NY = ZoneInfo("America/New_York")


def eastern_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micros: int = 0) -> int:
    wall = datetime(year, month, day, hour, minute, second, tzinfo=NY)
    return int(wall.astimezone(timezone.utc).timestamp()) * 1_000_000_000 + micros * 1000


def sections() -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    current = ""
    for line in SAMPLES.read_text("latin-1").splitlines():
        if line.startswith("#") or not line:
            continue
        if line.startswith("["):
            current = line.strip("[]")
            result[current] = []
        else:
            result[current].append(line)
    return result


def run_cli(stream: str, lines: list[str], *extra: str) -> list[dict[str, Any]]:
    stdin = "".join(line + "\r\n" for line in lines).encode("latin-1")
    done = subprocess.run(
        [sys.executable, "-m", "collectors.iqfeed.decode", "--stream", stream, *extra],
        input=stdin, capture_output=True, cwd=ROOT, timeout=30, check=True,
    )
    out = done.stdout.decode().splitlines()
    assert len(out) == len(lines), "exactly one JSON object per input line"
    return [json.loads(row) for row in out]


def check(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Every expected key has exactly the expected value (other keys may exist)."""
    assert {key: actual.get(key, "<missing>") for key in expected} == expected


def check_events(row: dict[str, Any], *expected: dict[str, Any]) -> None:
    assert "events" in row, row
    assert len(row["events"]) == len(expected), row
    for actual, wanted in zip(row["events"], expected):
        check(actual, wanted)


SAMPLE = sections()


def test_level1_samples() -> None:
    lines = SAMPLE["level1"]
    rows = run_cli("level1", lines)
    by_line = dict(zip(lines, rows))
    check_events(by_line["S,CURRENT PROTOCOL,6.2"], {"kind": "system", "name": "CURRENT PROTOCOL", "fields": ["6.2"], "connected": None})
    check_events(by_line["S,SERVER CONNECTED"], {"kind": "system", "name": "SERVER CONNECTED", "connected": True})
    check_events(by_line[lines[2]], {"kind": "system", "name": "CURRENT UPDATE FIELDNAMES"})
    check_events(by_line["T,20180709 14:18:31"], {"kind": "heartbeat", "ts_ns": eastern_ns(2018, 7, 9, 14, 18, 31)})
    check_events(
        rows[4],
        {"kind": "trade", "symbol": "AAPL", "price": 322.91, "size": 13, "ts_ns": eastern_ns(2018, 7, 9, 16, 53, 16, 164236),
         "conditions": ["87", "17"], "market_center": 11, "total_volume": 37620407, "basis": "O", "backfilled": False},
    )
    trade_ns = eastern_ns(2018, 7, 9, 19, 59, 53, 475143)
    check_events(
        rows[5],
        {"kind": "trade", "symbol": "AAPL", "price": 123.0, "size": 50, "ts_ns": trade_ns,
         "conditions": ["40", "01", "42"], "market_center": 11, "total_volume": 0, "basis": "C"},
        {"kind": "quote", "symbol": "AAPL", "bid": 123.0, "bid_size": 1700, "ask": 123.05, "ask_size": 200, "ts_ns": trade_ns},
    )
    check_events(by_line["n,AAPL"], {"kind": "symbol_not_found", "symbol": "AAPL"})
    check_events(by_line["E,Disconnected from server"], {"kind": "error", "message": "Disconnected from server"})
    check_events(by_line["S,SERVER DISCONNECTED"], {"kind": "system", "name": "SERVER DISCONNECTED", "connected": False})
    check_events(by_line["S,SYMBOL LIMIT REACHED,ZVZZT"], {"kind": "system", "name": "SYMBOL LIMIT REACHED", "fields": ["ZVZZT"]})


def test_level2_samples() -> None:
    rows = run_cli("level2", SAMPLE["level2"])
    ts = eastern_ns(2019, 4, 23, 20, 31, 4, 876740)
    base = {"kind": "depth", "symbol": "@ESM19", "ts_ns": ts}
    check_events(rows[0], {"kind": "system", "name": "CURRENT PROTOCOL", "fields": ["6.2"]})
    check_events(rows[1], {**base, "action": "add", "side": "bid", "price": 2938.25, "size": 65, "order_id": "12345678", "mmid": "MD01"})
    check_events(rows[2], {**base, "action": "update", "side": "ask", "price": 2938.25, "size": 65, "order_id": "12345678", "mmid": "MD01"})
    check_events(rows[3], {**base, "action": "summary", "side": "bid", "price": 2938.25, "size": 65, "order_count": 11, "order_id": ""})
    check_events(rows[4], {**base, "action": "update", "side": "ask", "price": 2938.25, "size": 65, "order_count": 10})
    check_events(rows[5], {**base, "action": "delete", "side": "ask", "price": 2938.25, "size": None})
    check_events(rows[6], {**base, "action": "delete", "side": "ask", "order_id": "12345678", "price": None})
    check_events(
        rows[7],
        {"kind": "depth", "symbol": "@ES#", "action": "summary", "side": "bid", "price": 2982.25, "size": 99, "mmid": "MD01",
         "ts_ns": eastern_ns(2019, 10, 18, 12, 49, 52, 696621)},
        {"kind": "depth", "symbol": "@ES#", "action": "summary", "side": "ask", "price": 2982.5, "size": 238, "mmid": "MD01",
         "ts_ns": eastern_ns(2019, 10, 18, 12, 49, 52, 541104)},
    )
    check_events(rows[8])  # M: market maker name, reference data only


def test_admin_samples() -> None:
    rows = run_cli("admin", SAMPLE["admin"])
    check_events(rows[0], {"kind": "system", "name": "STATS", "connected": True})
    assert rows[0]["events"][0]["fields"][:3] == ["66.112.148.223", "60002", "500"]
    check_events(rows[1], {"kind": "system", "name": "STATS", "connected": False})


def test_lookup_samples() -> None:
    lines = SAMPLE["lookup"]
    daily = [line for line in lines if line.startswith("2018-04-27")]
    ticks = [line for line in lines if line not in daily]
    rows = run_cli("lookup-ticks", ticks, "--symbol", "AAPL")
    check_events(
        rows[0],
        {"kind": "history_tick", "symbol": "AAPL", "ts_ns": eastern_ns(2018, 4, 17, 17, 51, 22, 123456), "price": 96.07,
         "size": 1061909, "total_volume": 0, "bid": 0.0, "ask": 0.0, "tick_id": 4145784264, "basis": "O",
         "market_center": 19, "conditions": ["14", "3A"]},
    )
    check_events(rows[1])  # !ENDMSG!
    check_events(rows[2], {"kind": "error", "message": "!NO_DATA!"})
    check_events(rows[3], {"kind": "error", "message": "Invalid number of parameters."})
    (bar,) = run_cli("lookup-daily", daily, "--symbol", "AAPL")
    check_events(
        bar,
        {"kind": "history_bar", "symbol": "AAPL", "ts_ns": eastern_ns(2018, 4, 27), "high": 164.33, "low": 160.63,
         "open": 164.0, "close": 162.32, "volume": 35655839, "open_interest": 0},
    )


def test_interval_bars_and_rejected_lines_keep_one_output_per_line() -> None:
    rows = run_cli("lookup-bars", ["7,LH,2026-03-10 10:01:00,11.0,9.0,10.0,10.5,5000,300,12,", "garbage", "7,!ENDMSG!,"])
    check_events(rows[0], {"kind": "history_bar", "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "request_id": "7"})
    assert "error" in rows[1] and "garbage" in rows[1]["error"]
    check_events(rows[2])
