"""HTTP: one blueprint per audience (gateways, the integration API, operations)."""
from flask import current_app


def services():
    """The services of the app handling the current request."""
    return current_app.extensions["ussd"]
