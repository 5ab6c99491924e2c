"""Lookup requests: parsing, framing, errors and the rate limit (no sockets)."""

from __future__ import annotations

import pytest

from collectors.iqfeed.simulator.lookup import (
    INVALID_PARAMETER_COUNT,
    RATE_LIMIT_TEXT,
    SYNTAX_ERROR,
    LookupService,
    RateLimiter,
    parse_request,
)
from collectors.iqfeed.simulator.market import SymbolState
from collectors.iqfeed.simulator.wire import TimeText, parse_history_timestamp

pytestmark = pytest.mark.timeout(30)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _service(rate: float = 1000.0, clock: FakeClock | None = None) -> LookupService:
    st = SymbolState("AAPL", 0, TimeText(), 1000)
    for i in range(5):
        t = parse_history_timestamp(f"2021-03-0{1 + i // 3} 10:00:0{i}.000001")
        st.set_bid(1_000_000 + i * 100, 100, t)
        st.set_ask(1_000_200 + i * 100, 100, t)
        st.trade(1_000_100 + i * 100, 100 + i, t, 11, "C", "01", 1)
    quiet = SymbolState("MSFT", 1, TimeText(), 1000)
    return LookupService({"AAPL": st, "MSFT": quiet}, RateLimiter(rate, clock or FakeClock()))


def _reply(service: LookupService, line: str, protocol: str = "6.2") -> list[str]:
    out = list(service.respond(line, protocol))
    assert all(x.endswith("\r\n") for x in out)
    return [x[:-2] for x in out]


def test_unknown_commands_and_wrong_parameter_counts() -> None:
    assert parse_request("HXX,AAPL,10") == SYNTAX_ERROR
    assert parse_request("S,CONNECT") == SYNTAX_ERROR
    assert parse_request("HTX,AAPL") == INVALID_PARAMETER_COUNT
    assert parse_request("HTX,AAPL,1,1,id,100,extra") == INVALID_PARAMETER_COUNT
    request = parse_request("htx,AAPL,10,1,id,,,")  # trailing empty fields are fine
    assert not isinstance(request, str) and request.command == "HTX" and request.request_id == "id"


def test_ticks_with_request_id_under_62_have_the_lh_prefix_and_end_marker() -> None:
    lines = _reply(_service(), "HTX,AAPL,2,1,req1")
    assert lines[-1] == "req1,!ENDMSG!,"
    assert [x.split(",")[:3] for x in lines[:-1]] == [
        ["req1", "LH", "2021-03-02 10:00:03.000001"],
        ["req1", "LH", "2021-03-02 10:00:04.000001"],
    ]
    assert lines[0] == "req1,LH,2021-03-02 10:00:03.000001,100.0400,103,103,100.0300,100.0500,4,C,11,01,1,2,"


def test_without_request_id_and_under_61_rows_have_no_prefix_and_come_newest_first() -> None:
    lines = _reply(_service(), "HTX,AAPL,3", protocol="6.1")
    assert lines[-1] == "!ENDMSG!,"
    stamps = [x.split(",")[0] for x in lines[:-1]]
    assert stamps == sorted(stamps, reverse=True) and len(stamps) == 3


def test_errors_are_framed_and_always_end() -> None:
    service = _service()
    assert _reply(service, "HTX,MSFT,10,1,r2") == ["r2,E,!NO_DATA!,", "r2,!ENDMSG!,"]
    assert _reply(service, "HTX,MSFT,10") == ["E,!NO_DATA!,,", "!ENDMSG!,"]
    assert _reply(service, "HTX,NOPE,10,1,r3") == ["r3,E,Invalid symbol.,", "r3,!ENDMSG!,"]
    assert _reply(service, "HTX,AAPL,ten,1,r4") == ["r4,E,Invalid max points 'ten'.,", "r4,!ENDMSG!,"]
    assert _reply(service, "HTT,AAPL,2021-03-01,,,,,1,r5")[0] == "r5,E,Invalid begin '2021-03-01'.,"
    assert _reply(service, "HIX,AAPL,60,10,1,r6,,x")[0] == "r6,E,Invalid interval type 'x'.,"


def test_time_range_days_and_bar_requests() -> None:
    service = _service()
    htt = _reply(service, "HTT,AAPL,20210301 100001,20210302 100003,,,,1,t")
    assert [x.split(",")[2][-15:] for x in htt[:-1]] == ["10:00:01.000001", "10:00:02.000001", "10:00:03.000001"]
    htd = _reply(service, "HTD,AAPL,1,,,,1,d")
    assert len(htd) == 3 and all("2021-03-02" in x for x in htd[:-1])
    hix = _reply(service, "HIX,AAPL,86400,10,1,i")
    assert [x.split(",")[2] for x in hix[:-1]] == ["2021-03-02 00:00:00", "2021-03-03 00:00:00"]
    hdx = _reply(service, "HDX,AAPL,10,1,x")
    assert hdx[:-1] == ["x,LH,2021-03-01,100.0300,100.0100,100.0100,100.0300,303,0,",
                        "x,LH,2021-03-02,100.0500,100.0400,100.0400,100.0500,207,0,"]
    assert _reply(service, "HDT,AAPL,20210302,20210302,,1,y")[0].startswith("y,LH,2021-03-02,")
    assert len(_reply(service, "HWX,AAPL,5,1,w")) == 2 and len(_reply(service, "HMX,AAPL,5,1,m")) == 2


def test_rate_limit_is_a_bucket_of_rate_refilled_each_second() -> None:
    clock = FakeClock()
    service = _service(rate=50, clock=clock)
    replies = [_reply(service, f"HTX,AAPL,1,1,q{i}")[0] for i in range(51)]
    assert all(",LH," in r for r in replies[:50])
    assert replies[50] == f"q50,E,{RATE_LIMIT_TEXT},"
    clock.now += 0.1  # five tokens back
    assert sum(",LH," in _reply(service, f"HTX,AAPL,1,1,z{i}")[0] for i in range(10)) == 5
    assert service.rate_limited == 6
