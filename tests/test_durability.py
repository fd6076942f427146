"""Redis durability: what readiness reports, and production refusing a Redis
that would lose confirmed redemptions on a restart."""
import shutil
import subprocess
import time

import pytest
import redis

from test_store import close
from ussd_app import create_app
from ussd_app.core import store
from ussd_app.core.errors import ConfigError

PII_KEY = "LxtcgdmYBx1Q94gEvbSQOdPxTAbk0wA6TKiHyfieRa4="


@pytest.fixture
def own_redis(tmp_path, free_port):
    """Start a redis-server of the test's own with the given arguments; its URL."""
    procs = []

    def start(*args: str) -> str:
        procs.append(subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(free_port), "--bind", "127.0.0.1",
             "--dir", str(tmp_path), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"redis://127.0.0.1:{free_port}/0"
        with redis.Redis.from_url(url) as client:
            for _ in range(200):
                try:
                    client.ping()
                    return url
                except redis.ConnectionError:
                    time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)


@pytest.fixture
def build():
    """create_app, each app's connections closed after the test."""
    apps = []

    def make(config: dict | None = None):
        apps.append(create_app(config))
        return apps[-1]

    yield make
    for app in apps:
        close(app)


def production(url: str, **more) -> dict:
    return {"USSD_APP_ENV": "production", "REDIS_URL": url, "GATEWAY_TOKEN": "g",
            "ADMIN_TOKEN": "a", "PII_KEY": PII_KEY, "ALLOW_SIMULATED_PROVIDERS": "1", **more}


@pytest.mark.parametrize("args, kept", [
    (("--appendonly", "yes", "--appendfsync", "everysec", "--save", ""), "aof"),
    (("--appendonly", "no", "--save", "3600 1"), "rdb"),
    (("--appendonly", "no", "--save", ""), "none"),
])
def test_readiness_says_how_redis_keeps_data(own_redis, build, args, kept):
    app = build({"REDIS_URL": own_redis(*args), "USSD_APP_ENV": "test"})
    resp = app.test_client().get("/readyz")
    assert (resp.status_code, resp.get_json()) == (200, {"status": "ok", "redis": "ok", "persistence": kept})


def test_without_config_a_snapshot_since_start_counts_as_rdb(own_redis):
    """Managed Redis often disables CONFIG: INFO alone must do."""
    url = own_redis("--appendonly", "no", "--save", "3600 1", "--rename-command", "CONFIG", "")
    with redis.Redis.from_url(url) as r:
        assert store.persistence(r) == "none"  # nothing says it snapshots yet
        time.sleep(1.1)  # a save in the server's first second looks like its start
        r.bgsave()
        while r.info("persistence")["rdb_bgsave_in_progress"]:
            time.sleep(0.02)
        assert store.persistence(r) == "rdb"


def test_readiness_fails_without_redis(free_port, monkeypatch, build):
    monkeypatch.setattr(store, "PATIENCE", 0.2)
    app = build({"REDIS_URL": f"redis://127.0.0.1:{free_port}/0", "USSD_APP_ENV": "test"})
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json() == {"status": "unavailable", "redis": "unavailable", "error": "redis: ConnectionError"}


def test_production_refuses_a_redis_that_keeps_nothing(own_redis, build):
    url = own_redis("--appendonly", "no", "--save", "")
    with pytest.raises(ConfigError, match="ALLOW_VOLATILE_REDIS=1") as e:
        build(production(url))
    assert "appendonly yes" in str(e.value) and "127.0.0.1" in str(e.value)
    assert build(production(url, ALLOW_VOLATILE_REDIS=True)).extensions["ussd"].config.production


def test_production_starts_on_an_append_only_redis(own_redis, build):
    url = own_redis("--appendonly", "yes", "--save", "")
    assert build(production(url)).test_client().get("/readyz").get_json()["persistence"] == "aof"


def test_production_says_so_when_redis_cannot_be_reached(free_port, monkeypatch, build):
    monkeypatch.setattr(store, "PATIENCE", 0.2)
    url = f"redis://:secret@127.0.0.1:{free_port}/0"
    with pytest.raises(ConfigError, match=f"Redis at 127.0.0.1:{free_port} .REDIS_URL. did not answer") as e:
        build(production(url))
    assert "secret" not in str(e.value)


def test_the_volatile_switch_is_read_from_the_environment(monkeypatch, own_redis, build):
    url = own_redis("--appendonly", "no", "--save", "")
    for name, value in production(url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ALLOW_VOLATILE_REDIS", "1")
    assert build().extensions["ussd"].config.ALLOW_VOLATILE_REDIS is True


def test_the_durability_benchmark_redeems(redis_url):
    """bench/durability.py measures real redemptions (it once called an older
    ``redeem`` and crashed): one short run against the test's Redis."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench import durability

    with redis.Redis.from_url(redis_url) as r:
        r.flushdb()
        try:
            got = durability.measure(redis_url, 2, 0.2)
        finally:
            r.flushdb()
    assert got["per_s"] > 0 and 0 < got["p50"] <= got["p99"]


def test_readiness_names_the_simulated_providers_production_was_allowed(own_redis, build):
    url = own_redis("--appendonly", "yes", "--save", "")
    ready = build(production(url, FULFILMENT_URL="https://f.example")).test_client().get("/readyz")
    assert (ready.status_code, ready.get_json()["simulated"]) == (200, ["SMS_PROVIDER=console"])
    real = production(url, FULFILMENT_URL="https://f.example", SMS_PROVIDER="africastalking",
                      AFRICASTALKING_API_KEY="k", ALLOW_SIMULATED_PROVIDERS="")
    assert "simulated" not in build(real).test_client().get("/readyz").get_json()
