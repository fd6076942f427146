"""Journey 3: financial offers (offer -> disclosure -> NIK -> consent), decline, stop."""
from ussd_app.offers import consents, nik
from ussd_app.core import formats
from ussd_app.ussd.screens import Ctx, InputError, Item, Option, Screen

NIK_TRIES = 3
MAX_LISTED = 8  # keeps item numbers clear of the stop option (9)
TAKES_CONSENT = ("open", "withdrawn")  # a withdrawn consent may be given afresh


def _holdings(ctx: Ctx) -> consents.Holdings:
    if "offers" not in ctx.cache:
        ctx.cache["offers"] = consents.holdings(ctx.r, ctx.msisdn, ctx.services.kept, ctx.ahead("holdings"))
    return ctx.cache["offers"]


def _held(ctx: Ctx) -> tuple[dict, dict]:
    held = _holdings(ctx)
    return held.offers, held.campaigns


def _opted_out(ctx: Ctx) -> bool:
    return _holdings(ctx).opted_out


def _listed(ctx: Ctx) -> list[tuple[str, dict]]:
    offers, camps = _held(ctx)
    shown = [(cid, o) for cid, o in offers.items() if cid in camps and (
        o["status"] in ("consented", "withdrawn") or (o["status"] == "open" and camps[cid].open(ctx.now)))]
    return sorted(shown, key=lambda x: x[1]["offered_at"])[:MAX_LISTED]


def list_body(ctx: Ctx) -> str:
    if _opted_out(ctx):
        return ctx.t("offers.stopped")
    return ctx.t("offers.title") if _listed(ctx) else ctx.t("offers.none")


def list_items(ctx: Ctx) -> list[Item]:
    if _opted_out(ctx):
        return []
    _, camps = _held(ctx)
    key = {"open": "offers.item_open", "consented": "offers.item_consented",
           "withdrawn": "offers.item_withdrawn"}
    return [Item(cid, ctx.t(key[o["status"]], product=camps[cid].product,
                            institution=camps[cid].institution["name"])) for cid, o in _listed(ctx)]


def chosen(ctx: Ctx):
    offers, camps = _held(ctx)
    cid = ctx.data.get("offers")
    return offers.get(cid), camps.get(cid)


def _is_open(ctx: Ctx) -> bool:
    offer, campaign = chosen(ctx)
    return bool(offer and campaign and offer["status"] in TAKES_CONSENT and campaign.open(ctx.now)
                and not _opted_out(ctx))


def offer_body(ctx: Ctx) -> str:
    offer, c = chosen(ctx)
    values = dict(institution=c.institution["name"], product=c.product, code=c.code)
    if offer["status"] == "consented":  # where the consent stands: taken by the partner yet or not
        record = consents.consent_record(ctx.r, ctx.msisdn, offer["consent_id"]) or {}
        if record.get("withdrawn_at"):  # an offer stored before withdrawals marked it
            return ctx.t("offers.detail_withdrawn", date=formats.wib(record["withdrawn_at"]), **values)
        key = "offers.detail_received" if record.get("received_at") else "offers.detail_consented"
        return ctx.t(key, date=formats.wib(offer["consented_at"]), **values)
    if offer["status"] == "withdrawn":
        return ctx.t("offers.detail_withdrawn", date=formats.wib(offer["withdrawn_at"]), **values)
    if not _is_open(ctx):
        return ctx.t("offers.detail_closed", **values)
    terms = c.text("terms", ctx.lang).rstrip(".")  # what the offer SMS promises, in short
    return ctx.t("offers.detail_terms", terms=terms, **values) if terms else ctx.t("offers.detail", **values)


def disclosure_body(ctx: Ctx) -> str:
    """Before any consent: which data goes to whom, that approval is not
    guaranteed, who answers for the product (the campaign's own consent text
    travels in its offer SMS)."""
    return ctx.t("offers.disclosure", institution=chosen(ctx)[1].institution["name"])


def start_nik(ctx: Ctx) -> None:
    ctx.data["nik_tries"] = 0
    ctx.data.pop("offer_nik", None)


ATTEMPT = "nik_attempt"  # ctx.cache: the attempt as counted, with what the consent acts on


def parse_nik(ctx: Ctx, text: str):
    """The NIK, encrypted at once; None after the last wrong try (the session ends).
    The attempt is counted, and the offers and the credit score the consent
    records are read with the count (one round trip: :func:`give_consent`'s)."""
    tried = ctx.cache[ATTEMPT] = consents.attempt(ctx.r, ctx.msisdn, ctx.config.CONSENT_ATTEMPTS_PER_HOUR,
                                                  ctx.services.kept)
    if tried.over:
        return None
    why = nik.problem(text)
    if why is None:
        return ctx.services.vault.encrypt(text)
    ctx.data["nik_tries"] = ctx.data.get("nik_tries", 0) + 1
    left = NIK_TRIES - ctx.data["nik_tries"]
    if left <= 0:
        return None
    raise InputError("offers.nik_bad", reason=ctx.t(f"offers.nik_reason.{why}"), left=left)


def give_consent(ctx: Ctx) -> None:
    # The offers and the credit score the consent records: read afresh in this
    # answer, with its attempt's count (parse_nik).
    tried = ctx.cache[ATTEMPT]
    ctx.cache["offers"] = tried.holdings
    offer, campaign = chosen(ctx)
    nik_enc = ctx.data.pop("offer_nik", None)
    if nik_enc is None:
        ctx.data["consent"] = "failed"
        return
    proof = consents.Proof("ussd", ctx.session.id, disclosure_body(ctx), nik_enc, ctx.lang)
    ctx.data["consent"] = consents.give(ctx.services, ctx.msisdn, campaign, nik_enc, proof, offer,
                                        tried.credit_score)


def consent_body(ctx: Ctx) -> str:
    status = ctx.data.get("consent")
    inst = chosen(ctx)[1].institution["name"]
    if status == "failed":
        return ctx.t("offers.nik_failed")
    if status in ("ok", "already"):
        return ctx.t("offers.consented", institution=inst)
    return ctx.t("offers.refused")


def decline(ctx: Ctx) -> None:
    consents.decline(ctx.r, ctx.msisdn, chosen(ctx)[1], "ussd", ctx.session.id, ctx.now)


def stop(ctx: Ctx) -> None:
    consents.opt_out(ctx.services, ctx.msisdn, "ussd", ctx.session.id, None, ctx.lang)


def restart(ctx: Ctx) -> None:
    consents.opt_in(ctx.r, ctx.msisdn, "ussd", ctx.session.id, ctx.now)


# Each consequence (consent, decline, opt-out, opt-in) is the act of the
# answer on the screen that says what it does; the screens after them only
# show the outcome.
SCREENS = [
    Screen("offers", body=list_body, items=list_items, item_to="offer", resume=True, options=(
        Option("9", "offers.stop", "offers_stop", when=lambda ctx: not _opted_out(ctx)),
        Option("1", "offers.restart", "offers_restart", when=_opted_out, act=restart),
    )),
    Screen("offer", body=offer_body, resume=True, options=(
        Option("1", "offers.next", "offer_disclosure", when=_is_open),
        Option("2", "offers.decline", "offer_declined", when=_is_open, act=decline),
    )),
    Screen("offer_disclosure", body=disclosure_body, resume=True, options=(
        Option("1", "offers.agree", "offer_nik", when=_is_open),
        Option("2", "offers.decline", "offer_declined", when=_is_open, act=decline),
    )),
    Screen("offer_nik", body="offers.nik_prompt", prepare=start_nik, parse=parse_nik,
           parse_to="offer_consent", parse_act=give_consent, resume=True,
           examples=("3171014506900001", "123", "9971014506900001")),
    Screen("offer_consent", body=consent_body, end=True),
    Screen("offer_declined", body=lambda ctx: ctx.t("offers.declined",
                                                    institution=chosen(ctx)[1].institution["name"]),
           end=True),
    Screen("offers_stop", body="offers.stop_confirm", resume=True,
           options=(Option("1", "offers.stop_yes", "offers_stopped", act=stop),)),
    Screen("offers_stopped", body="offers.stopped_done", end=True),
    Screen("offers_restart", body="offers.restarted"),
]
