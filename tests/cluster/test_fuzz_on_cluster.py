"""The Hypothesis walks of the menus and the SMS keywords on a Redis Cluster."""
from test_fuzz import (  # noqa: F401  (collected here too, on the cluster)
    fresh, test_any_inputs_get_a_screen_that_fits_and_charge_only_what_is_recorded,
    test_any_sms_gets_an_answer_in_gsm7_and_charges_only_what_is_recorded)
