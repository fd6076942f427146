"""``ussd-app``: run the service, lint the menus, seed demo data, run jobs."""
from __future__ import annotations

import json
import logging
import os
import sys

import click

from ussd_app import create_app
from ussd_app.core import logs
from ussd_app.core.errors import ConfigError


def _app():
    try:
        return create_app()
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


def _services():
    return _app().extensions["ussd"]


def _stored_services():
    """The services of a command that acts on data: never a throwaway store."""
    if not os.environ.get("REDIS_URL"):
        command = click.get_current_context().command_path.removeprefix("ussd-app ").removeprefix("main ")
        raise click.ClickException(
            f"REDIS_URL is unset: '{command}' would act on a throwaway in-process store, gone "
            "when it exits. Set REDIS_URL to the service's Redis (`ussd-app run` without it "
            "seeds its own embedded store).")
    return _services()


@click.group()
def main():
    """USSD and SMS self-service for the loyalty programme and partner offers."""
    logs.configure()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=lambda: int(os.environ.get("PORT", 8000)), show_default="$PORT or 8000")
@click.option("--demo/--no-demo", default=None, help="Seed demo data (default: when REDIS_URL is unset).")
def run(host, port, demo):
    """Serve in one process (the embedded default); production uses the Procfile."""
    app = _app()
    services = app.extensions["ussd"]
    if demo or (demo is None and not services.config.REDIS_URL):
        from ussd_app import demo as demo_data

        click.echo("demo subscribers: " + ", ".join(demo_data.seed(services)))
    click.echo(f"USSD endpoint: POST http://{host}:{port}/ussd  (dial {services.config.USSD_SERVICE_CODE})")
    app.run(host=host, port=port, threaded=True)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("server", nargs=-1, required=True, type=click.UNPROCESSED)
def serve(server):
    """Start the web server SERVER (the Procfile's: ``ussd-app serve granian ...``)
    as every process starts: the configuration checked first (production refuses
    to start with what it would refuse to run), this deployment's metrics
    directory emptied of earlier runs; then SERVER runs in this process's place,
    before it forks its workers."""
    import shutil

    from ussd_app.core import metrics

    _app()  # a refusal is one line here, not a worker that fails, is respawned and fails again
    if metrics.ENABLED:
        metrics.start_deployment()
    # found on PATH, or beside this interpreter (an unactivated venv)
    exe = shutil.which(server[0]) or shutil.which(server[0], path=os.path.dirname(sys.executable)) or server[0]
    try:
        os.execv(exe, list(server))
    except OSError as e:
        raise click.ClickException(f"cannot run {server[0]}: {e.strerror}") from None


@main.command("seed-demo")
def seed_demo():
    """Load the demo catalog, subscribers with points, and the demo campaign's
    offers (idempotent); say what is there."""
    from ussd_app import demo as demo_data

    services = _stored_services()
    for line in seeded(services, demo_data.seed(services)):
        click.echo(line)


def seeded(services, msisdns: list[str]) -> list[str]:
    """What the demo data holds now: its rewards, subscribers and campaign."""
    from ussd_app import demo as demo_data
    from ussd_app.core import formats
    from ussd_app.loyalty import points, rewards
    from ussd_app.offers import campaigns, consents

    r, now = services.r, services.clock()
    catalog = rewards.active(r, now, services.kept)
    lines = [f"catalog: {len(catalog)} rewards on offer ({', '.join(w.code for w in catalog)})"]
    camp = campaigns.get(r, demo_data.campaign(now)["id"])
    for msisdn in msisdns:
        view = points.view(r, msisdn, now)
        held = consents.holdings(r, msisdn, services.kept)
        about = [f"{formats.points(view.balance, 'en')} points"]
        about += [f"offer {cid} ({o.get('status')})" for cid, o in sorted(held.offers.items())]
        if held.opted_out:
            about.append("offers stopped")
        if view.lang:
            about.append(f"language {view.lang}")
        lines.append(f"subscriber {msisdn}: " + ", ".join(about))
    if camp is not None:
        lines.append(f"campaign {camp.id}: {camp.product} from {camp.institution['name']}, "
                     f"code {camp.code}, until {formats.iso(camp.valid_until)}")
    return lines


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--every", default=30, show_default=True, type=click.IntRange(1, 3600),
              help="Seconds between housekeeping rounds.")
@click.option("--queues", default="ussd,ussd-partners", show_default=True,
              type=click.Choice(["ussd,ussd-partners", "ussd", "ussd-partners"]),
              help="Queues to work, in order: ussd (subscribers' SMS, offer SMS, housekeeping), "
                   "ussd-partners (lead push, fulfilment: calls to parties outside).")
def worker(burst, every, queues):
    """Run background jobs (remote SMS, fulfilment, lead push, offer SMS held
    for the sending window) and rq's scheduler, which also runs housekeeping
    every 30 s (--every): settling redemptions a crash left pending, and more.
    The Procfile runs one worker per queue, so a slow partner never holds
    the worker sending subscribers' SMS."""
    from ussd_app import jobs

    services = _stored_services()
    jobs.start(services, every)
    jobs.work(services, burst=burst, every=every, queues=tuple(queues.split(",")))


@main.command()
def smpp():
    """Hold the one bind_transceiver to the operator's SMSC (SMS_PROVIDER=smpp,
    SMPP_URL): submit the SMS the service queued, take MOs and delivery
    receipts. A second one started by mistake waits for the first's lock."""
    from ussd_app.sms import smpp as binder

    services = _stored_services()
    if services.config.SMS_PROVIDER != "smpp":
        # the Procfile runs it everywhere: without an SMSC it waits for its stop, not crashing
        binder.idle(lambda: click.echo(f"SMS_PROVIDER is {services.config.SMS_PROVIDER!r}, not smpp: "
                                       "nothing to bind; idle until stopped", err=True))
        return
    binder.serve(services)


@main.group()
def menus():
    """The menu graph."""


@menus.command("check")
def menus_check():
    """Lint the graph: unreachable screens, dead ends, screens over the limit.

    Walks every screen of every demo subscriber in both languages, on an
    embedded Redis laid anew with the demo data before each path.
    """
    from ussd_app import demo
    from ussd_app.ussd import walk

    os.environ.pop("REDIS_URL", None)  # the walk acts: never on real data
    # The walk's own app logs what any app logs (settings unset, the jobs it
    # runs): a lint prints its findings, not those; errors still show.
    logging.disable(logging.WARNING)
    try:  # a lint of texts and screens: the same wherever it runs, production included
        services = create_app({"REDIS_URL": None, "USSD_APP_ENV": "development"}).extensions["ussd"]
        report = walk.check(services, demo.seed, demo.WALKED)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    finally:
        logging.disable(logging.NOTSET)
    for f in report.problems:
        click.echo(f, err=True)
    click.echo(f"{report.screens} screens walked, {len(report.problems)} problems")
    sys.exit(1 if report.problems else 0)


@main.group()
def catalog():
    """The reward catalog."""


def _load_catalog(file) -> None:
    from ussd_app.loyalty import rewards
    from ussd_app.core.errors import BadRequest

    services = _stored_services()
    try:
        loaded = rewards.load_file(services.r, services.vault, file.read())
    except BadRequest as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"loaded {len(loaded)} rewards: " + ", ".join(
        w.code + (f" ({w.available} codes available)" if w.pooled else "") for w in loaded))


@catalog.command("load")
@click.argument("file", type=click.File("r"))
def catalog_load(file):
    """Load rewards from a YAML file (rewards: {CODE: {...}}); all or nothing."""
    _load_catalog(file)


@main.group("rewards")
def rewards_group():
    """Rewards and their voucher pools."""


@rewards_group.command("load")
@click.argument("file", type=click.File("r"))
def rewards_load(file):
    """Load rewards from a YAML file (as catalog load); a reward's `vouchers`
    list adds to its pool."""
    _load_catalog(file)


@rewards_group.command("vouchers")
@click.argument("code")
@click.argument("file", type=click.File("r"))
def rewards_vouchers(code, file):
    """Add the voucher codes in FILE (one a line) to reward CODE's pool."""
    from ussd_app.loyalty import rewards
    from ussd_app.core.errors import BadRequest

    services = _stored_services()
    reward = rewards.get(services.r, code)
    if reward is None or reward.fulfilment != "voucher":
        raise click.ClickException(f"no voucher reward {code.upper()}")
    codes = [line.strip() for line in file if line.strip()]
    try:
        for i in range(0, len(codes), rewards.MAX_VOUCHERS):
            got = rewards.add_vouchers(services.r, services.vault, reward.code,
                                       rewards.voucher_codes(codes[i:i + rewards.MAX_VOUCHERS], "line"))
            click.echo(", ".join(f"{k}: {v}" for k, v in got.items()))
    except BadRequest as e:
        raise click.ClickException(str(e)) from None


@main.group()
def points():
    """Points jobs: expiry and expiry warnings (idempotent; run them from cron)."""


@points.command("expire")
@click.option("--batch", default=1000, show_default=True)
def points_expire(batch):
    """Write off every bucket past its date, with an 'expire' ledger entry."""
    from ussd_app.loyalty import expiry

    total, subs = expiry.expire_all(_stored_services(), batch)
    click.echo(f"expired {total} points of {subs} subscribers")


@points.command("notify-expiring")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 366))
@click.option("--batch", default=1000, show_default=True)
def points_notify(days, batch):
    """SMS every subscriber about each bucket expiring within DAYS (once per bucket)."""
    from ussd_app.loyalty import expiry

    sent = expiry.notify_all(_stored_services(), days, batch)
    click.echo(f"sent {sent} expiry warnings")


@main.group()
def redemptions():
    """Redemption jobs."""


@redemptions.command("recover")
@click.option("--older-than", default=300, show_default=True, help="Seconds a redemption may stay pending.")
def redemptions_recover(older_than):
    """Settle redemptions a crash left pending (re-fulfil, or release held stock)."""
    from ussd_app.loyalty import redemptions as r

    counts = r.recover(_stored_services(), older_than)
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))
    if counts["failed"]:
        raise click.ClickException(f"{counts['failed']} redemptions could not be recovered "
                                   "(the log says why); the next run tries them again")


@redemptions.command("review")
@click.option("--limit", default=1000, show_default=True)
def redemptions_review(limit):
    """List redemptions whose provider outcome stayed unknown (needs_review)."""
    from ussd_app.core import formats
    from ussd_app.core.msisdn import mask
    from ussd_app.loyalty import redemptions as r

    items, _ = r.listing(_stored_services().r, "needs_review", 0, limit)
    for rec in items:
        since = formats.iso(rec.get("review_at") or rec["at"])
        click.echo(f"{rec['id']}  {mask(rec['msisdn'])}  {rec['quantity']}x {rec['reward']}  "
                   f"{rec['points']} points  {rec['channel']}  since {since}  {rec.get('reason', '')}")
    click.echo(f"{len(items)} redemptions need review")


# A redemption id is base64url: it may start with '-' (or '--'), which click
# would take for an option; unknown options are passed on as the RID.
@redemptions.command("settle", context_settings={"ignore_unknown_options": True})
@click.argument("rid")
@click.option("--done", "outcome", flag_value="done", help="The provider delivered it: tell the subscriber.")
@click.option("--refund", "outcome", flag_value="refund", help="It was not delivered: points and stock back.")
@click.option("--reference", default=None, help="The provider's confirmation or the reason.")
def redemptions_settle(rid, outcome, reference):
    """Settle a needs_review redemption RID, once."""
    from ussd_app.core.errors import Conflict
    from ussd_app.loyalty import redemptions as r

    if outcome is None:
        raise click.UsageError("say --done or --refund")
    try:
        rec = r.settle_review(_stored_services(), rid, outcome, reference)
    except Conflict as e:
        raise click.ClickException(str(e)) from None
    if rec is None:
        raise click.ClickException(f"no redemption {rid} awaits review")
    click.echo(f"{rid}: {rec['status']}")


@main.group()
def offers():
    """Financial offers."""


@offers.command("send")
@click.argument("campaign_id")
@click.option("--batch", default=1000, show_default=True)
def offers_send(campaign_id, batch):
    """Offer CAMPAIGN_ID to every eligible subscriber (each once)."""
    from ussd_app.offers import campaigns, sending
    from ussd_app.core.errors import Conflict

    services = _stored_services()
    campaign = campaigns.get(services.r, campaign_id)
    if campaign is None:
        raise click.ClickException(f"no campaign {campaign_id}")
    try:
        result = sending.send(services, campaign, batch=batch, progress=True)
    except Conflict as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps(result))


@main.group()
def partners():
    """Partner institutions' API keys (each reads only its own leads)."""

@main.group()
def report():
    """Reports."""


@report.command("funnel")
@click.option("--from", "start", help="ISO 8601 time (default: today's start, WIB).")
@click.option("--to", "end", help="ISO 8601 time (default: now).")
@click.option("--dialect", help="Only sessions through this gateway dialect.")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON instead of a table.")
def report_funnel(start, end, dialect, as_json):
    """Per screen: sessions that entered it, how they left it, median seconds on it
    (whole WIB days; silently expired sessions are swept in first)."""
    import json

    from ussd_app.core.errors import BadRequest
    from ussd_app.web.analytics import funnel_report, window

    services = _stored_services()
    args = {k: v for k, v in (("from", start), ("to", end), ("dialect", dialect)) if v}
    try:
        data = funnel_report(services, *window(args, services.clock()))
    except BadRequest as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{data['days'][0]} .. {data['days'][-1]} (WIB), dialect: {dialect or 'all'}; "
               f"{data['swept']} silently expired sessions swept now")
    columns = ("entered", "next", "completed", "timeout", "released", "error", "still_open")
    click.echo(f"{'screen':20}" + "".join(f"{c:>11}" for c in columns) + f"{'median s':>10}")
    for row in data["screens"]:
        median = "-" if row["median_seconds"] is None else str(row["median_seconds"])
        click.echo(f"{row['screen']:20}" + "".join(f"{row[c]:>11}" for c in columns) + f"{median:>10}")
    if not data["screens"]:
        click.echo("(no sessions)")



@partners.command("add")
@click.argument("institution")
def partners_add(institution):
    """Make INSTITUTION's key and print it (shown this once; stored hashed)."""
    from ussd_app.core.errors import BadRequest, Conflict
    from ussd_app.offers import partners as keys

    services = _stored_services()
    try:
        click.echo(keys.add(services.r, institution, services.clock()))
    except (BadRequest, Conflict) as e:
        raise click.ClickException(str(e)) from None


@partners.command("list")
def partners_list():
    """Institutions with a key, and when it was made."""
    from ussd_app.core.formats import iso
    from ussd_app.offers import partners as keys

    for p in keys.every(_stored_services().r):
        click.echo(f"{p['institution']}\t{iso(p['created_at'])}")


@partners.command("revoke")
@click.argument("institution")
def partners_revoke(institution):
    """Revoke INSTITUTION's key at once."""
    from ussd_app.offers import partners as keys

    if not keys.revoke(_stored_services().r, institution):
        raise click.ClickException(f"{institution} has no key")
    click.echo(f"revoked {institution}")


@main.group("archive")
def archive_group():
    """Retention: ledger entries and consent records older than RETENTION_DAYS."""


@archive_group.command("run")
@click.option("--batch", default=1000, show_default=True)
def archive_run(batch):
    """Move entries older than RETENTION_DAYS to JSON lines in ARCHIVE_DIR (each once)."""
    from ussd_app import retention
    from ussd_app.core.errors import Conflict

    try:
        counts = retention.run(_stored_services(), batch)
    except Conflict as e:
        raise click.ClickException(str(e)) from None
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))


@main.group()
def pii():
    """Personal-data encryption."""


@pii.command("new-key")
def pii_new_key():
    """Print a new PII_KEY (Fernet: url-safe base64 of 32 random bytes)."""
    from ussd_app.core.pii import new_key

    click.echo(new_key())
