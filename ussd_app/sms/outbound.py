"""Sending SMS: the one way the service writes to a subscriber's phone."""
from __future__ import annotations

import time

from ussd_app.core.formats import iso
from ussd_app.sms import reports
from ussd_app.sms.providers import DeliveryError


DELIVER_JOB = "ussd_app.sms.outbound.deliver"


def deliver(services, messages: list[dict]) -> None:
    """The job: hand ``messages`` to the remote provider."""
    services.sms.hand_over(messages)


class Outbound:
    def __init__(self, services, provider):
        self.services = services
        self.provider = provider

    def message(self, to: str, text: str, sender: str | None = None) -> dict:
        return {"id": reports.new_id(), "to": to, "from": sender or self.services.config.SMS_SENDER_ID,
                "text": text}

    def send(self, to: str, text: str, sender: str | None = None) -> None:
        self.send_many([self.message(to, text, sender)])

    def send_many(self, messages: list[dict]) -> None:
        """Send now if that costs no network call, else hand them to one background job."""
        if not messages:
            return
        stamp = iso(time.time())
        messages = [{**m, "sent_at": stamp} for m in messages]
        if self.provider.remote:
            self.services.jobs.enqueue(DELIVER_JOB, messages)
        else:
            self.hand_over(messages)

    def hand_over(self, messages: list[dict]) -> None:
        """Give ``messages`` to the provider; record its answer per message id."""
        try:
            ids = self.provider.deliver_many(messages)
        except DeliveryError as e:
            reports.refused(self.services, self.provider.name, messages, str(e))
            raise
        reports.sent(self.services, self.provider.name, messages, ids)
