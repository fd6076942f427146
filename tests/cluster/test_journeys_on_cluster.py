"""The journeys on a Redis Cluster: the scenario files (in-process, and with
the worker as a process of its own), checking points,
redeeming (under concurrency, confirmations sent twice, by SMS), the catalog
and the expiry jobs, the SMS keywords: the same tests as on one server."""
from test_points import *  # noqa: F401,F403  (collected here too, on the cluster)
from test_redemptions import (  # noqa: F401
    test_fifty_concurrent_redemptions_take_exactly_what_the_balance_covers,
    test_stock_never_goes_negative, test_the_same_key_redeems_once, test_vouchers_come_from_the_pool_once_each)
from test_rewards_journey import *  # noqa: F401,F403
from test_scenarios import (  # noqa: F401
    test_scenario, test_the_scenarios_pass_against_a_service_whose_worker_sends_the_sms)
from test_sms import (  # noqa: F401
    enrolled, test_keywords_always_answer, test_not_enrolled_by_sms,
    test_reply_in_the_subscribers_language, test_same_message_id_is_handled_once)
