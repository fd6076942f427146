import pytest

from ussd_app.core import config
from ussd_app import create_app
from ussd_app.core.errors import ConfigError


def test_production_names_every_missing_variable():
    with pytest.raises(ConfigError) as e:
        config.load(environ={"USSD_APP_ENV": "production", "ADMIN_TOKEN": "x"})
    assert str(e.value) == "USSD_APP_ENV=production needs REDIS_URL, GATEWAY_TOKEN, PII_KEY to be set"


def test_production_starts_when_complete():
    cfg = config.load(environ={"USSD_APP_ENV": "production", "REDIS_URL": "redis://h", "ADMIN_TOKEN": "a",
                               "GATEWAY_TOKEN": "g", "PII_KEY": "k"})
    assert cfg.production


@pytest.mark.parametrize("env, message", [
    ({"USSD_MAX_CHARS": "abc"}, "USSD_MAX_CHARS must be a whole number"),
    ({"USSD_MAX_CHARS": "500"}, "USSD_MAX_CHARS must be between"),
    ({"SMS_PROVIDER": "pigeon"}, "SMS_PROVIDER must be console or africastalking"),
    ({"USSD_RESUME_SECONDS": "-1"}, "USSD_RESUME_SECONDS must be 0 or more"),
    ({"USSD_RESUME_SECONDS": "2m"}, "USSD_RESUME_SECONDS must be a whole number"),
])
def test_bad_values_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        config.load(environ=env)


def test_defaults_follow_the_brief():
    cfg = config.load(environ={})
    assert (cfg.USSD_SERVICE_CODE, cfg.USSD_MAX_CHARS, cfg.SMS_PROVIDER) == ("*700#", 160, "console")
    assert cfg.OFFER_SEND_WINDOW == "Mon-Sat 08:00-18:00"
    assert cfg.USSD_RESUME_SECONDS == 120


def test_factory_refuses_incomplete_production(monkeypatch):
    monkeypatch.setenv("USSD_APP_ENV", "production")
    with pytest.raises(ConfigError, match="REDIS_URL"):
        create_app()
