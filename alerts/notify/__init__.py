"""Alert notification channels: a webhook (JSON POST) and email (SMTP), fed by the engine.

    message.py   pure: which alert changes are sent (state, severity, debounce) and their text
    channels.py  I/O: WebhookChannel (urllib), EmailChannel (smtplib); one send, no retries
    notifier.py  Notifier: per channel a bounded queue and a worker thread, retries with backoff, counters

The engine builds one with :meth:`Notifier.from_settings` (None when ``[notify]`` names no
channel), passes it every list of changed alerts, and closes it when it stops.
"""

from alerts.notify.channels import DeliveryError, EmailChannel, PermanentDeliveryError, WebhookChannel
from alerts.notify.message import Debouncer, Notification, email_body, email_subject, wants_notification, webhook_body
from alerts.notify.notifier import ChannelStats, Notifier, NotifierStats

__all__ = [
    "ChannelStats", "Debouncer", "DeliveryError", "EmailChannel", "Notification", "Notifier", "NotifierStats",
    "PermanentDeliveryError", "WebhookChannel", "email_body", "email_subject", "wants_notification", "webhook_body",
]
