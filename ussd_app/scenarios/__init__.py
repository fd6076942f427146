"""Simulator scenarios: YAML files checked against a schema (:mod:`.schema`),
the data they declare (:mod:`.given`), their player (:mod:`.play`), JUnit
reports (:mod:`.junit`) and sessions recorded in the browser (:mod:`.record`).

Nothing here builds an app: a player is handed a client (``ussd_app.sim.Client``
or the browser simulator's relay) that talks to one.
"""
