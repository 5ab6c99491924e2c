"""``python -m monitoring.healthcheck URL``: exit 0 when URL answers HTTP 200, else 1 (container health checks).

Every TickOps process answers 200 while it serves: ``/healthz`` for ok and degraded (503 for down,
which a supervisor should restart), Streamlit's ``/_stcore/health`` once the dashboard serves. The
image needs no curl or wget for it; one line on stderr says why a check failed.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def check(url: str, timeout_s: float = 4.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - our own endpoint
            return response.status == 200, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}: {exc.read(300)!r}"
    except (OSError, ValueError) as exc:
        return False, str(exc)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m monitoring.healthcheck URL", file=sys.stderr)
        return 2
    healthy, why = check(argv[0])
    if not healthy:
        print(f"unhealthy: {argv[0]}: {why}", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
