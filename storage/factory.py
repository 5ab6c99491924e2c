"""Build the configured store from settings: the one place that knows both backends."""

from __future__ import annotations

from config import Settings
from storage.store import Store


def open_store(settings: Settings) -> Store:
    storage = settings.storage
    if storage.backend == "server":
        from storage.server_store import ClickHouseServerStore

        return ClickHouseServerStore(
            host=storage.host,
            port=storage.port,
            database=storage.database,
            user=storage.user,
            password=storage.password.get_secret_value(),
            pool_size=storage.pool_size,
            pool_wait_s=storage.pool_wait_s,
            secure=storage.secure,
            ca_certs=None if storage.ca_certs is None else str(storage.ca_certs),
            verify=storage.verify,
        )
    from storage.chdb_store import ChdbStore

    return ChdbStore(settings.data_dir / "chdb", database=storage.database)
