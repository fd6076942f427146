"""Fulfilment: delivering a redeemed reward, outside the USSD hop.

Providers by fulfilment kind: vouchers come from the reward's uploaded pool
(held with the stock when the redemption was made) or are generated where the
partner allows; airtime, data, premium and goods go to an HTTP provisioning
service (FULFILMENT_URL), or to a simulated one with a configurable failure
rate. Every call carries the redemption id as its idempotency key, so a
provider sees a retry as the same request.

Each attempt ends in one of three outcomes:
- ``done``: delivered; the redemption is confirmed and the subscriber told;
- ``failed``: the provider said no (or the pool is truly empty): refunded, once;
- ``unknown``: a timeout, a lost connection, a 5xx: nobody knows whether it
  was delivered, so nothing is refunded. The job raises and rq runs it again
  after FULFILMENT_RETRY's next interval (same reference); after the last one
  the redemption is ``needs_review`` for a person to settle.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass

from ussd_app.core import http, metrics
from ussd_app.core.queue import TryLater
from ussd_app.core.msisdn import mask
from ussd_app.loyalty import redemptions, rewards

log = logging.getLogger(__name__)

DEFINITE_4XX_EXCEPT = (408, 409, 425, 429)  # timeout, in flight, too early, rate limited: unknown


@dataclass(frozen=True)
class Result:
    """One attempt's outcome: ``done`` (``detail``: the confirmation or the
    voucher codes), ``failed`` or ``unknown`` (``detail``: why, no personal data)."""
    outcome: str
    detail: str
    secret: bool = False  # ``detail`` is a voucher code


class OutcomeUnknown(TryLater):
    """The provider's outcome is unknown: the job is run again (same reference)."""


class InFlight(TryLater):
    """Another worker holds the redemption's lease: try again later."""


class Simulated:
    def __init__(self, fail_rate: float = 0.0):
        self.fail_rate = fail_rate

    def provision(self, msisdn: str, reward, redemption: dict) -> Result:
        if self.fail_rate and random.random() < self.fail_rate:
            return Result("failed", "simulated provisioning failure")
        return Result("done", "REF-" + redemption["id"][:10].upper())


class HttpProvisioning:
    """``POST {url}`` JSON {reference, msisdn, reward, quantity, kind}, header
    ``Idempotency-Key: <reference>`` (the redemption id) -> 2xx {"confirmation"}.

    2xx is done; 4xx is a definite failure, except 408, 409, 425 and 429; a
    timeout, a lost connection, a 5xx or anything else is unknown.
    """

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url, timeout
        self.http = http.Client(timeout)  # FULFILMENT_TIMEOUT bounds the whole call, not each read

    def provision(self, msisdn: str, reward, redemption: dict) -> Result:
        rid = redemption["id"]
        body = json.dumps({"reference": rid, "msisdn": msisdn, "reward": reward.code,
                           "quantity": redemption["quantity"], "kind": reward.fulfilment}).encode()
        try:
            resp = self.http.post(self.url, body, {"Idempotency-Key": rid, "Content-Type": "application/json"})
        except http.TimedOut:
            return Result("unknown", "provider timed out")
        except http.Unreachable as e:
            return Result("unknown", f"provider unreachable: {e}")
        if 200 <= resp.status < 300:
            try:
                answer = json.loads(resp.body)
                return Result("done", str((answer.get("confirmation") if isinstance(answer, dict) else None) or rid))
            except ValueError:
                return Result("done", rid)
        if 400 <= resp.status < 500 and resp.status not in DEFINITE_4XX_EXCEPT:
            return Result("failed", f"provider answered {resp.status}")
        return Result("unknown", f"provider answered {resp.status}")


def vouchers(services, reward, redemption: dict) -> Result:
    """The codes held for the redemption (decrypted for its SMS), the rest
    generated where the reward allows it."""
    rid, qty = redemption["id"], redemption["quantity"]
    codes = [services.vault.decrypt(token) for token in rewards.claimed(services.r, reward.code, rid)]
    for i in range(len(codes), qty):
        if not reward.generate_codes:
            return Result("failed", "voucher pool is empty")
        codes.append(reward.code[:4] + hashlib.sha256(f"{rid}-{i}".encode()).hexdigest()[:8].upper())
    return Result("done", ", ".join(codes), secret=True)


def provisioning(config):
    if config.FULFILMENT_URL:
        return HttpProvisioning(config.FULFILMENT_URL, config.FULFILMENT_TIMEOUT)
    return Simulated(config.FULFILMENT_FAIL_RATE)


def attempt(services, msisdn: str, rec: dict) -> Result:
    """Ask for the redemption's delivery once."""
    reward = rewards.get(services.r, rec["reward"])
    if reward is None:
        return Result("failed", "reward no longer in the catalog")
    if reward.fulfilment == "voucher":
        return vouchers(services, reward, rec)
    return provisioning(services.config).provision(msisdn, reward, rec)


def fulfil(services, msisdn: str, rid: str) -> str:
    """The job: deliver one pending redemption, then confirm or refund it (once);
    an unknown outcome raises for rq's retry, or after the last one goes to
    review. Returns the redemption's status."""
    rec = redemptions.get(services.r, msisdn, rid)
    if rec is None:
        return "missing"
    if not redemptions.lease(services, msisdn, rid):
        if services.jobs.retries_left():
            raise InFlight("another worker is fulfilling this redemption")
        return "in_flight"
    try:
        rec = redemptions.get(services.r, msisdn, rid)
        if rec["status"] == "pending":
            result = attempt(services, msisdn, rec)
            if result.outcome == "done":
                if redemptions.confirm(services, msisdn, rid, result.detail, secret=result.secret):
                    metrics.redemption("done")
            elif result.outcome == "failed":
                log.warning("fulfilment failed redemption=%s msisdn=%s: %s", rid, mask(msisdn), result.detail)
                if redemptions.refund(services, msisdn, rid, result.detail):
                    metrics.redemption("refunded")
            elif services.jobs.retries_left():
                log.warning("fulfilment outcome unknown redemption=%s msisdn=%s: %s (asked again later)",
                            rid, mask(msisdn), result.detail)
                raise OutcomeUnknown(result.detail)
            else:
                redemptions.to_review(services, msisdn, rid, f"{result.detail}; retries exhausted")
                metrics.redemption("needs_review")
        return redemptions.finish(services, msisdn, rid)
    finally:
        redemptions.unlease(services, msisdn, rid)
