"""``ussd-sim``: a phone in the terminal, and a player of YAML scenarios."""
from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from urllib.parse import quote

import click

from ussd_app.core.errors import BadRequest, ConfigError
from ussd_app.core.msisdn import normalize
from ussd_app.gateways import DIALECTS
from ussd_app.scenarios import junit, wire
from ussd_app.scenarios.play import Inbox, Mismatch, Player, auth_hint, play, screen_warnings, split_dial
from ussd_app.scenarios.schema import ScenarioError, load_file

__all__ = ["Client", "ClientError", "Mismatch", "play", "screen_warnings", "split_dial", "main"]

def dialects() -> tuple[str, ...]:
    """The gateway dialects the simulator can speak."""
    return tuple(DIALECTS)


SMS_WAIT = 10.0  # seconds a scenario waits for an SMS a worker sends


class ClientError(Exception):
    """The service could not be reached or answered nonsense: one line saying which."""


def _reason(e: Exception) -> str:
    """Why a request failed, in a few words: the OS's reason (``Connection
    refused``, ``Name or service not known``) where there is one."""
    text = str(e)
    m = re.search(r"\[Errno -?[0-9]+\] ([^'\")\]]+)", text)
    if m:
        return m.group(1).strip().rstrip(".")
    return type(e).__name__ + (": timed out" if "timed out" in text.lower() else "")


class Client:
    """Talks to the service in-process (embedded Redis or REDIS_URL) or at ``url``."""

    def __init__(self, url: str | None = None, token: str | None = None,
                 gateway_token: str | None = None, app=None, dialect: str = "africastalking"):
        self.url = url.rstrip("/") if url else None
        self.dialect = dialect
        self._dialled: set[str] = set()
        self.headers = {}
        if token or os.environ.get("ADMIN_TOKEN"):
            self.headers["Authorization"] = f"Bearer {token or os.environ['ADMIN_TOKEN']}"
        gw = gateway_token or os.environ.get("GATEWAY_TOKEN")
        self.gateway_headers = {"X-Gateway-Token": gw} if gw else {}
        if self.url:
            import requests

            self.http = requests.Session()
            self.service_code = os.environ.get("USSD_SERVICE_CODE") or "*700#"
        else:
            if app is None:
                from ussd_app import create_app

                app = create_app()
            self.app = app
            self.http = app.test_client()
            self.service_code = self.services.config.USSD_SERVICE_CODE
        # An expected SMS may come after the hop answered, from a worker: wait
        # that long for it, unless the jobs run at once (the embedded store).
        self.sms_wait = 0.0 if self.services and self.services.jobs.sync else SMS_WAIT

    @property
    def services(self):
        return None if self.url else self.app.extensions["ussd"]

    def clock(self) -> float:
        """The service's time (in-process: its clock, which a test may shift)."""
        return time.time() if self.url else self.services.clock()

    def _call(self, method: str, path: str, **kw) -> tuple[int, str]:
        if self.url:
            import requests

            try:
                resp = self.http.request(method, self.url + path, timeout=20, **kw)
            except requests.RequestException as e:
                reason = _reason(e)
                raise ClientError(f"cannot reach {self.url}: {reason}") from None
            return resp.status_code, resp.text
        resp = self.http.open(path, method=method, **kw)
        return resp.status_code, resp.get_data(as_text=True)

    def ussd(self, session_id: str, msisdn: str, text: str, code: str,
             dialect: str | None = None) -> tuple[int, str]:
        """One hop as the gateway ``dialect`` (default: the client's) sends it,
        ``text`` being every input so far joined by ``*``; the reply as the
        phone shows it, ``CON``/``END`` and the screen, whatever the dialect
        (a refused hop: the body as it came)."""
        dialect = dialect or self.dialect
        first = session_id not in self._dialled
        self._dialled.add(session_id)
        path, content_type, body = wire.hop(dialect, session_id, msisdn, code, text, first)
        status, reply = self._post(path, content_type, body)
        if status != 200:
            return status, reply
        screen, ended = wire.shown(dialect, status, content_type, reply)
        if ended:  # the gateway's word that the session is over, where it gives one
            notice = wire.end(dialect, session_id, msisdn, code, text, "completed")
            if notice is not None:
                self._post(*notice)
        return status, wire.phone_text(screen, ended)

    def _post(self, path: str, content_type: str, body) -> tuple[int, str]:
        """A gateway's request, in its own content type."""
        if content_type == "application/x-www-form-urlencoded":
            return self._call("POST", path, headers=self.gateway_headers, data=body)
        return self._call("POST", path, data=body if isinstance(body, str) else json.dumps(body),
                          headers={**self.gateway_headers, "Content-Type": content_type})

    def sms(self, sender: str, text: str, to: str = "62168") -> int:
        return self._call("POST", "/sms/inbound", headers=self.gateway_headers, data={
            "from": sender, "to": to, "text": text, "id": uuid.uuid4().hex, "date": ""})[0]

    def end(self, session_id: str, msisdn: str, code: str, reason: str, text: str = "",
            **_) -> tuple[int, str, str | None]:
        """The network ends the session (``hangup`` by the user, or ``timeout``)
        after the inputs ``text``, as the client's gateway tells it (see
        scenarios.wire): the status, the body and the path it went to (None
        where this gateway sends nothing: (200, "", None))."""
        request = wire.end(self.dialect, session_id, msisdn, code, text, reason)
        if request is None:
            return 200, "", None
        return (*self._post(*request), request[0])

    def api(self, method: str, path: str, body=None) -> tuple[int, dict]:
        status, text = self._call(method, path, headers=self.headers, json=body)
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {"error": text[:200]}
        return status, data if isinstance(data, dict) else {"answer": data}

    def outbox(self, msisdn: str) -> list[dict]:
        status, data = self.api("GET", f"/api/v1/outbox?to={quote(normalize(msisdn))}")
        if status != 200:
            raise ClientError(f"GET /api/v1/outbox answered {status}{auth_hint('/api/', status)}: "
                              f"{data.get('error', data)}")
        return data.get("messages", [])


# -- the phone in the terminal ----------------------------------------------------
HELP = """commands (at any time):
  /sms TEXT    send TEXT by SMS to the short code
  /inbox       every SMS this number received
  /hangup      hang up (the network ends the session)
  /timeout     let the session time out
  /dial [CODE] dial again (default: the service code; *700*3# types 3 in advance)
  /quit        leave (also Ctrl-D)
anything else is typed on the phone's keypad"""


class TerminalPhone:
    def __init__(self, client: Client, msisdn: str, limit: int):
        self.client, self.msisdn, self.limit = client, msisdn, limit
        self.inbox = Inbox(self.outbox)
        self.sms_warned = False
        self.session: str | None = None
        self.code, self.text = client.service_code, ""

    def outbox(self, msisdn: str) -> list[dict]:
        """The number's SMS; when the server will not show them (a token), the
        phone still works and says once why no SMS appear."""
        try:
            return self.client.outbox(msisdn)
        except ClientError as e:
            if str(e).startswith("cannot reach"):
                raise
            if not self.sms_warned:
                click.secho(f"error: {e}; SMS will not be shown", fg="red", err=True)
                self.sms_warned = True
            return []

    def run(self, dialled: str) -> int:
        try:
            old = self.outbox(self.msisdn)
            self.inbox.mark(self.msisdn)
            for m in old:
                self.show_sms(m)
            self.dial(dialled)
        except ClientError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            return 1
        click.secho("(/help for the commands)", dim=True)
        while True:
            try:
                line = input("> " if self.session else f"[no session: Enter dials {self.client.service_code}] > ")
            except EOFError:
                click.echo()
                return 0
            except KeyboardInterrupt:
                click.echo("\n(/quit to leave)")
                continue
            try:
                done = self.command(line.strip())
                if done == "quit":
                    return 0
                self.show_new_sms()
                if done == "redraw" and self.session:
                    self.draw(self.last)  # the screen again, below the SMS
            except ClientError as e:
                click.secho(f"error: {e}", fg="red", err=True)

    def command(self, line: str) -> str | None:
        word, _, arg = line.partition(" ")
        if not line.startswith("/"):
            if self.session:
                self.type(line)
            elif line == "" or line.endswith("#"):
                self.dial(line or self.client.service_code)
            else:
                click.secho("no session: press Enter to dial, or /help", fg="yellow")
            return None
        if word == "/quit":
            return "quit"
        if word == "/help":
            click.echo(HELP)
        elif word == "/sms":
            if not arg.strip():
                click.secho("usage: /sms TEXT", fg="yellow")
            else:
                status = self.client.sms(self.msisdn, arg.strip())
                if status != 200:
                    raise ClientError(f"/sms/inbound answered {status}{auth_hint('/sms', status)}")
                click.secho(f"[SMS sent to the short code: {arg.strip()}]", fg="cyan")
                return "redraw"
        elif word == "/inbox":
            self.sms_warned = False
            messages = self.outbox(self.msisdn)
            for m in messages:
                self.show_sms(m)
            if not messages:
                click.echo("(no SMS)")
            self.inbox.mark(self.msisdn)
            return "redraw"
        elif word in ("/hangup", "/timeout"):
            if self.session is None:
                click.secho("no session to end", fg="yellow")
            else:
                status, body, path = self.client.end(self.session, self.msisdn, self.code, word[1:],
                                                     text=self.text)
                self.session = None
                if wire.told(status) is False:
                    raise ClientError(f"{path} answered {status}{auth_hint('/ussd', status)}: {body[:120]}")
                said = f"{self.client.dialect} sent {path}" if path else f"{self.client.dialect} sends nothing"
                click.secho(("[hung up]" if word == "/hangup" else "[the session timed out]") + f" ({said})",
                            fg="cyan")
        elif word == "/dial":
            self.dial(arg.strip() or self.client.service_code)
        else:
            click.secho(f"unknown command {word}; /help lists them", fg="yellow")
        return None

    def dial(self, dialled: str) -> None:
        self.session, self.hops, self.last = uuid.uuid4().hex, 0, ""
        self.code, self.text = split_dial(dialled, self.client.service_code)
        click.secho(f"\n[{self.msisdn} dials {dialled}]", fg="cyan")
        self.send()

    def type(self, typed: str) -> None:
        self.text = typed if self.text == "" else f"{self.text}*{typed}"
        self.send()

    def send(self) -> None:
        status, body = self.client.ussd(self.session, self.msisdn, self.text, self.code)
        if status != 200:
            self.session = None
            raise ClientError(f"/ussd answered {status}{auth_hint('/ussd', status)}: {body[:120]}")
        self.hops, self.last = self.hops + 1, body
        for w in screen_warnings(body, self.limit):
            click.secho(f"warning: {w}", fg="yellow")
        self.draw(body)
        if not body.startswith("CON "):
            self.session = None

    @staticmethod
    def draw(body: str) -> None:
        click.echo(f"+{'-' * 30}\n| " + body[4:].replace("\n", "\n| ") + f"\n+{'-' * 30}")

    def show_new_sms(self) -> None:
        for m in self.inbox.new(self.msisdn):
            self.show_sms(m)

    @staticmethod
    def show_sms(m: dict) -> None:
        click.secho(f"SMS from {m.get('from')} ({m.get('sent_at', '')}): {m.get('text')}", fg="green")


# -- command line ---------------------------------------------------------------
def _client(url: str | None, seed: bool | None = None, dialect: str = "africastalking") -> Client:
    """The client for ``--url`` or an app in this process (never on production data),
    behind the gateway ``dialect``."""
    if not url and os.environ.get("USSD_APP_ENV") == "production":
        raise click.ClickException("USSD_APP_ENV=production: ussd-sim does not run the app in-process "
                                   "on production data; use --url to reach a test server")
    try:
        client = Client(url, dialect=dialect)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if not url and (seed or (seed is None and not client.services.config.REDIS_URL)):
        from ussd_app import demo

        demo.seed(client.services)
    return client


def _limit() -> int:
    try:
        return int(os.environ.get("USSD_MAX_CHARS", 160))
    except ValueError:
        raise click.ClickException("USSD_MAX_CHARS must be a whole number") from None


@click.group(invoke_without_command=True)
@click.option("--url", help="A running service (default: in-process).")
@click.option("--msisdn", default="081234567890", show_default=True)
@click.option("--code", default=None, help="What is dialled (default: the service code); "
                                           "*700*3# dials with 3 typed in advance.")
@click.option("--dialect", type=click.Choice(list(DIALECTS)), default="africastalking",
              show_default=True, help="The gateway the phone is behind (a scenario's `dialect:` wins).")
@click.option("--seed/--no-seed", default=None,
              help="Seed demo data (default: the phone, in-process on the embedded store; "
                   "`run` seeds only when asked).")
@click.pass_context
def main(ctx, url, msisdn, code, dialect, seed):
    """A phone in the terminal: dial, read the screen, type, send and read SMS.

    Type /help at the prompt for the commands (/sms TEXT, /inbox, /hangup,
    /timeout, /dial CODE, /quit)."""
    ctx.obj = {"url": url, "seed": seed, "dialect": dialect}
    if ctx.invoked_subcommand:
        return
    try:
        msisdn = normalize(msisdn, "--msisdn")
    except BadRequest as e:
        raise click.ClickException(str(e)) from None
    client = _client(url, seed, dialect)
    sys.exit(TerminalPhone(client, msisdn, _limit()).run(code or client.service_code))


@main.command("run")
@click.argument("files", nargs=-1, required=True)
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False),
              help="Also write the results as JUnit XML to this file.")
@click.pass_context
def run_files(ctx, files, junit_path):
    """Play YAML scenarios: one line per file, then 'N passed, M failed'.

    Every file is checked before anything runs; each creates the data it
    declares under given: with names of its own, so files pass in any order,
    repeatedly, in-process or against --url. Exits 1 when any file failed."""
    checked, results = [], []
    known = dialects()
    for f in files:
        try:
            checked.append(load_file(f, known))
        except ScenarioError as e:
            checked.append(e)
    client = None
    if any(not isinstance(s, ScenarioError) for s in checked):
        client = _client(ctx.obj["url"], bool(ctx.obj["seed"]), ctx.obj["dialect"])
        if client.url:
            try:
                client.api("GET", "/healthz")
            except ClientError as e:  # one line, not one per file
                click.secho(f"error: {e}", fg="red")
                if junit_path:
                    _write_junit(junit_path, [junit.Result(f, junit.relative(f), 0.0, error=str(e))
                                              for f in files])
                sys.exit(1)
    limit = _limit()
    for f, scenario in zip(files, checked):
        started = time.perf_counter()
        if isinstance(scenario, ScenarioError):
            result = junit.Result(f, junit.relative(f), 0.0, error="\n".join(scenario.lines()))
        else:
            result = junit.Result(f, scenario.name, 0.0, dialect=scenario.dialect or client.dialect)
            player = Player(client, scenario, limit,
                            warn=lambda w, f=f: click.secho(f"  {f}: {w}", fg="yellow", err=True))
            try:
                result.steps = player.run()
            except Mismatch as e:
                where = f"{f}:{e.line}" if e.line else f
                result.failure = "\n".join([f"{where}: {e.message}", *e.details()])
            except ClientError as e:
                result.error = f"{f}: {e}"
            result.transcript = player.transcript
            result.seconds = time.perf_counter() - started
        results.append(result)
        _report(result)
    passed = sum(r.passed for r in results)
    click.echo(f"{passed} passed, {len(results) - passed} failed")
    if junit_path:
        _write_junit(junit_path, results)
    sys.exit(0 if passed == len(results) else 1)


def _write_junit(path: str, results: list) -> None:
    try:
        junit.write(path, results)
    except OSError as e:
        raise click.ClickException(f"cannot write {path}: {e.strerror}") from None


def _report(r: junit.Result) -> None:
    """One line per file on stdout; a failure's expected and got under it."""
    if r.passed:
        click.secho(f"ok    {r.path} ({r.steps} steps, {r.seconds:.2f} s)", fg="green")
        return
    first, *rest = (r.failure or r.error).splitlines()
    click.secho(f"FAIL  {first}" if first.startswith(r.path) else f"FAIL  {r.path}: {first}", fg="red")
    for line in rest:
        click.secho(f"      {line}", fg="red")
