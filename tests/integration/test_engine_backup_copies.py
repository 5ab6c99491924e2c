"""The engine's copies that outlive a lost disk or database, end to end: sealed segments and operator snapshots
reach the mirror, uptime is sampled, and a mirror that goes away raises the alert and clears it on return."""

from __future__ import annotations

import pytest

from config import load_settings
from runtime.engine import Engine
from storage.operator_backup import SUBDIRECTORY, list_snapshots
from storage.segments import list_segments
from tests.integration.pipeline import wait_until


def _firing(engine: Engine) -> set[str]:
    engine.evaluate_alerts()
    return {a.rule for a in engine.alert_book.active() if a.state == "firing"}


@pytest.mark.timeout(120)
def test_the_engine_mirrors_segments_and_operator_snapshots_and_alerts_while_the_mirror_is_gone(chdb_store, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    settings = load_settings(
        data_dir=tmp_path, feed={"symbols": ["AAPL"], "simulator_rate": 200},
        storage={"database": chdb_store.database}, monitoring={"enabled": False},
        backup={"segment_max_s": 1, "mirror_directory": mirror, "mirror_interval_s": 1, "operator_snapshot_s": 10},
    )
    engine = Engine(settings, store=chdb_store).start()
    try:
        wait_until(lambda: len(list_segments(mirror)) >= 2, 30, "sealed segments in the mirror")
        wait_until(lambda: list_snapshots(mirror / SUBDIRECTORY), 30, "an operator snapshot in the mirror")
        status = engine.status()
        assert status.mirror.state == "ok" and status.mirror.files_copied >= 3
        assert status.operator_snapshots.written >= 1 and status.operator_snapshots.last_error == ""
        wait_until(lambda: engine.status().uptime is not None, 15, "the first uptime sample")

        mirror.rename(tmp_path / "unmounted")
        wait_until(lambda: "backup_mirror_failed" in _firing(engine), 15, "the mirror alert")
        assert engine.status().backup.state == "ok"  # the backup itself is not held up
        (tmp_path / "unmounted").rename(mirror)
        wait_until(lambda: "backup_mirror_failed" not in _firing(engine), 15, "the mirror alert to clear")
    finally:
        engine.stop()
