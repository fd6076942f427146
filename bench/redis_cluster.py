"""A Redis Cluster of local redis-server processes on loopback, for the
cluster tests (tests/cluster) and the benchmarks (bench/sizing.py).

    with LocalCluster(tmp, masters=3, replicas=1, node_timeout=2000) as cluster:
        cluster.url  # redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3

Each node runs in its own directory with ``--cluster-enabled yes``, on a free
port with its bus on another (``--cluster-port``; before Redis 7.0, the port
plus 10000); ``redis-cli --cluster
create`` joins them; the cluster is ready when every node says
``cluster_state:ok`` and every replica is in sync.
"""
from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def server_version() -> tuple[int, ...]:
    out = subprocess.run([shutil.which("redis-server"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    return tuple(int(x) for x in out.split("v=", 1)[1].split()[0].split("."))


def bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def bus_pairs(n: int) -> list[tuple[int, int]]:
    """For a redis-server before 7.0 (no --cluster-port): ``n`` ports whose
    bus port (the port + 10000) is free too."""
    found = []
    for port in random.sample(range(20000, 55000), 2000):
        if bindable(port) and bindable(port + 10000) and all(
                abs(port - p) not in (0, 10000) for p, _ in found):
            found.append((port, port + 10000))
            if len(found) == n:
                return found
    raise RuntimeError("no free ports for a Redis Cluster")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (held open together while chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class LocalCluster:
    def __init__(self, directory, masters: int = 3, replicas: int = 0, node_timeout: int = 2000,
                 extra: tuple[str, ...] = ()):
        self.directory = Path(directory)
        self.masters, self.replicas, self.node_timeout = masters, replicas, node_timeout
        self.extra = extra
        self.procs: dict[int, subprocess.Popen] = {}
        self.ports: list[int] = []
        self._bus: dict[int, int] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 30) -> None:
        exe = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if exe is None or cli is None:
            raise RuntimeError("redis-server and redis-cli are needed (apt-get install -y redis-server)")
        n = self.masters * (1 + self.replicas)
        self._own_bus = server_version() >= (7,)
        if self._own_bus:
            ports = free_ports(2 * n)
            self.ports, buses = ports[:n], ports[n:]
        else:
            self.ports, buses = map(list, zip(*bus_pairs(n)))
        self._bus = dict(zip(self.ports, buses))
        for port in self.ports:
            self._spawn(port)
        self._wait(lambda: all(self.client(p).ping() for p in self.ports), timeout, "nodes up")
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                       check=True, capture_output=True, timeout=timeout)
        self.wait_ok(timeout)

    def _spawn(self, port: int) -> None:
        where = self.directory / str(port)
        where.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             *(["--cluster-port", str(self._bus[port])] if self._own_bus else []),
             "--cluster-node-timeout", str(self.node_timeout),
             "--cluster-replica-validity-factor", "0",  # a replica may always take over
             "--repl-diskless-sync-delay", "0",  # a replica syncs at once (Redis 7 waits 5 s)
             "--save", "", "--appendonly", "no", "--dir", str(where), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=1,
                           decode_responses=True)

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis Cluster: timed out waiting for {what}")
            time.sleep(0.1)

    def alive(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node says cluster_state:ok and every replica is in sync."""
        def ready():
            for p in self.alive():
                c = self.client(p)
                if "cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                    return False
                info = c.info("replication")
                if info["role"] == "slave" and info.get("master_link_status") != "up":
                    return False
            return True
        self._wait(ready, timeout, "cluster_state:ok")

    def primaries(self) -> list[int]:
        """Ports of the live primaries, as the live nodes see them."""
        nodes = self.client(self.alive()[0]).execute_command("CLUSTER", "NODES")
        found = []
        for line in nodes.splitlines():
            parts = line.split()
            if "master" in parts[2] and "fail" not in parts[2]:
                found.append(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
        return sorted(p for p in found if p in self.alive())

    def kill(self, port: int) -> None:
        """kill -9 one node."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(5)

    def restart(self, port: int) -> None:
        """Start a killed node again (its nodes.conf kept): it rejoins the
        cluster, as a replica of whichever node took over its slots."""
        self._spawn(port)

    def flush(self) -> None:
        for p in self.primaries():
            self.client(p).flushall()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
