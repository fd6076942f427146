"""Demo data (``ussd-app seed-demo``): a few subscribers with points."""
from __future__ import annotations

from datetime import timedelta

from importlib import resources

from ussd_app.offers import campaigns, sending as offers
from ussd_app.core import keys, subscribers
from ussd_app.loyalty import points, rewards
from ussd_app.core.formats import iso

DAY = timedelta(days=1).total_seconds()

SUBSCRIBERS = [
    # msisdn, profile, earnings: (points, reference, days until expiry or None for policy)
    ("+6281234567890", {"credit_score": 720, "attributes": {"region": "JKT", "tenure_months": 30}},
     [(2500, "demo-topup-1", 5), (10000, "demo-topup-2", None)]),
    ("+6281234567891", {"credit_score": 680, "attributes": {"region": "BDG", "tenure_months": 14},
                        "lang": "en"},
     [(800, "demo-topup-3", None)]),
    ("+6281234567892", {"credit_score": 540, "attributes": {"region": "SBY", "tenure_months": 3},
                        "offers_optout": "1"}, []),
    ("+6281234567893", {"status": "blocked", "credit_score": 610,
                        "attributes": {"region": "JKT", "tenure_months": 40}},
     [(3000, "demo-topup-4", None)]),
]

WALKED = [m for m, _, _ in SUBSCRIBERS] + ["+6281299990000"]
"""Whom ``ussd-app menus check`` walks: each demo subscriber and one unknown number."""


def seed(services) -> list[str]:
    """Load the demo catalog and subscribers (idempotent); returns their MSISDNs."""
    r, config, now = services.r, services.config, services.clock()
    if not r.exists(keys.REWARDS):
        rewards.load_file(r, services.vault, resources.files("ussd_app").joinpath("data", "demo_catalog.yaml")
                          .read_text("utf-8"))
    for msisdn, profile, earnings in SUBSCRIBERS:
        subscribers.put(r, msisdn, profile)
        for pts, ref, days in earnings:
            expires = (now + days * DAY if days is not None else
                       points.default_expiry(now, config.POINTS_EXPIRY_POLICY, config.POINTS_EXPIRY_DAYS))
            points.earn(r, msisdn, pts, "topup", ref, expires, now)
    seed_offers(services)
    return [m for m, _, _ in SUBSCRIBERS]


def campaign(now: float) -> dict:
    """The demo campaign: Bank A's multi-purpose credit for scores from 600."""
    return {
        "id": "kta-demo", "institution": {"id": "bank-a", "name": "Bank A",
                                          "support": "halo@bank-a.example, 1500-123"},
        "product": "Kredit Multiguna", "sender_id": "KreditSmart", "code": "KTA",
        "message": {"id": "Bank A menawarkan Kredit Multiguna hingga Rp50 juta untuk Anda.",
                    "en": "Bank A offers you a multi-purpose loan of up to Rp50 million."},
        "terms": {"id": "hingga Rp50 juta", "en": "up to Rp50 million"},
        "consent_text": {"id": "Jika setuju, nomor HP, skor kredit & NIK Anda dikirim ke Bank A. "
                               "Persetujuan kredit tidak dijamin.",
                         "en": "If you agree, your number, credit score & NIK go to Bank A. "
                               "Approval is not guaranteed."},
        "consent_version": "1", "valid_from": iso(now - DAY), "valid_until": iso(now + 90 * DAY),
        "eligibility": {"credit_score": {"min": 600},
                        "attributes": {"tenure_months": {"min": 12}, "region": {"in": ["JKT", "BDG"]}}}}


def seed_offers(services) -> dict:
    """Create the demo campaign and offer it to every eligible demo subscriber."""
    r = services.r
    sender_ids = services.config.OFFER_SENDER_IDS.split(",")
    camp = campaigns.validate(campaign(services.clock()), sender_ids, services.clock(),
                              default_support=services.config.SUPPORT_CONTACT)
    if not campaigns.exists(r, camp.id):
        campaigns.put(r, camp, services.clock())
    return offers.send(services, campaigns.get(r, camp.id), [m for m, _, _ in SUBSCRIBERS])
