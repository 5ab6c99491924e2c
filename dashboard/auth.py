"""Who may do what on the dashboard: logins, their throttling and auditing, roles, demo mode.

Viewing needs no login (viewer). Acknowledging alerts and starting or stopping symbols
(and rollouts) need the operator role; the admin role adds what concerns the installation
itself (the effective settings, verifying the audit trail). Every login, failed login,
refused attempt and sign-out is audited under the name that was typed.

Demo mode (no operators configured: every visitor is ``local``, an admin) is for a
dashboard only its own machine can reach: on any other listen address it refuses to run
unless ``dashboard.allow_demo`` says so.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from config import USERS_COMMAND, DashboardSettings
from dashboard.passwords import DECOY_ENTRY, verify_password, verify_sha256
from dashboard.throttle import LoginThrottle, ThrottlePolicy

log = logging.getLogger(__name__)

Role = Literal["viewer", "operator", "admin"]
_RANK = {"viewer": 0, "operator": 1, "admin": 2}
LOCAL = "local"
_LOOPBACK_NAMES = {"localhost"}

# actor, action, subject, details: AlertStore.audit
Audit = Callable[[str, str, str, str], object]


@dataclass(frozen=True)
class Operator:
    name: str
    role: Role


def can_act(operator: Operator | None) -> bool:
    """Start/stop symbols, acknowledge alerts, rollouts."""
    return operator is not None and _RANK[operator.role] >= _RANK["operator"]


def can_administer(operator: Operator | None) -> bool:
    """The installation itself: effective settings, audit trail verification (restores run from the CLI)."""
    return operator is not None and operator.role == "admin"


def demo_mode(settings: DashboardSettings) -> bool:
    return not settings.operators


def demo_operator() -> Operator:
    return Operator(LOCAL, "admin")


def is_loopback(address: str | None) -> bool:
    """Whether Streamlit's ``server.address`` reaches this machine only (unset: every interface)."""
    if not address:
        return False
    if address.startswith("unix://") or address in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to anything
        return False


def demo_refusal(settings: DashboardSettings, address: str | None) -> str | None:
    """Why the dashboard must not run (None when it may)."""
    if not demo_mode(settings) or settings.allow_demo or is_loopback(address):
        return None
    where = f"address {address}" if address else "every network interface (server.address unset)"
    return (f"Refusing to run in demo mode: no operators are configured and the dashboard listens on {where}, "
            "so anyone who can reach it could start and stop symbols and acknowledge alerts. Configure operators "
            f"(`{USERS_COMMAND}` prints the entry), or listen on loopback only (`--server.address 127.0.0.1`), "
            "or accept the risk with dashboard.allow_demo = true (TICKOPS_DASHBOARD__ALLOW_DEMO=true).")


def legacy_warning(settings: DashboardSettings) -> str | None:
    """The warning while operators log in with unsalted SHA-256 digests (None when none do)."""
    legacy = settings.legacy_operators()
    if not legacy:
        return None
    return (f"{len(legacy)} operator login(s) use a legacy unsalted password_sha256 entry, which a stolen "
            f"configuration gives away quickly: create a new entry with `{USERS_COMMAND}` and replace "
            "password_sha256 by the password_hash it prints.")


def authenticate(settings: DashboardSettings, name: str, password: str) -> Operator | None:
    """The operator for a correct name and password, else None.

    An unknown name is checked against a decoy entry, so it costs as long as a wrong password.
    """
    entry = settings.operators.get(name)
    if entry is None:
        verify_password(DECOY_ENTRY, password)
        return None
    if entry.password_hash is not None:
        valid = verify_password(entry.password_hash.get_secret_value(), password)
    else:
        assert entry.password_sha256 is not None, "the settings require one of the two"
        valid = verify_sha256(entry.password_sha256.get_secret_value(), password)
    return Operator(name, entry.role) if valid else None


def throttle_for(settings: DashboardSettings, clock: Callable[[], float] = time.monotonic) -> LoginThrottle:
    return LoginThrottle(ThrottlePolicy(settings.lockout_after_failures, settings.lockout_initial_s,
                                        settings.lockout_max_s, settings.lockout_forget_s), clock=clock)


@dataclass(frozen=True)
class LoginResult:
    operator: Operator | None
    message: str  # what the login form says when there is no operator


def attempt_login(settings: DashboardSettings, throttle: LoginThrottle, audit: Audit, name: str, password: str,
                  client: str | None) -> LoginResult:
    """Check a login through the throttle, auditing every outcome."""
    name = _printable(name)
    client = client or LOCAL
    keys = (f"user:{name}", f"client:{client}")
    wait_s = throttle.locked_for(*keys)
    if wait_s > 0:
        audit(name, "login_locked", name, f"client={client} retry_in_s={wait_s:.0f}")
        log.warning("login refused: locked out after failed attempts",
                    extra={"operator": name, "client": client, "retry_in_s": round(wait_s, 1)})
        return LoginResult(None, f"Too many failed attempts: try again in {wait_s:.0f} s.")
    found = authenticate(settings, name, password)
    if found is None:
        lockout_s = throttle.failed(*keys)
        audit(name, "login_failed", name, f"client={client} lockout_s={lockout_s:.0f}")
        log.warning("login failed", extra={"operator": name, "client": client, "lockout_s": lockout_s,
                                           "failures": throttle.stats().failures})
        if lockout_s:
            return LoginResult(None, f"Unknown operator or wrong password. Locked for {lockout_s:.0f} s.")
        return LoginResult(None, "Unknown operator or wrong password")
    throttle.succeeded(keys[0])
    audit(found.name, "login", found.name, f"client={client} role={found.role}")
    log.info("operator signed in", extra={"operator": found.name, "role": found.role, "client": client})
    return LoginResult(found, "")


def sign_out(audit: Audit, operator: Operator, client: str | None) -> None:
    audit(operator.name, "logout", operator.name, f"client={client or LOCAL}")


def _printable(name: str) -> str:
    """What goes into the audit trail and the logs of a typed name: printable, at most 64 characters."""
    return "".join(ch if ch.isprintable() else "?" for ch in name.strip())[:64]
