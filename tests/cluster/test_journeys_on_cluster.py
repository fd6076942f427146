"""The journeys on a Redis Cluster: the scenario files, redemptions under
concurrency, duplicate confirmations (the same tests as on one server)."""
from test_redemptions import (  # noqa: F401  (collected here too, on the cluster)
    test_fifty_concurrent_redemptions_take_exactly_what_the_balance_covers,
    test_stock_never_goes_negative, test_the_same_key_redeems_once)
from test_rewards_journey import (  # noqa: F401
    seeded, test_concurrent_duplicate_confirm_hops_redeem_once, test_redeem_a_voucher_end_to_end,
    test_the_confirm_hop_sent_twice_redeems_once)
from test_scenarios import test_scenario  # noqa: F401
