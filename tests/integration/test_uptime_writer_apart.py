"""A collector whose writer runs as its own process (storage.embedded_writer = false) does not judge the
writer's availability: it has none, and counting that as a bad minute would spend the writer's error budget
while the writer process stores fine."""

from __future__ import annotations

import pytest

from config import load_settings
from runtime.engine import Engine
from runtime.uptime import component_health

pytestmark = pytest.mark.timeout(60)


def test_a_collector_without_an_embedded_writer_tracks_feed_bus_and_storage_only(kafka_bootstrap, server_store,
                                                                                tmp_path):
    settings = load_settings(data_dir=tmp_path, bus={"kind": "kafka"}, kafka={"bootstrap_servers": kafka_bootstrap},
                             storage={"backend": "server", "database": server_store.database,
                                      "embedded_writer": False})
    engine = Engine(settings, store=server_store)  # not started: the tracker and the status are enough
    try:
        assert engine.status().writer is None and component_health(engine.status())["writer"] is False
        engine.uptime.sample(component_health(engine.status()))
        engine.uptime.close(None)
        components = {row.component for row in engine.uptime.report().rows}
        assert components == {"feed", "bus", "storage"}
    finally:
        engine.producer.close(1)
