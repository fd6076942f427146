"""A real SMSC on loopback for the SMPP tests: Jasmin 0.11.0 (its own venv,
``.ci/jasmin`` installs it), with RabbitMQ (Debian's) and a redis-server of
its own, each on a free loopback port in a temporary directory.

Jasmin's SMPP server takes the binder's bind_transceiver as user ``ussd``. An
SMPP client connector of Jasmin's, ``loop``, binds back to the same server as
user ``carrier``: the MT route sends group ``ussd``'s messages through it, so
Jasmin's ``messages.log`` records each MT (from, to, content, ids) as a
carrier would have seen it. What the test pushes into the ``carrier`` bind
(Jasmin's SMPP-server PB API, ``inject.py``) reaches Jasmin as from a
carrier: an MO goes through the MO router to ``ussd``, a receipt through the
DLR lookup to the binder's message. ``carrier``'s own submits go to a
connector that is never started (they wait in RabbitMQ, answered ESME_ROK).

Everything is configured through ``jcli`` (in memory: again after a restart).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from faultstack import Process, free_port, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RABBITMQ = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
INJECT = Path(__file__).with_name("inject.py")
USER, PASSWORD = "ussd", "ussd-pw"


def venv() -> Path:
    """Jasmin's venv: $JASMIN_VENV, else .jasmin/venv in the checkout (.ci/jasmin)."""
    return Path(os.environ.get("JASMIN_VENV") or ROOT / ".jasmin" / "venv")


def missing() -> str | None:
    """Why the SMPP tests cannot run here, or None."""
    if not (venv() / "bin" / "jasmind.py").exists():
        return (f"Jasmin is not installed at {venv()} (run: bash .ci/jasmin; or set JASMIN_VENV)")
    if not RABBITMQ.exists():
        return "rabbitmq-server is not installed (bash .ci/jasmin installs it from Debian)"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    return None


def jcli(port: int, lines: list[str]) -> str:
    """Type ``lines`` into Jasmin's console; its whole answer."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        buf = b""

        def until(*marks: bytes) -> str:
            nonlocal buf
            while not any(m in buf for m in marks):
                chunk = s.recv(65536)
                if not chunk:
                    raise EOFError(buf.decode(errors="replace"))
                buf += chunk
            text, buf = buf.decode(errors="replace"), b""
            return text

        s.sendall(b"\r\n")
        until(b"jcli : ")
        for line in lines:
            s.sendall(line.encode() + b"\r\n")
            out.append(until(b"jcli : ", b"> "))
    return "".join(out)


MT_LINE = re.compile(r"SMS-MT \[cid:loop\] \[queue-msgid:(?P<id>[^\]]+)\] \[smpp-msgid:b?'?(?P<smpp>[^'\]]+)'?\]"
                     r" \[status:(?P<status>[^\]]+)\].*?\[from:b'(?P<src>[^']*)'\] \[to:b'(?P<to>[^']*)'\]"
                     r" \[content:b(?P<q>['\"])(?P<content>.*)(?P=q)\]$")


class Jasmin:
    """RabbitMQ, Jasmin's Redis and jasmind, on loopback ports under ``dir``."""

    def __init__(self, dir: Path):
        self.dir = dir
        self.smpp_port = free_port()  # kept over a restart of jasmind: the binder's SMPP_URL
        self.root = dir / "root"
        self.logs = self.root / "var" / "log" / "jasmin"
        for d in (self.root / "etc" / "jasmin" / "store", self.logs, dir / "rabbitmq"):
            d.mkdir(parents=True, exist_ok=True)
        self.redis_port = free_port()
        self.redis = Process("jasmin-redis", [shutil.which("redis-server"), "--port", str(self.redis_port),
                                              "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             os.environ.copy(), dir)
        self.config = self.root / "etc" / "jasmin" / "jasmin.cfg"
        self.rabbit = self.jasmind = None

    def _rabbit(self) -> Process:
        """RabbitMQ on fresh loopback ports (its AMQP, Erlang distribution and epmd)."""
        rmq = self.dir / "rabbitmq"
        shutil.rmtree(rmq, ignore_errors=True)
        rmq.mkdir()
        (rmq / "enabled_plugins").write_text("[].\n")
        (rmq / "rabbitmq.conf").write_text("loopback_users = none\n")
        self.amqp_port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.rabbit_env = {**os.environ, "HOME": str(rmq),
                           "RABBITMQ_NODENAME": f"jasmin{self.amqp_port}@localhost",
                           "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.amqp_port),
                           "RABBITMQ_DIST_PORT": str(self.dist_port), "ERL_EPMD_PORT": str(self.epmd_port),
                           "ERL_EPMD_ADDRESS": "127.0.0.1",
                           "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
                           "RABBITMQ_MNESIA_BASE": str(rmq / "mnesia"), "RABBITMQ_LOG_BASE": str(rmq / "log"),
                           "RABBITMQ_CONFIG_FILE": str(rmq / "rabbitmq"),
                           "RABBITMQ_ENABLED_PLUGINS_FILE": str(rmq / "enabled_plugins"),
                           "RABBITMQ_PID_FILE": str(rmq / "pid")}
        return Process("rabbitmq", [str(RABBITMQ)], self.rabbit_env, self.dir)

    def _write_config(self) -> None:
        self.jcli_port, self.pb_port = free_port(), free_port()
        spec = next((venv() / "lib").glob("python3*/site-packages/txamqp/specs/standard/amqp0-9-1.stripped.xml"))
        self.config.write_text(f"""
[smpp-server]
bind = 127.0.0.1
port = {self.smpp_port}
[smpp-server-pb]
bind = 127.0.0.1
port = {self.pb_port}
[smpp-server-pb-client]
host = 127.0.0.1
port = {self.pb_port}
[client-management]
bind = 127.0.0.1
port = {free_port()}
[router]
bind = 127.0.0.1
port = {free_port()}
[http-api]
bind = 127.0.0.1
port = {free_port()}
[interceptor]
bind = 127.0.0.1
port = {free_port()}
[jcli]
bind = 127.0.0.1
port = {self.jcli_port}
authentication = False
[amqp-broker]
host = 127.0.0.1
port = {self.amqp_port}
spec = {spec}
[redis-client]
host = 127.0.0.1
port = {self.redis_port}
[deliversm-thrower]
retry_delay = 2
max_retries = 60
[dlr-thrower]
retry_delay = 2
""")
        self.jasmind = Process("jasmind", [str(venv() / "bin" / "python"), str(venv() / "bin" / "jasmind.py"),
                                           "-c", str(self.config), "--enable-dlr-thrower",
                                           "--enable-dlr-lookup", "--disable-http-api"],
                               {**os.environ, "ROOT_PATH": str(self.root)}, self.dir)

    # -- running
    def start(self) -> None:
        self.redis.start()
        for attempt in range(3):  # a port taken in between by another process: fresh ones
            self.rabbit = self._rabbit()
            self.rabbit.start()
            try:
                wait_for(lambda: _listening(self.amqp_port) and self.rabbit.alive and self._rabbit_up(), 90,
                         "RabbitMQ running", every=0.5)
                break
            except AssertionError:
                self._stop_rabbit()
                if attempt == 2:
                    raise
        self.start_jasmind()

    def _rabbit_up(self) -> bool:
        ctl = subprocess.run([str(RABBITMQ.with_name("rabbitmqctl")), "-q", "status"], env=self.rabbit_env,
                             capture_output=True, timeout=60)
        return ctl.returncode == 0

    def _stop_rabbit(self) -> None:
        if self.rabbit is None:
            return
        if self.rabbit.alive:
            subprocess.run([str(RABBITMQ.with_name("rabbitmqctl")), "stop"], env=self.rabbit_env,
                           capture_output=True, timeout=60)
        self.rabbit.stop()
        _stop_epmd(self.epmd_port)

    def start_jasmind(self) -> None:
        for attempt in range(3):
            self._write_config()
            self.jasmind.start()
            try:
                wait_for(lambda: self.jasmind.alive and _listening(self.jcli_port) and _listening(self.smpp_port),
                         60, "Jasmin's jcli and SMPP server listening", every=0.2)
                break
            except AssertionError:
                self.jasmind.stop()
                if attempt == 2:
                    raise
        self.configure()

    def stop_jasmind(self) -> None:
        """SIGTERM, as an SMSC's operator restarting it would (it unbinds its ESMEs)."""
        self.jasmind.stop()

    def stop(self) -> None:
        if self.jasmind is not None:
            self.jasmind.stop()
        self._stop_rabbit()
        self.redis.stop()

    def configure(self) -> None:
        answer = jcli(self.jcli_port, [
            "group -a", "gid ussd", "ok", "group -a", "gid carrier", "ok",
            "user -a", f"username {USER}", f"password {PASSWORD}", "gid ussd", f"uid {USER}", "ok",
            "user -a", "username carrier", "password carr-pw", "gid carrier", "uid carrier", "ok",
            "smppccm -a", "cid loop", "host 127.0.0.1", f"port {self.smpp_port}", "username carrier",
            "password carr-pw", "submit_throughput 0", "ok",
            "smppccm -a", "cid sink", "host 127.0.0.1", "port 9", "username sink", "password sink", "ok",
            "filter -a", "type GroupFilter", "fid gussd", "gid ussd", "ok",
            "mtrouter -a", "type StaticMTRoute", "order 10", "filters gussd", "connector smppc(loop)",
            "rate 0.00", "ok",
            "mtrouter -a", "type DefaultRoute", "connector smppc(sink)", "rate 0.00", "ok",
            "morouter -a", "type DefaultRoute", f"connector smpps({USER})", "ok",
            "smppccm -1 loop"])
        assert "Successfully started connector id:loop" in answer, answer[-2000:]
        wait_for(lambda: "BOUND_TRX" in jcli(self.jcli_port, ["smppccm -l"]).split("#loop", 1)[-1][:120],
                 30, "Jasmin's loop connector bound", every=0.3)

    def throttle(self, tps: int | None) -> None:
        """At most ``tps`` submit_sm a second from the ESME (beyond: ESME_RTHROTTLED); None: no cap."""
        answer = jcli(self.jcli_port, ["user -u " + USER,
                                       f"mt_messaging_cred quota smpps_throughput {tps or 'none'}", "ok"])
        assert "Successfully updated" in answer, answer[-1000:]

    @property
    def url(self) -> str:
        return f"smpp://{USER}:{PASSWORD}@127.0.0.1:{self.smpp_port}"

    # -- what Jasmin saw, what a carrier sends
    def mts(self, to: str | None = None) -> list[dict]:
        """Every MT Jasmin passed to its carrier (messages.log), oldest first."""
        found = []
        for path in sorted(self.logs.glob("messages.log*")):
            for line in path.read_text(errors="replace").splitlines():
                m = MT_LINE.search(line)
                if m and (to is None or m["to"] == to.lstrip("+")):
                    found.append({k: m[k] for k in ("id", "smpp", "status", "src", "to", "content", "q")})
        return found

    def inject(self, *args: str) -> None:
        run = subprocess.run([str(venv() / "bin" / "python"), str(INJECT), str(self.pb_port), "carrier", *args],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, f"inject {args[0]}: {run.stderr[-500:]}"

    def mo(self, source: str, text: str, dest: str = "62168") -> None:
        self.inject("mo", source.lstrip("+"), dest, text)

    def receipt(self, mt: dict, stat: str) -> None:
        """The carrier's receipt for ``mt`` (one of :meth:`mts`)."""
        self.inject("receipt", mt["smpp"], mt["src"], mt["to"], stat)

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in (self.jasmind, self.rabbit))


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop_epmd(port: int) -> None:
    """The epmd RabbitMQ started for ``port`` (a daemon: it outlives the broker)."""
    epmd = shutil.which("epmd")
    if epmd:
        subprocess.run([epmd, "-kill"], capture_output=True, timeout=10,
                       env={**os.environ, "ERL_EPMD_PORT": str(port)})
    for entry in Path("/proc").iterdir():
        if not re.fullmatch(r"[0-9]+", entry.name):  # a process's directory
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"epmd" in cmd and f"ERL_EPMD_PORT={port}".encode() in environ:
            try:
                os.kill(int(entry.name), signal.SIGTERM)
            except ProcessLookupError:
                pass
