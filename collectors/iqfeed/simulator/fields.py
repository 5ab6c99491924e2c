"""Level 1 dynamic field sets: the field catalogue and per-selection line formatters.

IQFeed lets each Level 1 connection choose which fields its ``Q``/``P`` lines carry
(``S,SELECT UPDATE FIELDS``). A formatter is built once per distinct selection and
shared by every connection that chose it, so the stream formats one line per market
event per *selection*, not per client. Each field name maps to a text attribute of
:class:`~collectors.iqfeed.simulator.market.SymbolState`; the hot fields are kept as
ready text, the rare ones are computed only when selected.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable, Sequence

# Field name -> SymbolState text attribute. Names are IQFeed's; the order is the order
# of ``S,UPDATE FIELDNAMES`` (Symbol first, then alphabetical as IQConnect lists them).
FIELD_ATTRS: dict[str, str] = {
    "Symbol": "f_symbol",
    "7 Day Yield": "f_empty",
    "Ask": "f_ask",
    "Ask Change": "f_ask_change",
    "Ask Market Center": "f_ask_mc",
    "Ask Size": "f_ask_size",
    "Ask Time": "f_ask_time",
    "Available Regions": "f_empty",
    "Average Maturity": "f_empty",
    "Bid": "f_bid",
    "Bid Change": "f_bid_change",
    "Bid Market Center": "f_bid_mc",
    "Bid Size": "f_bid_size",
    "Bid Time": "f_bid_time",
    "Change": "f_change",
    "Change From Open": "f_change_from_open",
    "Close": "f_close",
    "Close Range 1": "f_empty",
    "Close Range 2": "f_empty",
    "Days to Expiration": "f_empty",
    "Decimal Precision": "f_precision",
    "Delay": "f_delay",
    "Exchange ID": "f_exchange_id",
    "Extended Trade": "f_ext_last",
    "Extended Trade Date": "f_ext_date",
    "Extended Trade Market Center": "f_ext_mc",
    "Extended Trade Size": "f_ext_size",
    "Extended Trade Time": "f_ext_time",
    "Extended Trading Change": "f_ext_change",
    "Extended Trading Difference": "f_ext_difference",
    "Financial Status Indicator": "f_empty",
    "Fraction Display Code": "f_fraction_code",
    "High": "f_high",
    "Last": "f_q_last",
    "Last Date": "f_q_date",
    "Last Market Center": "f_q_mc",
    "Last Size": "f_q_size",
    "Last Time": "f_q_time",
    "Low": "f_low",
    "Market Capitalization": "f_market_cap",
    "Market Open": "f_market_open",
    "Message Contents": "f_contents",
    "Most Recent Trade": "f_last",
    "Most Recent Trade Aggressor": "f_aggressor",
    "Most Recent Trade Conditions": "f_conds",
    "Most Recent Trade Date": "f_last_date",
    "Most Recent Trade Day Code": "f_day_code",
    "Most Recent Trade Market Center": "f_last_mc",
    "Most Recent Trade Size": "f_last_size",
    "Most Recent Trade Time": "f_last_time",
    "Net Asset Value": "f_empty",
    "Number of Trades Today": "f_trades",
    "Open": "f_open",
    "Open Interest": "f_empty",
    "Open Range 1": "f_empty",
    "Open Range 2": "f_empty",
    "Percent Change": "f_percent_change",
    "Percent Off Average Volume": "f_empty",
    "Previous Day Volume": "f_prev_volume",
    "Price-Earnings Ratio": "f_pe",
    "Range": "f_range",
    "Restricted Code": "f_restricted",
    "Settle": "f_empty",
    "Settlement Date": "f_empty",
    "Spread": "f_spread",
    "Tick": "f_tick",
    "TickID": "f_tick_id",
    "Total Volume": "f_volume",
    "Volatility": "f_empty",
    "VWAP": "f_vwap",
}

ALL_UPDATE_FIELDS: tuple[str, ...] = tuple(FIELD_ATTRS)

DEFAULT_UPDATE_FIELDS: tuple[str, ...] = (
    "Symbol",
    "Most Recent Trade",
    "Most Recent Trade Size",
    "Most Recent Trade Time",
    "Most Recent Trade Market Center",
    "Total Volume",
    "Bid",
    "Bid Size",
    "Ask",
    "Ask Size",
    "Open",
    "High",
    "Low",
    "Close",
    "Message Contents",
    "Most Recent Trade Conditions",
)

# The ``F`` fundamentals layout (``S,REQUEST FUNDAMENTAL FIELDNAMES``), Symbol first.
FUNDAMENTAL_FIELDS: tuple[str, ...] = (
    "Symbol", "Exchange ID", "PE", "Average Volume", "52 Week High", "52 Week Low",
    "Calendar Year High", "Calendar Year Low", "Dividend Yield", "Dividend Amount",
    "Dividend Rate", "Pay Date", "Ex-dividend Date", "Current Year EPS", "Next Year EPS",
    "Five-year Growth Percentage", "Fiscal Year End", "Company Name", "Root Option Symbol",
    "Percent Held By Institutions", "Beta", "Leaps", "Current Assets", "Current Liabilities",
    "Balance Sheet Date", "Long-term Debt", "Common Shares Outstanding", "Split Factor 1",
    "Split Factor 2", "Format Code", "Precision", "SIC", "Historical Volatility",
    "Security Type", "Listed Market", "52 Week High Date", "52 Week Low Date",
    "Calendar Year High Date", "Calendar Year Low Date", "Year End Close", "Maturity Date",
    "Coupon Rate", "Expiration Date", "Strike Price", "NAICS", "Exchange Root",
    "Option Premium Multiplier", "Option Multiple Deliverable", "Session Open Time",
    "Session Close Time", "Base Currency", "Contract Size", "Contract Months",
    "Minimum Tick Size", "First Delivery Date", "FIGI", "Security SubType",
)


class UnknownFieldError(ValueError):
    """A client selected a Level 1 field IQFeed does not have; the message names it."""


def select_fields(names: Sequence[str]) -> tuple[str, ...]:
    """The field list a ``S,SELECT UPDATE FIELDS`` request yields: Symbol first, no repeats.

    Empty names (a trailing comma) are skipped; an unknown name rejects the whole
    request so that a typo never silently drops a column the client will then misread.
    """
    chosen: list[str] = ["Symbol"]
    for raw in names:
        name = raw.strip()
        if not name or name in chosen:
            continue
        if name not in FIELD_ATTRS:
            raise UnknownFieldError(f"unknown update field {name!r}")
        chosen.append(name)
    return tuple(chosen)


class UpdateFormatter:
    """Formats ``Q``/``P`` lines of one field selection from a symbol's state."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        attrs = [FIELD_ATTRS[name] for name in fields]
        getter = attrgetter(*attrs)
        values: Callable[[object], tuple[str, ...]] = getter if len(attrs) > 1 else (lambda state: (getter(state),))
        join = ",".join

        # Closures, not methods: called once per market event per selection, so the
        # attribute lookups a method would repeat are done here, once.
        def update(state: object) -> str:
            """A ``Q`` line (trade or quote update)."""
            return "Q," + join(values(state)) + ",\r\n"

        def summary(state: object) -> str:
            """A ``P`` line (summary sent on watch and refresh)."""
            return "P," + join(values(state)) + ",\r\n"

        if fields == DEFAULT_UPDATE_FIELDS:
            # The selection nearly every client uses: built from the state's pre-joined runs
            # (``f_trade_part`` is Symbol..Total Volume, ``f_ohlc`` is Open..Close).
            def update(state: Any) -> str:
                return (
                    f"Q,{state.f_trade_part},{state.f_bid},{state.f_bid_size},{state.f_ask},{state.f_ask_size},"
                    f"{state.f_ohlc},{state.f_contents},{state.f_conds},\r\n"
                )

        self.update = update
        self.summary = summary


class FormatterRegistry:
    """One shared :class:`UpdateFormatter` per distinct selection.

    Sharing lets the stream reuse a line across clients by identity check alone.
    """

    def __init__(self) -> None:
        self._by_fields: dict[tuple[str, ...], UpdateFormatter] = {}

    def get(self, fields: tuple[str, ...]) -> UpdateFormatter:
        formatter = self._by_fields.get(fields)
        if formatter is None:
            formatter = self._by_fields[fields] = UpdateFormatter(fields)
        return formatter
