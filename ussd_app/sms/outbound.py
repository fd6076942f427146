"""Sending SMS: the one way the service writes to a subscriber's phone."""
from __future__ import annotations

import time

from .. import jobs
from ..formats import iso


class Outbound:
    def __init__(self, services, provider):
        self.services = services
        self.provider = provider

    def send(self, to: str, text: str, sender: str | None = None) -> None:
        """Send now if that costs no network call, else hand it to a background job."""
        message = {"to": to, "from": sender or self.services.config.SMS_SENDER_ID,
                   "text": text, "sent_at": iso(time.time())}
        if self.provider.remote:
            jobs.enqueue(self.services, jobs.deliver_sms, message)
        else:
            self.provider.deliver(message)
