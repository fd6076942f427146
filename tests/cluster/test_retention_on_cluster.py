"""Retention on a Redis Cluster: archive runs over the subscribers' slots."""
from test_retention import (  # noqa: F401  (collected here too, on the cluster)
    config, history, test_a_crashed_run_leaves_every_entry_archived_exactly_once,
    test_a_second_run_archives_nothing_twice,
    test_old_entries_are_archived_in_order_and_the_balance_stays)
