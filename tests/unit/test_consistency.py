"""The consistency check's digests: the same prints give the same digest whatever order they arrive in;
one altered print is named with its minute; partial first minutes, backfilled and late trades stay out;
one side alone is given up silently after the wait."""

from __future__ import annotations

from events import Quote, Trade
from runtime.consistency import (
    MINUTE_NS,
    ConsistencyCheck,
    Verdict,
    DigestBook,
    decode_digest,
    differences,
    encode_digest,
)

T0 = 1_700_000_040 * 10**9  # a minute boundary
S = 10**9
SYMBOLS = frozenset({"AAPL"})


def trade(at_s: float, price: float, size: int, total: int, *, symbol: str = "AAPL", backfilled: bool = False) -> Trade:
    return Trade(symbol=symbol, price=price, size=size, ts_ns=T0 + int(at_s * S), total_volume=total,
                 backfilled=backfilled)


# a first minute (partial, never handed out), then the minute under test
PRINTS = [trade(30, 9.0, 5, 100),
          trade(61, 10.0, 100, 200), trade(75, 10.5, 50, 250), trade(75, 10.25, 25, 275), trade(119, 10.1, 10, 285)]


def digests_of(instance: str, prints: list[Trade], now_s: float = 135) -> list:
    book = DigestBook(instance)
    book.add(prints, SYMBOLS)
    return book.close(T0 + int(now_s * S), close_after_ns=10 * S)


def test_a_closed_minute_is_digested_by_exchange_time_whatever_the_arrival_order():
    [digest] = digests_of("c1", PRINTS)
    assert (digest.minute_ns, digest.trades, digest.volume, digest.first_price, digest.last_price,
            digest.max_total_volume) == (T0 + MINUTE_NS, 4, 185, 10.0, 10.1, 285)
    [shuffled] = digests_of("c2", [PRINTS[0], *reversed(PRINTS[1:])])
    assert differences(digest, shuffled) == ()
    assert decode_digest(digest.key, encode_digest(digest)) == digest


def test_a_minute_stays_open_until_the_feed_clock_passes_its_end_by_the_close_delay():
    assert digests_of("c1", PRINTS, now_s=125) == [], "120 s + 10 s close delay not reached at 125 s"
    book = DigestBook("c1")
    book.add(PRINTS, SYMBOLS)
    assert book.close(T0 + 135 * S, 10 * S) and book.partial == 1, "the first minute (watch began in it) is dropped"
    book.add([trade(100, 10.0, 1, 286)], SYMBOLS)
    assert book.late == 1 and book.close(T0 + 300 * S, 10 * S) == []


def test_backfilled_quotes_and_other_symbols_trades_are_not_digested():
    extra = [trade(80, 99.0, 1, 1, backfilled=True), trade(80, 5.0, 1, 1, symbol="MSFT"),
             Quote(symbol="AAPL", bid=10.0, bid_size=1, ask=10.1, ask_size=1, ts_ns=T0 + 80 * S)]
    assert digests_of("c1", PRINTS + extra) == digests_of("c1", PRINTS)


def test_one_altered_print_is_reported_with_its_symbol_minute_and_what_differs():
    altered = [*PRINTS[:2], trade(75, 10.5, 60, 260), trade(75, 10.25, 25, 285), PRINTS[4]]
    check = ConsistencyCheck(wait_ns=120 * S, shown_ns=3600 * S)
    entries = {d.key: encode_digest(d) for d in digests_of("c1", PRINTS) + digests_of("c2", altered)}
    done = check.review(entries, T0 + 140 * S)
    assert sorted(done) == sorted(entries), "a compared pair is done (deleted from the topic)"
    [(symbol, what)] = check.inconsistent().items()
    assert symbol == "AAPL" and what.startswith("2023-11-14 22:15 UTC: volume 185 (c1) != 195 (c2)")
    stats = check.stats()
    assert (stats.comparisons, stats.differences, stats.unpaired) == (1, 1, 0)
    assert check.review({}, T0 + 4000 * S) == [] and check.inconsistent() == {}, "shown for an hour, then resolved"


def test_agreeing_digests_are_compared_silently_and_one_side_alone_is_given_up_after_the_wait():
    check = ConsistencyCheck(wait_ns=120 * S, shown_ns=3600 * S)
    pair = {d.key: encode_digest(d) for d in digests_of("c1", PRINTS) + digests_of("c2", PRINTS)}
    assert len(check.review(pair, T0)) == 2 and check.inconsistent() == {}
    [alone] = digests_of("c1", [trade(30, 1.0, 1, 1), trade(200, 1.0, 1, 2)], now_s=300)
    lonely = {alone.key: encode_digest(alone)}
    assert check.review(lonely, T0) == [] and check.stats().waiting == 1
    assert check.review(lonely, T0 + 119 * S) == []
    assert check.review(lonely, T0 + 120 * S) == [alone.key] and check.inconsistent() == {}
    assert (check.stats().comparisons, check.stats().unpaired) == (1, 1)


def test_an_unreadable_digest_record_is_counted_logged_and_deleted_not_fatal():
    check = ConsistencyCheck(wait_ns=S, shown_ns=S)
    assert check.review({"AAPL|1|c1": b"not json"}, T0) == ["AAPL|1|c1"]
    assert check.stats().rejected == 1 and "not JSON" in check.rejected["AAPL|1|c1"]


def test_each_symbols_latest_compared_minute_is_kept_as_its_verdict_with_what_differed():
    altered = [*PRINTS[:2], trade(75, 10.5, 60, 260), trade(75, 10.25, 25, 285), PRINTS[4]]
    check = ConsistencyCheck(wait_ns=120 * S, shown_ns=3600 * S)
    assert check.verdicts() == {}
    check.review({d.key: encode_digest(d) for d in digests_of("c1", PRINTS) + digests_of("c2", altered)}, T0)
    [(symbol, verdict)] = check.verdicts().items()
    assert symbol == "AAPL" and verdict.minute_ns == T0 + MINUTE_NS
    assert verdict.differences[0] == "volume 185 (c1) != 195 (c2)"
    later = [trade(125, 11.0, 1, 400), trade(190, 11.0, 1, 401)]  # a later watch: its first minute is partial
    check.review({d.key: encode_digest(d) for d in digests_of("c1", later, 260) + digests_of("c2", later, 260)}, T0)
    assert check.verdicts()["AAPL"] == Verdict(T0 + 3 * MINUTE_NS, ()), "a later minute that agrees replaces it"
