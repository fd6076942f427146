"""Financial offers on a Redis Cluster: sending (the global index and the
subscribers' slots), consent by SMS and USSD, opt-out and leads (a lead's
index in the institution's slot, the consent in the subscriber's)."""
from test_offers import (  # noqa: F401  (collected here too, on the cluster)
    TestConsentBySms, TestConsentByUssd, TestOptOutAndLeads, TestSending, TestSendingWindow,
    offered, people, sub)
from test_offer_codes import (  # noqa: F401  (an offer code's claim: one key, one script, any slot)
    test_a_second_live_campaign_with_the_code_is_409_naming_it, test_of_two_created_at_once_one_wins,
    test_the_code_is_free_again_once_its_campaign_ended)
