"""Outbound SMS providers. Each delivers one message; ``remote`` says whether
that means a network call (then it runs in a background job, never in a hop)."""
from __future__ import annotations

import json
import logging
import urllib.parse

import redis

from ussd_app.core import http, keys, metrics
from ussd_app.core.msisdn import mask
from ussd_app.core.queue import TryLater

log = logging.getLogger(__name__)


class DeliveryError(TryLater):
    """The provider did not accept the message."""


class Console:
    """Keeps messages in Redis, readable at ``GET /api/v1/outbox?to=``."""
    remote = False
    name = "console"

    def __init__(self, r: redis.Redis):
        self.r = r

    def deliver_many(self, messages: list[dict]) -> list[str | None]:
        pipe = self.r.pipeline(transaction=False)
        for m in messages:
            pipe.rpush(keys.outbox(m["to"]), json.dumps(m, separators=(",", ":")))
        pipe.execute()
        metrics.sms("console", "sent", len(messages))
        return [m.get("id") for m in messages]  # its own ids are ours


def outbox(r: redis.Redis, msisdn: str) -> list[dict]:
    """What the console provider 'sent' to ``msisdn``, oldest first."""
    return [json.loads(m) for m in r.lrange(keys.outbox(msisdn), 0, -1)]


class AfricasTalking:
    """Africa's Talking HTTP SMS API (``POST {url}`` form: username, to, message, from)."""
    remote = True
    name = "africastalking"

    def __init__(self, url: str, username: str, api_key: str | None, timeout: float = 10):
        self.url, self.username, self.api_key, self.timeout = url, username, api_key, timeout
        self.http = http.Client(timeout)  # bounds the whole call, not each read

    def deliver_many(self, messages: list[dict]) -> list[str | None]:
        return [self.deliver(m) for m in messages]

    def deliver(self, message: dict) -> str | None:
        """Send one message; returns the provider's id for it (its delivery reports name it)."""
        form = {"username": self.username, "to": message["to"], "message": message["text"]}
        if message.get("from"):
            form["from"] = message["from"]
        try:
            resp = self.http.post(self.url, urllib.parse.urlencode(form).encode(),
                                  {"apiKey": self.api_key or "", "Accept": "application/json",
                                   "Content-Type": "application/x-www-form-urlencoded"})
        except http.TimedOut:
            metrics.sms("africastalking", "failed")
            raise DeliveryError(f"provider timed out (no whole answer within {self.timeout:g} s)") from None
        except http.Unreachable as e:
            metrics.sms("africastalking", "failed")
            raise DeliveryError(f"provider unreachable: {e}") from None
        if resp.status >= 300:
            metrics.sms("africastalking", "failed")
            raise DeliveryError(f"provider answered {resp.status}")
        metrics.sms("africastalking", "sent")
        log.info("sms delivered to=%s provider=africastalking", mask(message["to"]))
        try:
            return json.loads(resp.body)["SMSMessageData"]["Recipients"][0]["messageId"]
        except (ValueError, KeyError, IndexError, TypeError):
            return None


def build(config, r: redis.Redis, vault=None):
    if config.SMS_PROVIDER == "smpp":
        from ussd_app.sms.smpp import Queued

        return Queued(r, vault, config.SMS_SHORT_CODE)
    if config.SMS_PROVIDER == "africastalking":
        return AfricasTalking(config.AFRICASTALKING_URL, config.AFRICASTALKING_USERNAME,
                              config.AFRICASTALKING_API_KEY)
    return Console(r)
