"""Exceptions of the service: a flat module of one-line classes."""


class ConfigError(Exception):
    """The environment does not configure the service correctly."""


class BadRequest(Exception):
    """Input that cannot be accepted; the message says which field and why."""


class Unauthorized(Exception):
    """A missing or wrong token."""


class NotFound(Exception):
    """The thing asked for does not exist."""


class Conflict(Exception):
    """The request clashes with the current state."""


class Forbidden(Exception):
    """A known caller asking for what it may not have."""
