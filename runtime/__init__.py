"""The owner of a TickOps process: the engine and what it runs (jobs, live state, symbol control,
backfill, validation, storage link), its status and the metrics and health read from it.

It sits above the feed (collectors), the bus, storage and alerts, and imports them; none of
them imports it. The event vocabulary (:mod:`events`) sits below them all.
"""
