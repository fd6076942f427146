"""``GET /metrics``: who may scrape it, and that each series counts what it says."""
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ussd_app import demo
from ussd_app.core import keys

NIK = "3171014506900001"


def scrape(client, token=None) -> dict:
    """Every sample of a scrape: (name, sorted label pairs) -> value."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.get_data(as_text=True))
            for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class TestWhoMayScrape:
    @pytest.fixture
    def config(self, config):
        return {**config, "ADMIN_TOKEN": "admin-secret", "METRICS_TOKEN": "metrics-secret"}

    @pytest.mark.parametrize("token", ["metrics-secret", "admin-secret"])
    def test_either_token_scrapes(self, client, token):
        assert "ussd_jobs_queued" in {name for name, _ in scrape(client, token)}

    @pytest.mark.parametrize("header", [None, "Bearer wrong", "metrics-secret"])
    def test_anything_else_is_401_json(self, client, header):
        resp = client.get("/metrics", headers={"Authorization": header} if header else {})
        assert resp.status_code == 401 and "bearer" in resp.get_json()["error"]


@pytest.fixture
def seeded(services):
    demo.seed(services)
    services.r.delete(keys.outbox("+6281234567890"))


def test_hops_by_dialect_screen_and_outcome_with_their_latency(seeded, client, phone):
    before = scrape(client)
    phone.dial()
    phone.type(1)  # check points: the balance, with 0 back and 00 main menu
    after = scrape(client)
    hop = dict(name="ussd_hops_total", dialect="africastalking")
    assert value(after, **hop, screen="main", outcome="con") - value(before, **hop, screen="main",
                                                                      outcome="con") == 1
    assert value(after, **hop, screen="points", outcome="con") - value(before, **hop, screen="points",
                                                                        outcome="con") == 1
    count = dict(name="ussd_hop_seconds_count", dialect="africastalking")
    assert value(after, **count) - value(before, **count) == 2
    assert value(after, "ussd_hop_seconds_bucket", dialect="africastalking", le="+Inf") >= 2
    # each hop reads its session in one round trip and writes it in a second
    assert value(after, "ussd_redis_roundtrip_seconds_count") - value(
        before, "ussd_redis_roundtrip_seconds_count") == 4


def test_a_failed_hop_counts_as_an_error(client, phone, monkeypatch):
    from ussd_app.ussd import hop

    def broken(*args):
        raise RuntimeError("the engine broke")
    before = scrape(client)
    monkeypatch.setattr(hop, "hop", broken)
    assert phone.dial().startswith("Maaf, layanan sedang sibuk") and phone.end  # the polite error screen
    labels = dict(name="ussd_hops_total", dialect="africastalking", screen="-", outcome="error")
    assert value(scrape(client), **labels) - value(before, **labels) == 1


def test_redemptions_sms_and_jobs(seeded, client, phone):
    before = scrape(client)
    phone.dial(text="2*5*1*1*1")  # the coffee voucher, fulfilled at once (JOBS_SYNC)
    after = scrape(client)
    assert phone.end and len(phone.inbox()) == 1
    assert value(after, "ussd_redemptions_total", outcome="done") - value(
        before, "ussd_redemptions_total", outcome="done") == 1
    assert value(after, "ussd_sms_total", provider="console", result="sent") - value(
        before, "ussd_sms_total", provider="console", result="sent") == 1
    assert value(after, "ussd_jobs_total", func="fulfil", outcome="ok") - value(
        before, "ussd_jobs_total", func="fulfil", outcome="ok") == 1


def test_consent_events(seeded, client, phone):
    before = scrape(client)
    phone.sms(f"YA {NIK}")
    phone.sms("STOP")
    phone.sms("MULAI")
    after = scrape(client)
    changes = {event: value(after, "ussd_consent_events_total", event=event)
               - value(before, "ussd_consent_events_total", event=event)
               for event in ("consent", "decline", "optout", "withdrawal", "optin")}
    assert changes == {"consent": 1, "decline": 0, "optout": 1, "withdrawal": 1, "optin": 1}


class TestQueueDepth:
    @pytest.fixture
    def config(self, config):
        return {**config, "JOBS_SYNC": False}  # jobs wait for a worker, as in production

    def test_is_read_at_each_scrape(self, client, services):
        assert value(scrape(client), "ussd_jobs_queued") == 0
        services.jobs.enqueue("ussd_app.sms.outbound.deliver", [])
        services.jobs.enqueue("ussd_app.sms.outbound.deliver", [])
        assert value(scrape(client), "ussd_jobs_queued") == 2
        from ussd_app.core.queue import PARTNERS  # the partners queue's jobs count too
        services.jobs.enqueue("ussd_app.offers.push.deliver", "c", "m", "x", queue=PARTNERS)
        assert value(scrape(client), "ussd_jobs_queued") == 3


class TestUnderTheProcfile:
    """The Procfile's processes, for real: granian with its two web workers and
    ``ussd-app worker``, all counting into one directory; one scrape adds them up."""

    @pytest.fixture
    def config(self, config):
        return {**config, "JOBS_SYNC": False}

    def test_the_counts_of_every_process_add_up(self, services, processes, free_port, tmp_path):
        import json
        import re
        from concurrent.futures import ThreadPoolExecutor

        import requests
        from prometheus_client.mmap_dict import MmapedDict

        from procfile import command
        from waiting import wait_for

        demo.seed(services)
        env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PORT": str(free_port)}
        processes.start(*command("web", free_port), **env)
        processes.worker(**env)
        base = f"http://127.0.0.1:{free_port}"
        assert wait_for(lambda: _get(requests, base + "/healthz") == 200, 30)

        def session(i):  # dial, then 1: each hop on a new connection
            for text in ("", "1"):
                resp = requests.post(base + "/ussd", data={"sessionId": f"p{i}", "serviceCode": "*700#",
                                                           "phoneNumber": "081234567891", "text": text})
                assert resp.status_code == 200 and resp.text.startswith("CON ")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(session, range(40)))
        resp = requests.post(base + "/ussd", data={"sessionId": "redeem", "serviceCode": "*700#",
                                                   "phoneNumber": "081234567890", "text": "2*5*1*1*1"})
        assert "diproses" in resp.text  # fulfilled by the worker process

        def counts():
            text = requests.get(base + "/metrics").text
            total = lambda name, **labels: sum(  # noqa: E731
                float(v) for ls, v in re.findall(rf'^{name}\{{([^}}]*)\}} (\S+)$', text, re.M)
                if all(f'{k}="{w}"' in ls for k, w in labels.items()))
            return (total("ussd_hops_total"), total("ussd_hop_seconds_count"),
                    total("ussd_redemptions_total", outcome="done"),
                    total("ussd_jobs_total", func="fulfil", outcome="ok"))
        assert wait_for(lambda: counts() == (81, 81, 1, 1), 20), counts()
        hops_by_process = {}
        for f in tmp_path.glob("counter_*.db"):
            values = MmapedDict(str(f))
            try:
                hops_by_process[f.name] = sum(v for key, v, _ in values.read_all_values()
                                              if json.loads(key)[0] == "ussd_hops")
            finally:
                values.close()
        assert len([n for n in hops_by_process.values() if n]) == 2, hops_by_process  # both web workers
        assert sum(hops_by_process.values()) == 81


def _get(requests, url):
    try:
        return requests.get(url, timeout=2).status_code
    except requests.ConnectionError:
        return None


def test_a_forked_child_writes_its_own_counts_not_its_parents(client):
    """A server that forks its workers after loading the app: the child starts
    with its parent's unwritten counts in memory, which are the parent's to write."""
    import os
    import warnings

    from ussd_app.core import metrics

    key = dict(name="ussd_sms_total", provider="fork-test", result="sent")
    metrics.sms("fork-test", "sent", 5)  # not written yet: the flusher runs each second
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads (Python 3.12+)
        pid = os.fork()
    if pid == 0:  # the child
        metrics.sms("fork-test", "sent", 1)
        metrics._flusher.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    assert value(scrape(client), **key) == 6
