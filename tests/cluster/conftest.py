"""The tests of tests/cluster run on a Redis Cluster of three primaries
(redis-server processes on loopback, one cluster for the whole run), with the
job queue on the single server the other tests use (JOBS_REDIS_URL)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.redis_cluster import LocalCluster  # noqa: E402  (the project root, as bench/ does)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """Three primaries, no replicas (the failover test starts its own)."""
    with LocalCluster(tmp_path_factory.mktemp("cluster"), masters=3, replicas=0) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_url(redis_cluster):
    return redis_cluster.url


@pytest.fixture
def config(config, redis_server):
    return {**config, "JOBS_REDIS_URL": redis_server}


@pytest.fixture
def processes(processes, redis_server):
    """Real ``ussd-app`` processes on the cluster, their job queue on the single server."""
    processes.env["JOBS_REDIS_URL"] = redis_server
    return processes
