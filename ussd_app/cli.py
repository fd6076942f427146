"""``ussd-app``: run the service, lint the menus, seed demo data, run jobs."""
from __future__ import annotations

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


@main.command("seed-demo")
def seed_demo():
    """Load demo subscribers with points (idempotent)."""
    from ussd_app import demo as demo_data

    for msisdn in demo_data.seed(_services()):
        click.echo(f"seeded {msisdn}")


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--every", default=30, show_default=True, help="Seconds between housekeeping rounds.")
def worker(burst, every):
    """Run background jobs (remote SMS, fulfilment) and, every few seconds, send
    offer SMS whose window has opened and settle redemptions a crash left pending."""
    from ussd_app import jobs

    services = _services()
    if not burst:
        jobs.housekeeping(services, every)
    jobs.work(services, burst=burst)


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
    services = create_app({"REDIS_URL": None}).extensions["ussd"]
    report = walk.check(services, demo.seed, demo.WALKED)
    for f in report.problems:
        click.echo(f, err=True)
    click.echo(f"{report.screens} screens walked, {len(report.problems)} problems")
    sys.exit(1 if report.problems else 0)


@main.group()
def catalog():
    """The reward catalog."""


@catalog.command("load")
@click.argument("file", type=click.File("r"))
def catalog_load(file):
    """Load rewards from a YAML file (rewards: {CODE: {...}}); all or nothing."""
    from ussd_app.loyalty import rewards
    from ussd_app.core.errors import BadRequest

    try:
        loaded = rewards.load_file(_services().r, file.read())
    except BadRequest as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"loaded {len(loaded)} rewards: " + ", ".join(w.code for w in loaded))


@main.group()
def points():
    """Points jobs: expiry and expiry warnings (idempotent; run them from cron)."""


@points.command("expire")
@click.option("--batch", default=1000, show_default=True)
def points_expire(batch):
    """Write off every bucket past its date, with an 'expire' ledger entry."""
    from ussd_app.loyalty import expiry

    total, subs = expiry.expire_all(_services(), batch)
    click.echo(f"expired {total} points of {subs} subscribers")


@points.command("notify-expiring")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 366))
@click.option("--batch", default=1000, show_default=True)
def points_notify(days, batch):
    """SMS every subscriber about each bucket expiring within DAYS (once per bucket)."""
    from ussd_app.loyalty import expiry

    sent = expiry.notify_all(_services(), days, batch)
    click.echo(f"sent {sent} expiry warnings")


@main.group()
def redemptions():
    """Redemption jobs."""


@redemptions.command("recover")
@click.option("--older-than", default=300, show_default=True, help="Seconds a redemption may stay pending.")
def redemptions_recover(older_than):
    """Settle redemptions a crash left pending (re-fulfil, or release held stock)."""
    from ussd_app.loyalty import redemptions as r

    counts = r.recover(_services(), older_than)
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))


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

    services = _services()
    campaign = campaigns.get(services.r, campaign_id)
    if campaign is None:
        raise click.ClickException(f"no campaign {campaign_id}")
    try:
        result = sending.send(services, campaign, batch=batch, progress=True)
    except Conflict as e:
        raise click.ClickException(str(e)) from None
    click.echo(result)


@offers.command("flush")
def offers_flush():
    """Send the offer SMS held for the sending window, where it is open now."""
    from ussd_app.offers import sending

    click.echo(f"sent {sending.flush(_services())} scheduled SMS")


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
        counts = retention.run(_services(), batch)
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
