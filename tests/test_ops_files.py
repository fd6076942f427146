"""The dashboard and alert rules in ops/ name only series the service exports."""
import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from ussd_app.core import metrics

OPS = Path(__file__).parent.parent / "ops"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def exported() -> set[str]:
    names = set()
    for m in vars(metrics).values():
        if isinstance(m, metrics.CountedHistogram):
            names.add(m.name)
        elif isinstance(m, MetricWrapperBase):  # prometheus_client's Counter and kin
            names |= {family.name for family in m.describe()}
    return names | {"ussd_jobs_queued", "ussd_jobs_scheduled", "ussd_jobs_started", "ussd_jobs_failed",
                    "ussd_smpp_bound"}


def named(expr: str) -> set[str]:
    found = set()
    for name in re.findall(r"\bussd_[a-z_]+", expr):
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        found.add(name)
    return found


def test_the_dashboard_shows_only_exported_series():
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs and set().union(*map(named, exprs)) <= exported()
    assert set().union(*map(named, exprs)) == exported()  # and every one of them


def test_each_golden_signal_has_alerts_on_exported_series():
    rules = yaml.safe_load((OPS / "alerts.yml").read_text())
    groups = {g["name"]: g["rules"] for g in rules["groups"]}
    assert set(groups) == {f"ussd-app-{s}" for s in ("latency", "traffic", "errors", "saturation")}
    for group in groups.values():
        assert group and all(named(rule["expr"]) <= exported() for rule in group)
