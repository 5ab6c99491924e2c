"""What an engine start records in the audit trail: the effective settings' digest and what changed.

The settings are the redacted view (``Settings.redacted()``: every secret is ``**********``
when set, empty when not), so the trail holds no secret, and consequently shows a secret
being set or cleared but not a set secret being replaced. The record carries the whole
redacted view, so the next start can say what changed without any other copy, and the
digest lets an auditor compare two processes' settings at a glance.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Mapping
from typing import Any, Protocol

from storage.audit_trail import DetailsAfter, process_actor

ABSENT = "<absent>"


def settings_digest(redacted: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(redacted).encode()).hexdigest()


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values (lists are leaves: a symbol list changes as a whole)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each dotted key whose value differs: [before, after], ``ABSENT`` for a key only one side has."""
    before, after = flatten(old), flatten(new)
    return {key: [before.get(key, ABSENT), after.get(key, ABSENT)]
            for key in sorted(before.keys() | after.keys()) if before.get(key, ABSENT) != after.get(key, ABSENT)}


class Audit(Protocol):
    def audit(self, actor: str, action: str, subject: str, details: str | DetailsAfter = "") -> object: ...


def record_start(audit: Audit, action: str, subject: str, redacted: Mapping[str, Any], session: str) -> None:
    """Audit a process start (``engine_start``, ``dashboard_start``) under the OS user that ran it."""
    audit.audit(process_actor(), action, subject,
                start_details(redacted, session=session, host=socket.gethostname(), pid=str(os.getpid())))


def start_details(redacted: Mapping[str, Any], **context: str) -> DetailsAfter:
    """Details of an ``engine_start`` record, given the previous start's (None on a first start).

    ``context`` (session, host, pid) says which process started; ``changed`` is None on a
    first start and when the previous record cannot be read (then ``previous`` says why).
    """

    def details(previous: str | None) -> str:
        record: dict[str, Any] = {"digest": settings_digest(redacted), **context}
        before = _settings_of(previous)
        if previous is None:
            record.update(previous=None, changed=None)
        elif before is None:
            record.update(previous="unreadable (not an engine_start record of this version)", changed=None)
        else:
            record.update(previous=settings_digest(before), changed=changes(before, redacted))
        record["settings"] = redacted
        return json.dumps(record, separators=(",", ":"), default=str)

    return details


def start_summary(details: str) -> str:
    """One line for the audit page: the digest and the keys that changed."""
    try:
        record = json.loads(details)
        digest = str(record["digest"])[:12]
        changed = record.get("changed")
    except (ValueError, KeyError, TypeError):
        return details[:200]
    if changed is None:
        return f"settings {digest}… (no previous start to compare)"
    if not changed:
        return f"settings {digest}… unchanged"
    return f"settings {digest}…, changed: {', '.join(sorted(changed))}"


def _settings_of(details: str | None) -> Mapping[str, Any] | None:
    if details is None:
        return None
    try:
        settings = json.loads(details)["settings"]
    except (ValueError, KeyError, TypeError):
        return None
    return settings if isinstance(settings, Mapping) else None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
