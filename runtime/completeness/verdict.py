"""The rule that says whether a symbol's stored day is complete (pure, no I/O).

What is compared, and why these references:

* **stored volume**: ``sum(size)`` of the symbol's stored trades in the Eastern calendar day,
  every basis counted (C last-qualified, E extended-hours, O other).
* **feed volume**: the day's cumulative volume the feed reported, the larger of the last
  Level 1 Total Volume the engine saw and the highest ``total_volume`` a stored trade carries.
  Total Volume is the running sum of every trade's size, whatever its basis: in the shared
  2021 tick sample each day's last TotalVolume equals the sum of all its sizes exactly
  (2021-03-01: 11,015 prints, 4,570 of them O and 362 E, 4,810,873 shares), and the
  simulator counts the same way. So stored must equal it: short means trades are missing; more means rows
  are doubled (or belong to another day). A trade that changes Total Volume without being
  streamed (a correction, a print the feed only counted) makes the two differ on a real
  feed: ``feed_volume_tolerance_pct`` (default 0) allows for it.
* **daily bar**: the lookup port's daily bar (``HDT``) PeriodVolume for the date. The
  simulator builds it from every tick of the date, but DTN's daily volume is an official
  consolidated figure whose rules (which conditions count, late reports) need not match
  the trade stream exactly; it is a second opinion, judged only as a shortfall and with
  ``daily_bar_tolerance_pct`` (default 1 %). A bar below stored volume says nothing wrong
  with storage (the simulator's bounded history gives such bars too).

Verdicts, judged after any backfill: ``excess`` when stored volume exceeds the feed volume
beyond its tolerance; else ``incomplete`` when either reference exceeds stored volume beyond
its tolerance; else ``complete`` (also when no reference is known: nothing says the symbol traded).
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.completeness import Verdict


@dataclass(frozen=True, slots=True)
class References:
    """What the day's volume should be; None where unknown."""

    feed_volume: int | None
    bar_volume: int | None


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Allowed shortfall (or, for the feed, excess) as a percentage of each reference."""

    feed_pct: float = 0.0
    bar_pct: float = 1.0


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    detail: str


def _allowed(reference: int, pct: float) -> float:
    return reference * pct / 100.0


def judge(stored_volume: int, refs: References, tolerances: Tolerances) -> Judgement:
    """The verdict for ``stored_volume`` against the references (see the module docstring)."""
    parts = [f"stored {stored_volume:,}"]
    feed, bar = refs.feed_volume, refs.bar_volume
    if feed is not None:
        parts.append(f"feed Total Volume {feed:,} ({stored_volume - feed:+,})")
    if bar is not None:
        parts.append(f"daily bar {bar:,} ({stored_volume - bar:+,})")
    detail = "; ".join(parts)
    if feed is not None and stored_volume - feed > _allowed(feed, tolerances.feed_pct):
        return Judgement("excess", detail + ": more stored than the feed reported (doubled rows?)")
    short_of_feed = feed is not None and feed - stored_volume > _allowed(feed, tolerances.feed_pct)
    short_of_bar = bar is not None and bar - stored_volume > _allowed(bar, tolerances.bar_pct)
    if short_of_feed or short_of_bar:
        return Judgement("incomplete", detail)
    return Judgement("complete", detail)


def feed_volume(live: int | None, stored_max: int) -> int | None:
    """The day's cumulative volume the feed reported: the larger of what the engine saw live and
    what the stored trades carry (-1: none did); None when neither is known."""
    known = [v for v in (live, stored_max) if v is not None and v >= 0]
    return max(known) if known else None
