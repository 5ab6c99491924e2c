"""Which trading days are due for the end-of-day check, and what a day spans (pure; the NYSE calendar).

A day is checked once its extended session has ended plus a grace period: the day's
Total Volume and its daily bar count pre- and post-market trades (the 2021 sample has
prints until 19:58), so checking at 16:00 would compare a day still growing. The
extended session ends at 20:00 Eastern, or 17:00 on early-close days
(``collectors.market_hours``). The grace lets the last prints reach storage and IQFeed
settle its daily bar.

A day is the Eastern calendar date, midnight to midnight, as the daily bar and the
trades' own dates count it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from collectors.market_hours import EASTERN, eastern_date, trading_day

_NS = 1_000_000_000


def day_bounds_ns(day: date) -> tuple[int, int]:
    """``[start, end)`` of an Eastern calendar date in UTC epoch ns (23 or 25 hours on DST days)."""
    start = datetime.combine(day, time(0), EASTERN)
    end = datetime.combine(day + timedelta(days=1), time(0), EASTERN)
    return int(start.timestamp()) * _NS, int(end.timestamp()) * _NS


def check_after_ns(day: date, grace_s: float) -> int | None:
    """When ``day`` may be checked: the end of its extended session plus ``grace_s``; None if no trading day."""
    sessions = trading_day(day)
    if sessions is None:
        return None
    return sessions.post_close_ns + int(grace_s * _NS)


def due_days(now_ns: int, grace_s: float, lookback_days: int) -> list[date]:
    """Trading days among the last ``lookback_days`` calendar days (and today) whose check time has
    passed at ``now_ns``, oldest first. The lookback lets a process that was down at a check time
    catch up, without reaching far back."""
    today = eastern_date(now_ns)
    due = []
    for back in range(lookback_days, -1, -1):
        day = today - timedelta(days=back)
        after = check_after_ns(day, grace_s)
        if after is not None and after <= now_ns:
            due.append(day)
    return due
