"""Financial offers on a Redis Cluster: sending (the global index and the
subscribers' slots), consent by SMS and USSD, opt-out and leads (a lead's
index in the institution's slot, the consent in the subscriber's)."""
from test_offers import (  # noqa: F401  (collected here too, on the cluster)
    TestConsentBySms, TestConsentByUssd, TestOptOutAndLeads, TestSending, TestSendingWindow,
    offered, people, sub)
