"""Delivery channels: the only code here that touches the network.

A channel sends one :class:`Notification` or raises. It does not retry or queue; the
notifier does that for every channel alike. :class:`PermanentDeliveryError` marks a
failure that a retry cannot fix (a 4xx answer, a refused login or recipient), so no time
is spent on it.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from alerts.notify.message import Notification, email_body, email_subject, webhook_body

USER_AGENT = "tickops-notify/1"
_RETRYABLE_HTTP = frozenset({408, 425, 429})


class DeliveryError(Exception):
    """A delivery failed; it may succeed if tried again (network down, 5xx, SMTP 4xx)."""


class PermanentDeliveryError(DeliveryError):
    """A delivery failed in a way a retry will not fix: fix the configuration or the receiver."""


class Channel(Protocol):
    name: str

    def send(self, notification: Notification) -> None: ...


@dataclass
class WebhookChannel:
    """HTTP POST of :func:`webhook_body` as JSON; any 2xx answer counts as delivered."""

    url: str = field(repr=False)  # often carries a token or credentials
    timeout_s: float = 5.0
    name: str = "webhook"

    def send(self, notification: Notification) -> None:
        data = json.dumps(webhook_body(notification)).encode()
        request = urllib.request.Request(self.url, data=data, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            error = PermanentDeliveryError if 400 <= exc.code < 500 and exc.code not in _RETRYABLE_HTTP \
                else DeliveryError
            raise error(f"webhook answered HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise DeliveryError(f"webhook unreachable: {reason}") from None


@dataclass
class EmailChannel:
    """One plain-text email per notification to every recipient, over SMTP (STARTTLS and login optional)."""

    host: str
    port: int
    sender: str
    recipients: list[str]
    starttls: bool = True
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_s: float = 10.0
    name: str = "email"

    def message(self, notification: Notification) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = email_subject(notification)
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(email_body(notification))
        return message

    def send(self, notification: Notification) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(self.message(notification), to_addrs=self.recipients)
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                smtplib.SMTPNotSupportedError) as exc:
            raise PermanentDeliveryError(f"SMTP server {self.host}:{self.port} refused: {exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP server {self.host}:{self.port} failed: {exc!r}") from None
