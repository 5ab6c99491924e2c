"""``python -m collectors run``: an alias of ``python -m runtime run``, kept for deployments that name it."""

from runtime.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
