"""Wait until a Kafka broker answers a metadata request: `wait_for_kafka.py HOST:PORT SECONDS [PIDFILE]`.

Used by scripts/services.sh; exits 1 on timeout or when the broker process (pid file) dies,
so the caller can point the operator at the broker log instead of hanging.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from confluent_kafka.admin import AdminClient


def _alive(pidfile: str | None) -> bool:
    if not pidfile or not os.path.exists(pidfile):
        return True
    try:
        os.kill(int(open(pidfile).read().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def main() -> int:
    bootstrap, seconds = sys.argv[1], float(sys.argv[2])
    pidfile = sys.argv[3] if len(sys.argv) > 3 else None
    quiet = logging.getLogger("wait_for_kafka")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": quiet})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pidfile):
            print(f"broker process from {pidfile} exited", file=sys.stderr)
            return 1
        try:
            metadata = admin.list_topics(timeout=2)
            if metadata.brokers:
                return 0
        except Exception:  # noqa: BLE001 - any failure here just means "not ready yet"
            pass
        time.sleep(0.5)
    return 1


if __name__ == "__main__":
    sys.exit(main())
