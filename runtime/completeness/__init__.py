"""End-of-day completeness: after each trading day, is every watched symbol's day fully stored?

    days.py      which days are due (NYSE calendar: after the extended session plus a grace)
    verdict.py   the rule: stored volume against the feed's Total Volume and the daily bar (pure)
    volumes.py   the Total Volume the engine saw live, per symbol and day
    checker.py   one day: compare, backfill a shortfall from the tick history, recount, record
    job.py       the engine's job (once a minute: due days, verdicts kept for the alert)
    __main__.py  ``python -m runtime.completeness --day YYYY-MM-DD``: the same check by hand

Verdicts are stored in ``day_completeness`` (storage/completeness.py), shown on the Data
integrity page and alerted as ``day_incomplete``.
"""
