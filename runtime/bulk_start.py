"""Start many symbols through the one operator action, so each start is checked and audited as a single one is.

Used by the dashboard's bulk add and by a staged rollout's stages. A refusal that will refuse every
symbol after it too (the watch limit or the fleet's capacity reached, the assignment topic not taking
changes) ends the run there: the rest are reported as not tried, with the reason, rather than
hammering a full feed or an unreachable broker a thousand times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bus.base import BusError
from collectors.iqfeed.protocol import InvalidSymbol, SymbolLimitReached

log = logging.getLogger(__name__)

LIMIT_PREFIX = "limit: "


@dataclass(frozen=True)
class StartOutcome:
    started: tuple[str, ...]
    refused: dict[str, str]  # symbol -> why it was not started (refused, or not tried after a refusal)

    @property
    def limit_reached(self) -> bool:
        return any(reason.startswith(LIMIT_PREFIX) for reason in self.refused.values())


def start_many(start: Callable[[str], object], symbols: Sequence[str],
               progress: Callable[[int, int], None] | None = None) -> StartOutcome:
    """``start(symbol)`` for each symbol in order; ``progress(done, total)`` after each."""
    started: list[str] = []
    refused: dict[str, str] = {}
    total = len(symbols)
    for done, symbol in enumerate(symbols, start=1):
        try:
            start(symbol)
        except SymbolLimitReached as exc:
            refused.update(_not_tried(symbols[done - 1:], f"{LIMIT_PREFIX}{exc}"))
            break
        except BusError as exc:
            refused.update(_not_tried(symbols[done - 1:], f"assignment topic unavailable: {exc}"))
            break
        except InvalidSymbol as exc:
            refused[symbol] = str(exc)
        else:
            started.append(symbol)
        if progress is not None:
            progress(done, total)
    if refused:
        log.warning("symbols not started", extra={"started": len(started), "refused": len(refused),
                                                  "sample": ", ".join(sorted(refused)[:10])})
    log.info("symbols started in bulk", extra={"started": len(started), "requested": total})
    return StartOutcome(tuple(started), refused)


def _not_tried(symbols: Sequence[str], reason: str) -> dict[str, str]:
    return {symbol: reason for symbol in symbols}
