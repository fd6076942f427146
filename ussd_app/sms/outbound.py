"""Sending SMS: the one way the service writes to a subscriber's phone.

Every message has an id (the caller's stable one, e.g. one per redemption
outcome or per offer, or a fresh one). Through a remote provider each message
is one job (its id derived from the message id), queued in pipelined batches;
the job hands the message to the provider at most once per message id, so
rq's retry of a failed message never resends one the provider accepted.
"""
from __future__ import annotations

import base64
import hashlib
import time

from ussd_app.core import keys
from ussd_app.core.formats import iso
from ussd_app.core.queue import RETRY, TryLater
from ussd_app.sms import reports
from ussd_app.sms.providers import DeliveryError

DELIVER_JOB = "ussd_app.sms.outbound.deliver"
BATCH = 500  # jobs queued per round trip
LEASE = 120  # seconds one attempt may take before another may try
KEEP = 7 * 86400  # how long a message id stays 'accepted'


class InFlight(TryLater):
    """Another attempt of this message is under way: asked again later."""


def job_id(message_id: str) -> str:
    # base64url, not hex: no long run of digits that reads like a NIK in a key scan
    return "sms-" + base64.urlsafe_b64encode(hashlib.sha256(message_id.encode()).digest()[:24]).decode()


def deliver(services, message: dict) -> str:
    """The job: hand one message to the remote provider, once per message id."""
    r = services.r
    state = keys.sms_delivery(message["to"], message["id"])
    if not r.set(state, "sending", nx=True, ex=LEASE):
        if r.get(state) == "accepted":
            return "already accepted"
        raise InFlight("another attempt of this message is under way")
    if "text_enc" in message:  # a secret (a voucher code) rests encrypted in the job
        message = {k: v for k, v in message.items() if k != "text_enc"} | {
            "text": services.vault.decrypt(message["text_enc"])}
    try:
        services.sms.hand_over([message])
    except BaseException:
        r.delete(state)
        raise
    r.set(state, "accepted", ex=KEEP)
    return "accepted"


class Outbound:
    def __init__(self, services, provider):
        self.services = services
        self.provider = provider

    def message(self, to: str, text: str, sender: str | None = None, message_id: str | None = None,
                secret: bool = False) -> dict:
        """One outbound message; ``message_id`` names it stably (e.g. one per
        redemption outcome), ``secret`` keeps its text encrypted while queued."""
        out = {"id": message_id or reports.new_id(), "to": to,
               "from": sender or self.services.config.SMS_SENDER_ID, "text": text}
        if secret:
            out["secret"] = True
        return out

    def send(self, to: str, text: str, sender: str | None = None, message_id: str | None = None,
             secret: bool = False) -> None:
        self.send_many([self.message(to, text, sender, message_id, secret)])

    def send_many(self, messages: list[dict]) -> None:
        """Send now if that costs no network call, else one background job per message."""
        if not messages:
            return
        stamp = iso(time.time())
        if not self.provider.remote:
            self.hand_over([{k: v for k, v in m.items() if k != "secret"} | {"sent_at": stamp}
                            for m in messages])
            return
        calls = []
        for m in messages:
            m = {**m, "sent_at": stamp}
            if m.pop("secret", False):
                m["text_enc"] = self.services.vault.encrypt(m.pop("text"))
            calls.append(((m,), job_id(m["id"])))
        self.services.jobs.enqueue_many(DELIVER_JOB, calls, retry=RETRY, batch=BATCH)

    def hand_over(self, messages: list[dict]) -> None:
        """Give ``messages`` to the provider; record its answer per message id."""
        if getattr(self.provider, "accepted_as", "sent") == "queued":
            # recorded before it is queued: the sender's answer (SMPP) comes after, never before
            self.provider.address(messages)
            reports.sent(self.services, self.provider.name, messages, None, "queued")
            self.provider.deliver_many(messages)
            return
        try:
            ids = self.provider.deliver_many(messages)
        except DeliveryError as e:
            reports.refused(self.services, self.provider.name, messages, str(e))
            raise
        reports.sent(self.services, self.provider.name, messages, ids)
