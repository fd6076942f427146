"""Exceptions of the service: a flat module of one-line classes.

An exception a caller can fix carries the HTTP ``status`` it answers with
(the app's one error handler, ``ussd_app.web.errors``, renders it).
"""


class ConfigError(Exception):
    """The environment does not configure the service correctly."""


class BadRequest(Exception):
    """Input that cannot be accepted; the message says which field and why."""
    status = 400


class Unauthorized(Exception):
    """A missing or wrong token."""
    status = 401


class Forbidden(Exception):
    """A valid credential that may not do this."""
    status = 403


class NotFound(Exception):
    """The thing asked for does not exist."""
    status = 404


class Conflict(Exception):
    """The request clashes with the current state."""
    status = 409
