"""``ussd-sim``: a phone in the terminal, and a player of YAML scenarios."""
from __future__ import annotations

import json
import os
import re
import sys
import uuid
from pathlib import Path

import click
import yaml

from ussd_app.core import gsm7
from ussd_app.core.msisdn import normalize
from ussd_app.gateways import DIALECTS


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
        else:
            if app is None:
                from ussd_app import create_app

                app = create_app()
            self.app = app
            self.http = app.test_client()

    @property
    def services(self):
        return None if self.url else self.app.extensions["ussd"]

    def _call(self, method: str, path: str, **kw) -> tuple[int, str]:
        if self.url:
            resp = self.http.request(method, self.url + path, timeout=20, **kw)
            return resp.status_code, resp.text
        resp = self.http.open(path, method=method, **kw)
        return resp.status_code, resp.get_data(as_text=True)

    def ussd(self, session_id: str, msisdn: str, text: str, code: str,
             dialect: str | None = None) -> tuple[int, str]:
        """One hop as the gateway ``dialect`` (default: the client's) sends it,
        ``text`` being every input so far joined by ``*``; the reply as ``CON``/``END``
        text whatever the dialect."""
        gateway = DIALECTS[dialect or self.dialect]
        inputs = text.split("*") if text else []
        first = session_id not in self._dialled
        self._dialled.add(session_id)
        path, content_type, body = gateway.encode(
            session_id, msisdn, code, inputs if first else inputs[:-1],
            None if first else (inputs[-1] if inputs else ""), "dial" if first else "input")
        if content_type == "application/x-www-form-urlencoded":
            status, reply = self._call("POST", path, headers=self.gateway_headers, data=body)
        else:
            status, reply = self._call("POST", path, data=body if isinstance(body, str) else json.dumps(body),
                                       headers={**self.gateway_headers, "Content-Type": content_type})
        if gateway.NAME == "africastalking":
            return status, reply
        shown, end = gateway.decode(status, content_type, reply)
        return status, ("END " if end else "CON ") + shown

    def sms(self, sender: str, text: str, to: str = "62168") -> int:
        return self._call("POST", "/sms/inbound", headers=self.gateway_headers, data={
            "from": sender, "to": to, "text": text, "id": uuid.uuid4().hex, "date": ""})[0]

    def api(self, method: str, path: str, body=None) -> tuple[int, dict]:
        status, text = self._call(method, path, headers=self.headers, json=body)
        return status, json.loads(text) if text else {}

    def outbox(self, msisdn: str) -> list[dict]:
        status, data = self.api("GET", f"/api/v1/outbox?to={normalize(msisdn)}")
        return data.get("messages", []) if status == 200 else []


def screen_warnings(body: str, limit: int) -> list[str]:
    text = body[4:] if body[:4] in ("CON ", "END ") else body
    out = gsm7.problems(text, limit)
    if body[:4] not in ("CON ", "END "):
        out.append("reply starts with neither CON nor END")
    return out


# -- scenarios ----------------------------------------------------------------
class Mismatch(Exception):
    pass


def _check_text(what: str, got: str, step: dict) -> None:
    expect = step.get("expect")
    for part in ([expect] if isinstance(expect, str) else expect or []):
        if part not in got:
            raise Mismatch(f"{what}: expected to contain\n    {part!r}\n  got\n    {got!r}")
    for pattern in ([step["expect_regex"]] if isinstance(step.get("expect_regex"), str)
                    else step.get("expect_regex") or []):
        if not re.search(pattern, got):
            raise Mismatch(f"{what}: expected to match /{pattern}/\n  got\n    {got!r}")


def play(client: Client, scenario: dict, limit: int = 160, warn=print) -> int:
    """Play one scenario; raises Mismatch on the first difference. Returns steps run."""
    phone = {"msisdn": None, "session": None, "text": None, "code": "*700#",
             "dialect": scenario.get("dialect")}
    sms_seen: dict[str, int] = {}
    n = 0
    for n, step in enumerate(scenario.get("steps", []), 1):
        where = f"step {n}"
        if "api" in step:
            method, path = step["api"].split(" ", 1)
            status, data = client.api(method.upper(), path, step.get("json"))
            if status != step.get("status", status) or status >= 400 and "status" not in step:
                raise Mismatch(f"{where}: {method} {path} answered {status}: {data}")
            _check_text(where, json.dumps(data), step)
        elif "sms" in step:
            sender = step["sms"].get("from", phone["msisdn"])
            client.sms(sender, step["sms"]["text"])
        elif "dial" in step:
            dial = step["dial"] if isinstance(step["dial"], dict) else {"msisdn": step["dial"]}
            phone.update(msisdn=dial.get("msisdn", phone["msisdn"]), session=uuid.uuid4().hex,
                         code=dial.get("code", "*700#"))
            phone["text"] = dial.get("text", "")
            sms_seen[phone["msisdn"]] = len(client.outbox(phone["msisdn"]))
            _ussd(client, phone, where, step, limit, warn)
        elif "input" in step:
            typed = str(step["input"])
            phone["text"] = typed if phone["text"] == "" else f"{phone['text']}*{typed}"
            _ussd(client, phone, where, step, limit, warn)
        if "expect_sms" in step:
            want = step["expect_sms"]
            to = want.get("to", phone["msisdn"]) if isinstance(want, dict) else phone["msisdn"]
            contains = want.get("contains") if isinstance(want, dict) else want
            msgs = client.outbox(to)
            new = msgs[sms_seen.get(to, 0):]
            sms_seen[to] = len(msgs)
            texts = [m["text"] for m in new]
            if not any(contains in t for t in texts):
                raise Mismatch(f"{where}: expected an SMS to {to} containing\n    {contains!r}\n"
                               f"  got\n    " + ("\n    ".join(map(repr, texts)) or "(no SMS)"))
    return n


def _ussd(client, phone, where, step, limit, warn):
    status, body = client.ussd(phone["session"], phone["msisdn"], phone["text"], phone["code"],
                               phone["dialect"])
    if status != 200:
        raise Mismatch(f"{where}: /ussd answered {status}: {body}")
    for w in screen_warnings(body, limit):
        warn(f"warning: {where}: {w}")
    _check_text(where, body, step)
    if "end" in step and body.startswith("END ") != bool(step["end"]):
        raise Mismatch(f"{where}: expected {'END' if step['end'] else 'CON'}, got\n    {body!r}")


# -- command line ---------------------------------------------------------------
@click.group(invoke_without_command=True)
@click.option("--url", help="A running service (default: in-process).")
@click.option("--msisdn", default="081234567890", show_default=True)
@click.option("--code", default="*700#", show_default=True, help="Service code dialled.")
@click.option("--dialect", default="africastalking", show_default=True,
              type=click.Choice(list(DIALECTS)),
              help="The gateway the phone is behind (a scenario's `dialect:` wins).")
@click.option("--seed/--no-seed", default=None,
              help="Seed demo data (default: the phone, in-process on the embedded store; "
                   "`run` seeds only when asked).")
@click.pass_context
def main(ctx, url, msisdn, code, dialect, seed):
    """A phone in the terminal: dial, read the screen, type, see the SMS that arrive."""
    ctx.obj = {"url": url, "seed": seed, "dialect": dialect}
    if ctx.invoked_subcommand:
        return
    client = _client(url, seed)
    client.dialect = dialect
    limit = int(os.environ.get("USSD_MAX_CHARS", 160))
    for m in client.outbox(msisdn):
        click.secho(f"SMS from {m['from']} ({m['sent_at']}): {m['text']}", fg="green")
    while True:
        seen = len(client.outbox(msisdn))
        session, text = uuid.uuid4().hex, ""
        click.secho(f"\n[{msisdn} dials {code} through {dialect}]", fg="cyan")
        while True:
            status, body = client.ussd(session, msisdn, text, code)
            for w in screen_warnings(body, limit):
                click.secho(w, fg="yellow")
            click.echo(f"+{'-' * 30}\n| " + body[4:].replace("\n", "\n| ") + f"\n+{'-' * 30}")
            if status != 200 or not body.startswith("CON "):
                break
            typed = click.prompt(">", default="", show_default=False)
            text = typed if text == "" else f"{text}*{typed}"
        for m in client.outbox(msisdn)[seen:]:
            click.secho(f"SMS from {m['from']}: {m['text']}", fg="green")
        action = click.prompt("[d]ial again, [s]ms, [q]uit", default="d")
        if action.startswith("q"):
            return
        if action.startswith("s"):
            client.sms(msisdn, click.prompt("SMS to 62168"))
            for m in client.outbox(msisdn)[seen:]:
                click.secho(f"SMS from {m['from']}: {m['text']}", fg="green")


def _embedded(client: Client) -> bool:
    """The app runs in this process on the embedded store (nobody else's data)."""
    return client.services is not None and not client.services.config.REDIS_URL


def _seed_demo(client: Client) -> None:
    from ussd_app import demo

    demo.seed(client.services)


def _client(url, seed) -> Client:
    client = Client(url)
    if not url and (seed or (seed is None and _embedded(client))):
        _seed_demo(client)
    return client


@main.command("run")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def run_files(ctx, files):
    """Play YAML scenarios; exit 1 with a diff on the first mismatch.

    On the embedded store each file starts from an empty one (plus the demo
    data with --seed), as pytest plays them; against REDIS_URL or --url the
    data is left as it is."""
    seed = bool(ctx.obj["seed"])
    client = Client(ctx.obj["url"], dialect=ctx.obj["dialect"])
    embedded = _embedded(client)
    if seed and not embedded and not ctx.obj["url"]:  # in-process on REDIS_URL: once
        _seed_demo(client)
    limit = int(os.environ.get("USSD_MAX_CHARS", 160))
    for f in files:
        if embedded:
            client.services.r.flushall()
            if seed:
                _seed_demo(client)
        scenario = yaml.safe_load(Path(f).read_text())
        try:
            steps = play(client, scenario, limit, warn=lambda w: click.secho(w, fg="yellow", err=True))
        except Mismatch as e:
            click.secho(f"FAIL {f} ({scenario.get('name', '')})\n  {e}", fg="red", err=True)
            sys.exit(1)
        click.secho(f"ok   {f} ({steps} steps)", fg="green")
