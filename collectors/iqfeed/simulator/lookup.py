"""Lookup-port history requests: parsing, rate limiting and replies (pure, clock passed in).

Supported: ``HTX``/``HTD``/``HTT`` ticks, ``HIX``/``HID``/``HIT`` interval bars,
``HDX``/``HDT`` daily, ``HWX`` weekly and ``HMX`` monthly bars, with IQFeed's parameter
order. Reply framing:

* data rows ``<ReqID>,LH,<row>`` under protocol 6.2, ``<ReqID>,<row>`` under 6.1; without
  a request id the ``<ReqID>,`` part is left out;
* every request, answered or failed, ends with ``<ReqID>,!ENDMSG!,`` (``!ENDMSG!,``
  without an id), so a client waiting for the end never hangs;
* errors ``<ReqID>,E,<text>,`` or, without an id, ``E,<text>,`` — ``!NO_DATA!`` (known
  symbol, nothing in range; the id-less form is IQFeed's ``E,!NO_DATA!,,``),
  ``Invalid symbol.`` (not one of the simulator's symbols), ``Invalid <parameter>
  '<value>'.``, and ``Too many simultaneous history requests`` (the text DTN's servers
  send when the rate limit below is exceeded);
* a request whose parameter count is wrong gets ``E,Invalid number of parameters.,``
  alone and an unknown command ``E,!SYNTAX_ERROR!,`` alone: neither has a request id
  the client could wait on.

Rate limit: a token bucket of ``rate`` requests refilled at ``rate`` per second over all
lookup connections (DTN limits a login, not a socket): a burst of 50 passes at once,
then about 50 a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from collectors.iqfeed.simulator.history import (
    Bar,
    daily_bars,
    daily_row,
    interval_bars,
    interval_row,
    monthly_bars,
    select_ticks,
    tick_row,
    weekly_bars,
)
from collectors.iqfeed.simulator.market import SymbolState, Tick
from collectors.iqfeed.simulator.wire import (
    US_PER_DAY,
    US_PER_SECOND,
    TimeText,
    day_start,
    parse_compact_date,
    parse_compact_datetime,
    parse_compact_time,
    sanitize,
)

RATE_LIMIT_TEXT = "Too many simultaneous history requests"
SYNTAX_ERROR = "E,!SYNTAX_ERROR!,\r\n"
INVALID_PARAMETER_COUNT = "E,Invalid number of parameters.,\r\n"

# Command -> (parameter names in IQFeed's order, how many are required).
SPECS: dict[str, tuple[tuple[str, ...], int]] = {
    "HTX": (("symbol", "max_points", "direction", "request_id", "per_send"), 2),
    "HTD": (("symbol", "days", "max_points", "filter_begin", "filter_end", "direction", "request_id", "per_send"), 2),
    "HTT": (("symbol", "begin", "end", "max_points", "filter_begin", "filter_end", "direction", "request_id",
             "per_send"), 3),
    "HIX": (("symbol", "interval", "max_points", "direction", "request_id", "per_send", "interval_type",
             "label_at_beginning"), 3),
    "HID": (("symbol", "interval", "days", "max_points", "filter_begin", "filter_end", "direction", "request_id",
             "per_send", "interval_type", "label_at_beginning"), 3),
    "HIT": (("symbol", "interval", "begin", "end", "max_points", "filter_begin", "filter_end", "direction",
             "request_id", "per_send", "interval_type", "label_at_beginning"), 4),
    "HDX": (("symbol", "max_points", "direction", "request_id", "per_send"), 2),
    "HDT": (("symbol", "begin_date", "end_date", "max_points", "direction", "request_id", "per_send"), 3),
    "HWX": (("symbol", "max_points", "direction", "request_id", "per_send"), 2),
    "HMX": (("symbol", "max_points", "direction", "request_id", "per_send"), 2),
}


class LookupRequestError(ValueError):
    """A request parameter is invalid; ``text`` is the error IQFeed-style."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class RateLimiter:
    """Token bucket: ``rate`` tokens, refilled at ``rate`` per second; time is passed in."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.clock = clock
        self._tokens = rate
        self._at = clock()

    def allow(self) -> bool:
        """Take a token if there is one."""
        now = self.clock()
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass(frozen=True)
class Request:
    """One parsed history request; ``params`` maps IQFeed's parameter names to raw text."""

    command: str
    params: Mapping[str, str]

    @property
    def request_id(self) -> str:
        return self.params.get("request_id", "")

    def text(self, name: str) -> str:
        return self.params.get(name, "").strip()

    def integer(self, name: str, default: int | None = None, minimum: int = 0) -> int | None:
        raw = self.text(name)
        if not raw:
            return default
        if not raw.isdigit() or int(raw) < minimum:
            raise LookupRequestError(f"Invalid {name.replace('_', ' ')} '{sanitize(raw, 20)}'.")
        return int(raw)

    def parsed(self, name: str, parse: Callable[[str], object]) -> object | None:
        raw = self.text(name)
        if not raw:
            return None
        try:
            return parse(raw)
        except ValueError:
            raise LookupRequestError(f"Invalid {name.replace('_', ' ')} '{sanitize(raw, 20)}'.") from None


def parse_request(line: str) -> Request | str:
    """A :class:`Request`, or the error line to send when the line is not one."""
    fields = line.split(",")
    spec = SPECS.get(fields[0].strip().upper())
    if spec is None:
        return SYNTAX_ERROR
    names, required = spec
    values = fields[1:]
    while len(values) > len(names) and not values[-1].strip():
        values.pop()  # trailing empty fields (a trailing comma) are harmless
    if not required <= len(values) <= len(names):
        return INVALID_PARAMETER_COUNT
    return Request(fields[0].strip().upper(), dict(zip(names, values)))


class LookupService:
    """Answers history requests from the symbols' in-memory tick histories."""

    def __init__(self, states: Mapping[str, SymbolState], limiter: RateLimiter) -> None:
        self.states = states
        self.limiter = limiter
        self.text = TimeText()
        self.requests = 0
        self.rate_limited = 0

    def respond(self, line: str, protocol: str) -> Iterator[str]:
        """Reply lines (CRLF-terminated) for one request line, produced lazily."""
        parsed = parse_request(line)
        if isinstance(parsed, str):
            yield parsed
            return
        self.requests += 1
        req_id = parsed.request_id
        prefix = f"{req_id}," if req_id else ""
        row_prefix = prefix + ("LH," if protocol >= "6.2" else "")
        end = f"{prefix}!ENDMSG!,\r\n"
        if not self.limiter.allow():
            self.rate_limited += 1
            yield f"{prefix}E,{RATE_LIMIT_TEXT},\r\n"
            yield end
            return
        state = self.states.get(parsed.text("symbol"))
        if state is None:
            yield f"{prefix}E,Invalid symbol.,\r\n"
            yield end
            return
        try:
            rows = self._rows(parsed, list(state.history))
        except LookupRequestError as exc:
            yield f"{prefix}E,{exc.text},\r\n"
            yield end
            return
        if not rows:
            yield f"{prefix}E,!NO_DATA!,\r\n" if req_id else "E,!NO_DATA!,,\r\n"
            yield end
            return
        for row in rows:
            yield f"{row_prefix}{row}\r\n"
        yield end

    def _rows(self, req: Request, ticks: list[Tick]) -> list[str]:
        direction = req.text("direction") or "0"
        if direction not in ("0", "1"):
            raise LookupRequestError(f"Invalid direction '{sanitize(direction, 5)}'.")
        max_points = req.integer("max_points", default=0) or 0
        command = req.command
        selected = select_ticks(
            ticks,
            begin_us=req.parsed("begin", parse_compact_datetime),  # type: ignore[arg-type]
            end_us=_end_of_second(req.parsed("end", parse_compact_datetime)),  # type: ignore[arg-type]
            days=req.integer("days", minimum=1),
            filter_begin_s=req.parsed("filter_begin", parse_compact_time),  # type: ignore[arg-type]
            filter_end_s=req.parsed("filter_end", parse_compact_time),  # type: ignore[arg-type]
        )
        text = self.text
        if command.startswith("HT"):
            rows = [tick_row(t, text) for t in _newest(selected, max_points)]
        elif command.startswith("HI"):
            interval = req.integer("interval", minimum=1)
            kind = (req.text("interval_type") or "s").lower()
            if kind not in ("s", "v", "t"):
                raise LookupRequestError(f"Invalid interval type '{sanitize(kind, 5)}'.")
            label = req.text("label_at_beginning") == "1"
            bars = interval_bars(selected, interval or 1, kind, label)
            rows = [interval_row(b, text) for b in _newest(bars, max_points)]
        else:
            bars = _daily_family(command, req, selected)
            rows = [daily_row(b, text) for b in _newest(bars, max_points)]
        return rows if direction == "1" else rows[::-1]


def _end_of_second(end_us: int | None) -> int | None:
    """An end time given to the second includes that whole second."""
    return None if end_us is None else end_us + US_PER_SECOND - 1


def _newest(items: list, max_points: int) -> list:
    """The newest ``max_points`` items (all when 0), still oldest first."""
    return items[-max_points:] if max_points else items


def _daily_family(command: str, req: Request, ticks: list[Tick]) -> list[Bar]:
    if command == "HDT":
        begin = req.parsed("begin_date", parse_compact_date)
        end = req.parsed("end_date", parse_compact_date)
        ticks = select_ticks(
            ticks,
            begin_us=day_start(begin) if begin else None,  # type: ignore[arg-type]
            end_us=day_start(end) + US_PER_DAY - 1 if end else None,  # type: ignore[arg-type]
        )
    if command == "HWX":
        return weekly_bars(ticks)
    if command == "HMX":
        return monthly_bars(ticks)
    return daily_bars(ticks)
