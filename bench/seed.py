"""Bench data: the demo catalog and campaign, and the bench subscribers
(bench/journeys.py) with plenty of points and an open offer each (run with
REDIS_URL set)."""
from bench.journeys import SUBSCRIBERS, msisdn
from ussd_app.offers import campaigns, sending as offers
from ussd_app import create_app, demo
from ussd_app.loyalty import points
from ussd_app.core import subscribers

MSISDNS = [msisdn(i) for i in range(SUBSCRIBERS)]


def main() -> None:
    services = create_app({"OFFER_SEND_WINDOW": "always"}).extensions["ussd"]
    demo.seed(services)
    r, now = services.r, services.clock()
    for m in MSISDNS:
        subscribers.put(r, m, {"credit_score": 700, "attributes": {"region": "JKT", "tenure_months": 24}})
        points.earn(r, m, 10**8, "topup", "bench", now + 864000, now)
    offers.send(services, campaigns.get(r, "kta-demo"), MSISDNS)


if __name__ == "__main__":
    main()
