"""Password entries: salted scrypt (standard library), and the legacy unsalted SHA-256 digests.

An entry is ``scrypt:ln=14,r=8,p=1:<salt>:<key>`` (salt and key in unpadded URL-safe
base64), so it carries its own cost parameters: raising the cost later leaves existing
entries valid. The alphabet holds no ``$``, ``"`` or ``'``, so the entry can be pasted into
TOML, a shell variable or a compose file without quoting surprises. scrypt with n = 2^14
and r = 8 costs 16 MiB and some 50 ms a check: cheap for a login, slow for a guesser with
a stolen config. A plain SHA-256 digest is neither salted nor slow: one GPU tries billions
of passwords a second against it, hence the warning while such entries remain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

DEFAULT_LN = 14
DEFAULT_R = 8
DEFAULT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_ENTRY = re.compile(r"scrypt:ln=(\d+),r=(\d+),p=(\d+):([A-Za-z0-9_-]+):([A-Za-z0-9_-]+)")
MIN_LENGTH = 10


class WeakPassword(ValueError):
    """The password is too short to protect an operator login."""


def hash_password(password: str, *, ln: int = DEFAULT_LN, r: int = DEFAULT_R, p: int = DEFAULT_P,
                  salt: bytes | None = None) -> str:
    """A new entry for ``password`` with a random salt (``salt`` only for tests of the format)."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    key = _scrypt(password, salt, ln, r, p, _KEY_BYTES)
    return f"scrypt:ln={ln},r={r},p={p}:{_b64(salt)}:{_b64(key)}"


def verify_password(entry: str, password: str) -> bool:
    """True when ``password`` matches the scrypt ``entry`` (constant-time compare; a malformed entry is False)."""
    match = _ENTRY.fullmatch(entry)
    if match is None:
        return False
    ln, r, p = (int(match[i]) for i in (1, 2, 3))
    expected = _unb64(match[5])
    return hmac.compare_digest(_scrypt(password, _unb64(match[4]), ln, r, p, len(expected)), expected)


def verify_sha256(digest: str, password: str) -> bool:
    """The legacy check: ``digest`` is the hex SHA-256 of the password."""
    return hmac.compare_digest(hashlib.sha256(password.encode()).hexdigest(), digest.lower())


# Checked against when the user name is unknown, so that an unknown name costs as long as a wrong password
# and the answer time does not tell which names exist.
DECOY_ENTRY = f"scrypt:ln={DEFAULT_LN},r={DEFAULT_R},p={DEFAULT_P}:{'A' * 22}:{'A' * 43}"


def _scrypt(password: str, salt: bytes, ln: int, r: int, p: int, length: int) -> bytes:
    n = 1 << ln
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=256 * r * (n + p) + (1 << 20))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
