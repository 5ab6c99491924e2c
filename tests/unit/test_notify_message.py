"""What a notification says and which alert changes get one: plain values, no I/O."""

from __future__ import annotations

from alerts.lifecycle import Alert, AlertBook, Finding
from alerts.notify import Debouncer, Notification, email_body, email_subject, wants_notification, webhook_body

S = 1_000_000_000
T0 = 1_780_000_000 * S  # 2026-05-28T20:26:40Z


def _alert(state="firing", severity="critical", **changes) -> Alert:
    fields = {"rule": "kafka_unreachable", "subject": "bus", "severity": severity, "state": state,
              "summary": "Kafka unreachable; 4096 bytes spooled to disk", "started_ns": T0, "updated_ns": T0,
              "value": 4096.0, "fired_ns": T0}
    return Alert(**{**fields, **changes})


def test_firing_resolved_and_acknowledged_are_sent_but_pending_is_not():
    assert wants_notification(_alert("firing"), "warning")
    assert wants_notification(_alert("resolved"), "warning")
    assert wants_notification(_alert("acknowledged"), "warning")
    assert not wants_notification(_alert("pending"), "info")


def test_alerts_below_the_minimum_severity_are_not_sent():
    assert not wants_notification(_alert(severity="info"), "warning")
    assert wants_notification(_alert(severity="warning"), "warning")
    assert not wants_notification(_alert(severity="warning"), "critical")
    assert wants_notification(_alert(severity="info"), "info")


def test_a_repeat_of_the_same_rule_subject_and_state_is_not_sent_again():
    debounce = Debouncer()
    assert debounce.admit(_alert("firing"))
    assert not debounce.admit(_alert("firing", updated_ns=T0 + S, summary="still unreachable"))
    assert debounce.admit(_alert("firing", subject="other"))


def test_firing_again_after_a_resolve_is_a_new_event_and_is_sent():
    debounce = Debouncer()
    assert [debounce.admit(_alert(state)) for state in ("firing", "resolved", "resolved", "firing")] == \
        [True, True, False, True]


def test_webhook_body_carries_rule_subject_state_severity_summary_times_and_instance():
    body = webhook_body(Notification(_alert(), "tickops-7"))
    assert body == {
        "version": 1, "instance_id": "tickops-7", "rule": "kafka_unreachable", "subject": "bus",
        "state": "firing", "severity": "critical", "summary": "Kafka unreachable; 4096 bytes spooled to disk",
        "value": 4096.0, "started_at": "2026-05-28T20:26:40.000Z", "fired_at": "2026-05-28T20:26:40.000Z",
        "resolved_at": None, "acknowledged_at": None, "acknowledged_by": None, "ack_note": None,
        "updated_at": "2026-05-28T20:26:40.000Z",
    }


def test_acknowledged_body_names_who_and_the_note():
    acked = _alert("acknowledged", acked_by="ana", acked_ns=T0 + 1_500_000_000, ack_note="broker restarting")
    body = webhook_body(Notification(acked, "tickops-1"))
    assert (body["acknowledged_by"], body["ack_note"], body["acknowledged_at"]) == \
        ("ana", "broker restarting", "2026-05-28T20:26:41.500Z")


def test_email_subject_and_body_are_readable_and_skip_empty_fields():
    notification = Notification(_alert("resolved", resolved_ns=T0 + 60 * S), "tickops-1")
    assert email_subject(notification) == "[TickOps RESOLVED] critical: kafka_unreachable bus (tickops-1)"
    body = email_body(notification)
    assert body.startswith("Kafka unreachable; 4096 bytes spooled to disk\n\n")
    assert "resolved_at: 2026-05-28T20:27:40.000Z" in body and "state: resolved" in body
    assert "acknowledged_by" not in body


def test_alert_book_transitions_map_to_notifications_once_each():
    book, debounce = AlertBook(), Debouncer()
    finding = Finding("disk_free_low", "data_dir", "critical", "only 3.0% disk free")
    sent = []
    for now, findings in ((T0, [finding]), (T0 + S, [finding]), (T0 + 2 * S, []), (T0 + 3 * S, [])):
        sent += [(a.rule, a.state) for a in book.evaluate(findings, now)
                 if wants_notification(a, "warning") and debounce.admit(a)]
    assert sent == [("disk_free_low", "firing"), ("disk_free_low", "resolved")]
