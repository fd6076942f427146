"""Operating the service on a Redis Cluster as its processes start: production's
check that Redis keeps its data, readiness, and a cluster that cannot be reached."""
import pytest

from test_durability import PII_KEY, build  # noqa: F401  (the fixture, here too)
from ussd_app.core import store
from ussd_app.core.errors import ConfigError


def production(config: dict, **more) -> dict:
    return {**config, "USSD_APP_ENV": "production", "GATEWAY_TOKEN": "g", "ADMIN_TOKEN": "a",
            "PII_KEY": PII_KEY, "JOBS_SYNC": False, "ALLOW_SIMULATED_PROVIDERS": True, **more}


@pytest.fixture
def aof_on(redis_cluster):
    """Turn the append-only file on for the given primaries (ports); off again after."""
    turned = []

    def on(*ports: int) -> None:
        for port in ports:
            redis_cluster.client(port).config_set("appendonly", "yes")
            turned.append(port)
    yield on
    for port in turned:
        redis_cluster.client(port).config_set("appendonly", "no")


def test_production_refuses_a_cluster_that_keeps_nothing(config, build):  # noqa: F811
    with pytest.raises(ConfigError, match="ALLOW_VOLATILE_REDIS=1") as e:
        build(production(config))
    assert "appendonly yes" in str(e.value) and "127.0.0.1" in str(e.value)
    assert build(production(config, ALLOW_VOLATILE_REDIS=True)).extensions["ussd"].config.production


def test_a_cluster_keeps_its_data_only_if_every_primary_does(services, client, redis_cluster, aof_on):
    """Readiness and production's check ask every primary, not whichever one
    the client picked: one primary without the append-only file loses its
    shard's redemptions on a restart."""
    r = services.r
    default = r.get_default_node().port
    aof_on(default)
    assert store.persistence(r) == "none"
    assert client.get("/readyz").get_json()["persistence"] == "none"
    aof_on(*(p for p in redis_cluster.primaries() if p != default))
    assert store.persistence(r) == "aof"
    assert client.get("/readyz").get_json()["persistence"] == "aof"


def test_a_cluster_that_cannot_be_reached_is_named_after_waiting(monkeypatch, free_port, config):
    """As on one server: the command waits a while, then says which Redis it
    could not reach (no stack trace, no password)."""
    monkeypatch.setattr(store, "PATIENCE", 0.3)
    url = f"redis+cluster://:secret@127.0.0.1:{free_port}"
    with pytest.raises(ConfigError, match=f"Redis Cluster at 127.0.0.1:{free_port} .REDIS_URL.") as e:
        store.connect(url)
    assert "secret" not in str(e.value)


def test_production_refuses_a_job_queue_that_keeps_nothing(config, build, redis_cluster, aof_on):  # noqa: F811
    """The queue's own Redis (JOBS_REDIS_URL, required with a cluster) holds
    offer SMS held for the sending window and the retries of fulfilments and
    lead pushes: production checks it as it checks the cluster."""
    aof_on(*redis_cluster.primaries())
    with pytest.raises(ConfigError, match="JOBS_REDIS_URL") as e:
        build(production(config))
    assert "ALLOW_VOLATILE_REDIS=1" in str(e.value)


def test_a_job_queue_on_a_node_of_the_cluster_is_refused(config, build, redis_cluster):  # noqa: F811
    """JOBS_REDIS_URL must be a plain Redis: pointed at a node of the cluster,
    rq's keys answer MOVED, so the worker died with a stack trace and every
    confirmed redemption answered 500, left pending. Every process says so
    as it starts."""
    node = f"redis://127.0.0.1:{redis_cluster.primaries()[0]}/0"
    with pytest.raises(ConfigError, match="JOBS_REDIS_URL") as e:
        build({**config, "JOBS_REDIS_URL": node})
    assert "plain Redis" in str(e.value) and f"127.0.0.1:{redis_cluster.primaries()[0]}" in str(e.value)


def test_readiness_holds_while_one_primary_is_away(services, client, monkeypatch, free_port):
    """One shard away (a primary being replaced, or down without a replica)
    leaves the others serving their subscribers: readiness does not take every
    web process out of a load balancer for it. It fails when no node answers."""
    import redis
    from ussd_app.core import cluster

    live = cluster.primaries(services.r)
    away = redis.Redis(host="127.0.0.1", port=free_port, socket_connect_timeout=0.5)
    monkeypatch.setattr(cluster, "primaries", lambda r: [away, *live])
    resp = client.get("/readyz")
    assert resp.status_code == 200 and resp.get_json()["persistence"] == "none"
    monkeypatch.setattr(cluster, "primaries", lambda r: [away])
    assert client.get("/readyz").status_code == 503
    away.close()
