"""Who may do what on the dashboard: logins checked against configured SHA-256 digests.

Viewing needs no login; acknowledging alerts and starting or stopping symbols need the
operator role, and every such action is audited under the operator's name.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from config import DashboardSettings

Role = Literal["viewer", "operator", "admin"]
_RANK = {"viewer": 0, "operator": 1, "admin": 2}
LOCAL = "local"


@dataclass(frozen=True)
class Operator:
    name: str
    role: Role


def demo_mode(settings: DashboardSettings) -> bool:
    return not settings.operators


def authenticate(settings: DashboardSettings, name: str, password: str) -> Operator | None:
    """The operator for a correct name and password, else None (constant-time compare)."""
    entry = settings.operators.get(name)
    digest = hashlib.sha256(password.encode()).hexdigest()
    if entry is None:
        return None
    if not hmac.compare_digest(digest, entry.password_sha256.get_secret_value().lower()):
        return None
    return Operator(name, entry.role)


def can_act(operator: Operator | None) -> bool:
    return operator is not None and _RANK[operator.role] >= _RANK["operator"]
