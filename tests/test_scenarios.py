"""The project's own simulator scenarios, played against a real Redis."""
from pathlib import Path

import pytest
import yaml

from ussd_app import sim
from ussd_app.gateways import DIALECTS

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("dialect", list(DIALECTS))
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(app, path, dialect):
    """Every scenario passes behind every gateway."""
    warnings = []
    scenario = {**yaml.safe_load(path.read_text()), "dialect": dialect}
    steps = sim.play(sim.Client(app=app), scenario, warn=warnings.append)
    assert steps > 0
    assert warnings == []


def test_a_scenario_names_its_dialect(app, tmp_path):
    """`dialect:` in a file: its hops go to that gateway's route, in its format."""
    scenario = {"dialect": "truroute", "steps": [{"dial": "081234567890", "expect": "Poin Plus"},
                                                 {"input": 4, "expect": "1 Tentang program"}]}
    client = sim.Client(app=app)
    seen = []
    call = client._call
    client._call = lambda method, path, **kw: seen.append((path, kw["headers"].get("Content-Type"))) \
        or call(method, path, **kw)
    assert sim.play(client, scenario) == 2
    assert [s for s in seen if s[0].startswith("/ussd")] == [("/ussd/truroute", "application/xml")] * 2


def test_a_mismatch_is_reported_with_a_diff(app):
    scenario = {"steps": [{"dial": "081234567890", "expect": "Selamat datang"}]}
    with pytest.raises(sim.Mismatch) as e:
        sim.play(sim.Client(app=app), scenario)
    assert "expected to contain\n    'Selamat datang'\n  got\n    'CON Poin Plus" in str(e.value)


def test_run_command_exits_non_zero_on_mismatch(tmp_path, monkeypatch):
    from click.testing import CliRunner
    monkeypatch.delenv("REDIS_URL", raising=False)
    f = tmp_path / "bad.yaml"
    f.write_text("steps:\n  - dial: '081234567890'\n    end: true\n")
    result = CliRunner().invoke(sim.main, ["run", str(f)])
    assert result.exit_code == 1
    assert "expected END, got" in result.output


def test_over_long_reply_is_warned():
    assert sim.screen_warnings("CON " + "a" * 170, 160) == ["170 characters, over the limit of 160"]
    assert sim.screen_warnings("oops", 160) == ["reply starts with neither CON nor END"]


def test_run_command_plays_every_project_scenario_on_the_embedded_store(monkeypatch):
    """As README tells QA to (`ussd-sim run tests/scenarios/*.yaml`): each file
    starts from an empty store, whatever the files before it left."""
    from click.testing import CliRunner
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = CliRunner().invoke(sim.main, ["run", *map(str, SCENARIOS), *map(str, SCENARIOS)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok   ") == 2 * len(SCENARIOS)


def test_run_command_plays_the_scenarios_as_another_gateway(monkeypatch):
    from click.testing import CliRunner
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = CliRunner().invoke(sim.main, ["--dialect", "nalo", "run", *map(str, SCENARIOS)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok   ") == len(SCENARIOS)
    bad = CliRunner().invoke(sim.main, ["--dialect", "smoke", "run", *map(str, SCENARIOS)])
    assert bad.exit_code == 2 and "Invalid value for '--dialect'" in bad.output
