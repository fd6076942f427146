"""Fulfilment: delivering a redeemed reward, outside the USSD hop.

Providers by fulfilment kind: vouchers come from the reward's uploaded pool
(or are generated where the partner allows); airtime, data, premium and
goods go to an HTTP provisioning service (FULFILMENT_URL), or to a simulated
one with a configurable failure rate. Every call carries the redemption id,
so a provider sees a retry as the same request.
"""
from __future__ import annotations

import hashlib
import logging
import random

import requests

from ussd_app.core import formats, metrics, subscribers, texts
from ussd_app.loyalty import redemptions, rewards
from ussd_app.core.msisdn import mask

log = logging.getLogger(__name__)


class FulfilmentError(Exception):
    """The provider could not deliver; the message says why (no personal data)."""


class Simulated:
    def __init__(self, fail_rate: float = 0.0):
        self.fail_rate = fail_rate

    def provision(self, msisdn: str, reward, redemption: dict) -> str:
        if self.fail_rate and random.random() < self.fail_rate:
            raise FulfilmentError("simulated provisioning failure")
        return "REF-" + redemption["id"][:10].upper()


class HttpProvisioning:
    """``POST {url}`` JSON {reference, msisdn, reward, quantity, kind} -> {"confirmation"}."""

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url, timeout
        self.http = requests.Session()

    def provision(self, msisdn: str, reward, redemption: dict) -> str:
        try:
            resp = self.http.post(self.url, timeout=self.timeout, json={
                "reference": redemption["id"], "msisdn": msisdn, "reward": reward.code,
                "quantity": redemption["quantity"], "kind": reward.fulfilment})
        except requests.RequestException as e:
            raise FulfilmentError(f"provider unreachable: {type(e).__name__}") from None
        if resp.status_code >= 300:
            raise FulfilmentError(f"provider answered {resp.status_code}")
        try:
            return str(resp.json().get("confirmation") or redemption["id"])
        except ValueError:
            return redemption["id"]


def voucher(services, reward, redemption: dict) -> str:
    codes = []
    for i in range(redemption["quantity"]):
        rid = f"{redemption['id']}-{i}"
        code = rewards.claim_voucher(services.r, reward.code, rid)
        if code is None and reward.generate_codes:
            code = reward.code[:4] + hashlib.sha256(rid.encode()).hexdigest()[:8].upper()
        if code is None:
            raise FulfilmentError("voucher pool is empty")
        codes.append(code)
    return ", ".join(codes)


def provisioning(config):
    if config.FULFILMENT_URL:
        return HttpProvisioning(config.FULFILMENT_URL, config.FULFILMENT_TIMEOUT)
    return Simulated(config.FULFILMENT_FAIL_RATE)


def fulfil(services, msisdn: str, rid: str) -> str:
    """The job: deliver one pending redemption, then confirm or refund it (once)."""
    rec = redemptions.get(services.r, msisdn, rid)
    if rec is None or rec["status"] != "pending":
        return rec["status"] if rec else "missing"
    reward = rewards.get(services.r, rec["reward"])
    lang = subscribers.language(services.r, msisdn) or texts.DEFAULT
    name = reward.label(lang) if reward else rec["name"]
    try:
        if reward is None:
            raise FulfilmentError("reward no longer in the catalog")
        if reward.fulfilment == "voucher":
            delivered = voucher(services, reward, rec)
        else:
            delivered = provisioning(services.config).provision(msisdn, reward, rec)
    except FulfilmentError as e:
        log.warning("fulfilment failed redemption=%s msisdn=%s: %s", rid, mask(msisdn), e)
        if redemptions.refund(services, msisdn, rid, str(e)):
            metrics.redemption("refunded")
            services.sms.send(msisdn, texts.t(lang, "sms.redeem_failed", reward=name,
                                              points=formats.points(rec["points"], lang)))
        return "failed"
    if redemptions.confirm(services, msisdn, rid, delivered):
        metrics.redemption("done")
        key = "sms.redeem_voucher" if reward.fulfilment == "voucher" else "sms.redeem_done"
        services.sms.send(msisdn, texts.t(lang, key, reward=name, code=delivered,
                                          points=formats.points(rec["points"], lang)))
    return "done"
