"""Configuration, read once from the environment (README: Settings)."""
from __future__ import annotations

import os
import re
import typing
from dataclasses import dataclass, fields

import msgspec

from ussd_app.core import bodies, cluster, digits
from ussd_app.core.errors import ConfigError

REQUIRED_IN_PRODUCTION = ("REDIS_URL", "GATEWAY_TOKEN", "ADMIN_TOKEN", "PII_KEY")


@dataclass(frozen=True)
class Config:
    """Every setting, its type and its default: :func:`load` converts the
    environment's text to these types (msgspec) and :func:`check` their values."""
    USSD_APP_ENV: str = "development"
    REDIS_URL: str | None = None
    JOBS_REDIS_URL: str | None = None  # the job queues' Redis (default REDIS_URL); never a cluster
    REDIS_WAIT_REPLICAS: int = 0  # replicas that must acknowledge a money-like write (WAIT)
    REDIS_WAIT_TIMEOUT_MS: int = 1000
    GATEWAY_TOKEN: str | None = None
    ADMIN_TOKEN: str | None = None
    METRICS_TOKEN: str | None = None  # else GET /metrics takes ADMIN_TOKEN
    PII_KEY: str | None = None
    SMS_PROVIDER: str = "console"
    SMS_SHORT_CODE: str = "62168"
    SMS_SENDER_ID: str = "POIN"
    AFRICASTALKING_URL: str = "https://api.africastalking.com/version1/messaging"
    AFRICASTALKING_USERNAME: str = "sandbox"
    AFRICASTALKING_API_KEY: str | None = None
    SMPP_URL: str | None = None  # smpp://<system_id>:<password>@<host>:<port> (smpps:// for TLS)
    SMPP_SYSTEM_TYPE: str = ""
    SMPP_TPS: int = 50  # submit_sm a second, at most
    SMPP_WINDOW: int = 10  # submit_sm without their response, at most
    USSD_SERVICE_CODE: str = "*700#"
    USSD_MAX_CHARS: int = 160
    USSD_SESSION_TTL: int = 180
    USSD_RESUME_SECONDS: int = 120  # a dropped session may be resumed this long (0: never)
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
    FULFILMENT_RETRY: str = "5,30,120,600,1800"  # seconds before each retry of an unknown outcome
    LEAD_PUSH_TIMEOUT: float = 10.0  # seconds a partner's webhook may take to answer
    LEAD_PUSH_BACKOFF: int = 10  # seconds before a lead's first retry; doubling, at most 1 h, for 24 h
    JOBS_SYNC: bool = False
    HTTP_BODY_TIMEOUT: float = 5.0  # seconds a client may take to send a request's body (408 after)
    RETENTION_DAYS: int = 396  # ledger entries and consent records older than this are archived
    ARCHIVE_DIR: str | None = None  # where they go (JSON lines); unset: nothing is archived
    ALLOW_VOLATILE_REDIS: bool = False  # production accepts a Redis that keeps nothing over a restart
    ALLOW_SIMULATED_PROVIDERS: bool = False  # production accepts simulated SMS/fulfilment (staging)

    @property
    def production(self) -> bool:
        return self.USSD_APP_ENV == "production"

    @property
    def simulated(self) -> list[str]:
        """The simulated providers in use, each as the setting that chose it."""
        found = []
        if self.SMS_PROVIDER == "console":
            found.append("SMS_PROVIDER=console")  # SMS written to the log, sent to no one
        if not self.FULFILMENT_URL:
            found.append("FULFILMENT_URL unset")  # airtime and data reported delivered, never sent
        return found

    @property
    def fulfilment_retry(self) -> tuple[int, ...]:
        """FULFILMENT_RETRY as seconds: one retry each, then ``needs_review``."""
        return tuple(int(x) for x in self.FULFILMENT_RETRY.split(",") if x.strip())


_BOOLEAN_WORDS = {"yes": "true", "on": "true", "no": "false", "off": "false"}


def load(overrides: dict | None = None, environ: dict | None = None) -> Config:
    """Build the configuration from the environment, then apply ``overrides``.

    Each variable set (and not empty) is converted to its declared type by
    msgspec: a whole number, a number, or a boolean (true/false, 1/0, yes/no,
    on/off); anything else is a ConfigError naming the variable."""
    environ = os.environ if environ is None else environ
    types = typing.get_type_hints(Config)
    values = {}
    given = [(f.name, environ.get(f.name)) for f in fields(Config)] + list((overrides or {}).items())
    for name, raw in given:  # the overrides read as the environment is: empty is unset
        if types.get(name) is not str and isinstance(raw, str):
            raw = raw.strip()
            if types.get(name) is bool:
                raw = _BOOLEAN_WORDS.get(raw.lower(), raw)
        if raw is None or raw == "":
            values.pop(name, None)
        else:
            values[name] = raw
    try:
        config = msgspec.convert(values, Config, strict=False)
    except msgspec.ValidationError as e:
        said = bodies.explain(e, Config)
        name = said.split(" ", 1)[0]
        raise ConfigError(f"{said}, got {values[name]!r}" if name in values else said) from None
    check(config)
    return config


def check(config: Config) -> None:
    """Fail loudly, naming each missing or malformed variable."""
    if config.production:
        missing = [n for n in REQUIRED_IN_PRODUCTION if not getattr(config, n)]
        if missing:
            raise ConfigError(
                "USSD_APP_ENV=production needs " + ", ".join(missing) + " to be set")
        simulated = config.simulated
        if simulated and not config.ALLOW_SIMULATED_PROVIDERS:
            named = {"SMS_PROVIDER=console": "SMS_PROVIDER=console (SMS go to the log, to no one: "
                                             "set SMS_PROVIDER to a real provider)",
                     "FULFILMENT_URL unset": "FULFILMENT_URL unset (the simulated fulfilment reports "
                                             "airtime and data delivered without sending them)"}
            raise ConfigError("USSD_APP_ENV=production refuses simulated providers: "
                              + "; ".join(named[s] for s in simulated)
                              + ". ALLOW_SIMULATED_PROVIDERS=1 allows them (a staging run)")
    if config.SMS_PROVIDER not in ("console", "africastalking", "smpp"):
        raise ConfigError(f"SMS_PROVIDER must be console, africastalking or smpp, got {config.SMS_PROVIDER!r}")
    if config.SMS_PROVIDER == "smpp":
        from urllib.parse import urlsplit

        try:
            url = urlsplit(config.SMPP_URL or "")
            port = url.port
        except ValueError:
            url, port = None, None
        if url is None or url.scheme not in ("smpp", "smpps") or not url.hostname or not port \
                or not url.username:
            raise ConfigError("SMS_PROVIDER=smpp needs SMPP_URL=smpp://<system_id>:<password>@<host>:<port> "
                              "(smpps:// for TLS)")
    if config.SMPP_TPS < 1 or config.SMPP_WINDOW < 1:
        raise ConfigError("SMPP_TPS and SMPP_WINDOW must be at least 1")
    if not digits.only(config.SMS_SHORT_CODE):
        raise ConfigError("SMS_SHORT_CODE must be digits, e.g. 62168")
    if config.POINTS_EXPIRY_POLICY not in ("calendar", "rolling"):
        raise ConfigError("POINTS_EXPIRY_POLICY must be calendar or rolling")
    if config.USSD_RESUME_SECONDS < 0:
        raise ConfigError("USSD_RESUME_SECONDS must be 0 or more")
    try:
        retry = config.fulfilment_retry
    except ValueError:
        retry = None
    if retry is None or len(retry) > 20 or any(not 0 <= x <= 86400 for x in retry):
        raise ConfigError("FULFILMENT_RETRY must be up to 20 comma-separated seconds (0-86400), "
                          "e.g. 5,30,120,600,1800")
    if cluster.is_cluster_url(config.JOBS_REDIS_URL):
        raise ConfigError("JOBS_REDIS_URL must be a plain Redis (redis:// or rediss://), not a "
                          "cluster: the job queue's keys span hash slots")
    if cluster.is_cluster_url(config.REDIS_URL) and not config.JOBS_REDIS_URL:
        raise ConfigError("REDIS_URL is a Redis Cluster: set JOBS_REDIS_URL to a plain Redis "
                          "for the job queues (their keys span hash slots)")
    if not 0 <= config.REDIS_WAIT_REPLICAS <= 16:
        raise ConfigError("REDIS_WAIT_REPLICAS must be from 0 to 16")
    if config.REDIS_WAIT_TIMEOUT_MS < 1:
        raise ConfigError("REDIS_WAIT_TIMEOUT_MS must be at least 1")
    if not 0 < config.HTTP_BODY_TIMEOUT <= 300:
        raise ConfigError("HTTP_BODY_TIMEOUT must be more than 0 and at most 300 seconds")
    if config.RETENTION_DAYS < 1:
        raise ConfigError("RETENTION_DAYS must be at least 1")
    if not 40 <= config.USSD_MAX_CHARS <= 182:
        raise ConfigError("USSD_MAX_CHARS must be between 40 and 182")
    if not re.fullmatch(r"\*[0-9]{1,6}(\*[0-9]{1,6}){0,4}#", config.USSD_SERVICE_CODE):
        raise ConfigError("USSD_SERVICE_CODE must be a dialled code such as *700# or *713*4# "
                          f"(got {config.USSD_SERVICE_CODE!r})")
