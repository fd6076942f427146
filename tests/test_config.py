import pytest

from ussd_app.core import cluster, config
from ussd_app import create_app
from ussd_app.core.errors import ConfigError


def test_production_names_every_missing_variable():
    with pytest.raises(ConfigError) as e:
        config.load(environ={"USSD_APP_ENV": "production", "ADMIN_TOKEN": "x"})
    assert str(e.value) == "USSD_APP_ENV=production needs REDIS_URL, GATEWAY_TOKEN, PII_KEY to be set"


def test_production_starts_when_complete():
    cfg = config.load(environ={"USSD_APP_ENV": "production", "REDIS_URL": "redis://h", "ADMIN_TOKEN": "a",
                               "GATEWAY_TOKEN": "g", "PII_KEY": "k", **REAL_PROVIDERS})
    assert cfg.production and cfg.simulated == []


REAL_PROVIDERS = {"SMS_PROVIDER": "africastalking", "AFRICASTALKING_API_KEY": "k",
                  "FULFILMENT_URL": "https://fulfil.example/v1"}
COMPLETE = {"USSD_APP_ENV": "production", "REDIS_URL": "redis://h", "ADMIN_TOKEN": "a",
            "GATEWAY_TOKEN": "g", "PII_KEY": "k"}


@pytest.mark.parametrize("env, named", [
    ({}, ["SMS_PROVIDER=console", "FULFILMENT_URL unset"]),
    ({"SMS_PROVIDER": "console", "FULFILMENT_URL": "https://f.example"}, ["SMS_PROVIDER=console"]),
    ({"SMS_PROVIDER": "africastalking"}, ["FULFILMENT_URL unset"]),
    ({"SMS_PROVIDER": "africastalking", "FULFILMENT_URL": ""}, ["FULFILMENT_URL unset"]),
])
def test_production_refuses_simulated_providers_naming_each_in_one_line(env, named):
    with pytest.raises(ConfigError) as e:
        config.load(environ={**COMPLETE, **env})
    message = str(e.value)
    assert "\n" not in message and "ALLOW_SIMULATED_PROVIDERS=1" in message
    assert [n for n in ("SMS_PROVIDER=console", "FULFILMENT_URL unset") if n in message] == named
    allowed = config.load(environ={**COMPLETE, **env, "ALLOW_SIMULATED_PROVIDERS": "1"})
    assert allowed.simulated == named


def test_development_keeps_its_simulated_providers():
    assert config.load(environ={}).simulated == ["SMS_PROVIDER=console", "FULFILMENT_URL unset"]


@pytest.mark.parametrize("env, message", [
    ({"USSD_MAX_CHARS": "abc"}, "USSD_MAX_CHARS must be a whole number"),
    ({"USSD_MAX_CHARS": "500"}, "USSD_MAX_CHARS must be between"),
    ({"SMS_PROVIDER": "pigeon"}, "SMS_PROVIDER must be console, africastalking or smpp"),
    ({"USSD_RESUME_SECONDS": "-1"}, "USSD_RESUME_SECONDS must be 0 or more"),
    ({"USSD_RESUME_SECONDS": "2m"}, "USSD_RESUME_SECONDS must be a whole number"),
    ({"REDIS_URL": "redis+cluster://h:7000"}, "REDIS_URL is a Redis Cluster: set JOBS_REDIS_URL"),
    ({"REDIS_URL": "redis+cluster://h:7000", "JOBS_REDIS_URL": "redis+cluster://h:7001"},
     "JOBS_REDIS_URL must be a plain Redis"),
    ({"REDIS_WAIT_REPLICAS": "-1"}, "REDIS_WAIT_REPLICAS must be from 0 to 16"),
    ({"RETENTION_DAYS": "0"}, "RETENTION_DAYS must be at least 1"),
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


def test_a_cluster_with_a_plain_redis_for_jobs_is_accepted():
    cfg = config.load(environ={"REDIS_URL": "redis+cluster://a:7000,b:7001",
                               "JOBS_REDIS_URL": "redis://q:6379/0"})
    assert cfg.JOBS_REDIS_URL == "redis://q:6379/0"


def test_cluster_urls_name_their_nodes_tls_and_credentials():
    found = cluster.options("rediss+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002")
    assert [(n.host, n.port) for n in found["startup_nodes"]] == [
        ("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)]
    assert (found["ssl"], found["username"], found["password"]) == (True, "app", "s@cret")
    assert cluster.options("redis+cluster://h:7000/0")["ssl"] is False


@pytest.mark.parametrize("url, message", [
    ("redis+cluster://h", "'h' is not host:port"),
    ("redis+cluster://h:7000,:7001", "':7001' is not host:port"),
    ("redis+cluster://h:7000/2", "a Redis Cluster has only database 0"),
])
def test_bad_cluster_urls_are_named(url, message):
    with pytest.raises(ConfigError, match=message):
        cluster.options(url)


@pytest.mark.parametrize("code", ["700", "*700", "*700*#", "*7a0#", "**700#", "*700*4*1*2*3*4#"])
def test_a_service_code_is_a_dialled_code(code):
    with pytest.raises(ConfigError, match="USSD_SERVICE_CODE must be a dialled code"):
        config.load(environ={"USSD_SERVICE_CODE": code})


@pytest.mark.parametrize("code", ["*700#", "*713*4#", "*713*20*123#"])
def test_a_service_code_may_carry_sub_codes(code):
    assert config.load(environ={"USSD_SERVICE_CODE": code}).USSD_SERVICE_CODE == code
