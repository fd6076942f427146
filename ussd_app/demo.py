"""Demo data (``ussd-app seed-demo``): a few subscribers with points."""
from __future__ import annotations

from datetime import timedelta

from importlib import resources

from . import keys, points, rewards, subscribers

DAY = timedelta(days=1).total_seconds()

SUBSCRIBERS = [
    # msisdn, profile, earnings: (points, reference, days until expiry or None for policy)
    ("+6281234567890", {"credit_score": 720, "attributes": {"region": "JKT", "tenure_months": 30}},
     [(2500, "demo-topup-1", 5), (10000, "demo-topup-2", None)]),
    ("+6281234567891", {"credit_score": 680, "attributes": {"region": "BDG", "tenure_months": 14},
                        "lang": "en"},
     [(800, "demo-topup-3", None)]),
    ("+6281234567892", {"credit_score": 540, "attributes": {"region": "SBY", "tenure_months": 3}}, []),
    ("+6281234567893", {"status": "blocked", "credit_score": 610,
                        "attributes": {"region": "JKT", "tenure_months": 40}},
     [(3000, "demo-topup-4", None)]),
]


def seed(services) -> list[str]:
    """Load the demo catalog and subscribers (idempotent); returns their MSISDNs."""
    r, config, now = services.r, services.config, services.clock()
    if not r.exists(keys.REWARDS):
        rewards.load_file(r, resources.files("ussd_app").joinpath("data", "demo_catalog.yaml")
                          .read_text("utf-8"))
    for msisdn, profile, earnings in SUBSCRIBERS:
        subscribers.put(r, msisdn, profile)
        for pts, ref, days in earnings:
            expires = (now + days * DAY if days is not None else
                       points.default_expiry(now, config.POINTS_EXPIRY_POLICY, config.POINTS_EXPIRY_DAYS))
            points.earn(r, msisdn, pts, "topup", ref, expires, now)
    return [m for m, _, _ in SUBSCRIBERS]
