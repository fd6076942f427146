"""Configuration, read once from the environment (see BRIEF: Configuration)."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields

from ussd_app.core.errors import ConfigError

REQUIRED_IN_PRODUCTION = ("REDIS_URL", "GATEWAY_TOKEN", "ADMIN_TOKEN", "PII_KEY")


@dataclass(frozen=True)
class Config:
    USSD_APP_ENV: str = "development"
    REDIS_URL: str | None = None
    GATEWAY_TOKEN: str | None = None
    ADMIN_TOKEN: str | None = None
    PII_KEY: str | None = None
    SMS_PROVIDER: str = "console"
    SMS_SHORT_CODE: str = "62168"
    SMS_SENDER_ID: str = "POIN"
    AFRICASTALKING_URL: str = "https://api.africastalking.com/version1/messaging"
    AFRICASTALKING_USERNAME: str = "sandbox"
    AFRICASTALKING_API_KEY: str | None = None
    USSD_SERVICE_CODE: str = "*700#"
    USSD_MAX_CHARS: int = 160
    USSD_SESSION_TTL: int = 180
    OFFER_SEND_WINDOW: str = "Mon-Sat 08:00-18:00"
    OFFER_HOLIDAYS: str = ""  # extra non-sending dates (YYYY-MM-DD, comma separated)
    OFFER_SENDER_IDS: str = "GeneRate,Rate-Kredit,KreditSmart"
    CONSENT_ATTEMPTS_PER_HOUR: int = 5
    POINTS_EXPIRY_POLICY: str = "calendar"
    POINTS_EXPIRY_DAYS: int = 365
    SUPPORT_CONTACT: str = "support.indonesia@trustingsocial.com"
    FULFILMENT_URL: str | None = None
    FULFILMENT_FAIL_RATE: float = 0.0
    FULFILMENT_TIMEOUT: float = 5.0
    JOBS_SYNC: bool = False
    ALLOW_VOLATILE_REDIS: bool = False  # production accepts a Redis that keeps nothing over a restart

    @property
    def production(self) -> bool:
        return self.USSD_APP_ENV == "production"


def _coerce(name: str, kind: type, raw: str):
    if kind is int or kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if kind is float or kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if kind is bool or kind == "bool":
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return raw


def load(overrides: dict | None = None, environ: dict | None = None) -> Config:
    """Build the configuration from the environment, then apply ``overrides``."""
    environ = os.environ if environ is None else environ
    values = {}
    for f in fields(Config):
        raw = environ.get(f.name)
        if raw not in (None, ""):
            values[f.name] = _coerce(f.name, f.type, raw)
    values.update(overrides or {})
    config = Config(**values)
    check(config)
    return config


def check(config: Config) -> None:
    """Fail loudly, naming each missing or malformed variable."""
    if config.production:
        missing = [n for n in REQUIRED_IN_PRODUCTION if not getattr(config, n)]
        if missing:
            raise ConfigError(
                "USSD_APP_ENV=production needs " + ", ".join(missing) + " to be set")
    if config.SMS_PROVIDER not in ("console", "africastalking"):
        raise ConfigError(f"SMS_PROVIDER must be console or africastalking, got {config.SMS_PROVIDER!r}")
    if config.POINTS_EXPIRY_POLICY not in ("calendar", "rolling"):
        raise ConfigError("POINTS_EXPIRY_POLICY must be calendar or rolling")
    if not 40 <= config.USSD_MAX_CHARS <= 182:
        raise ConfigError("USSD_MAX_CHARS must be between 40 and 182")
