"""What a newcomer reads: README.md stays short and stands alone (every setting
listed), docs/ holds the rest, and no link, docstring or comment sends the
reader to a file the project does not ship."""
import ast
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ussd_app.core import config as configuration

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# where the project's own code, tests, tools and their comments live
SOURCES = [p for d in ("ussd_app", "menus", "tests", "bench", "ops", ".ci") for p in (ROOT / d).rglob("*")
           if p.is_file() and p.suffix in (".py", ".yml", ".yaml", ".js", ".html", "")
           and "node_modules" not in p.parts and "__pycache__" not in p.parts]


def test_readme_is_at_most_400_lines():
    assert len(README.read_text().splitlines()) <= 400


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_points_to_a_file_that_exists(page):
    broken = []
    for link in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", link):
            continue  # http(s), mailto: not ours to check
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(link)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(link)
    assert broken == []


def test_docs_are_each_reachable_from_readme():
    linked = {(README.parent / link.partition("#")[0]).resolve()
              for link in LINK.findall(README.read_text()) if not re.match(r"[a-z]+:", link)}
    assert [p.name for p in DOCS if p.resolve() not in linked] == []


def _settings() -> set[str]:
    """Config's fields, and every name a module reads from os.environ itself."""
    names = {f.name for f in configuration.fields(configuration.Config)}
    for path in (ROOT / "ussd_app").rglob("*.py"):
        tree = ast.parse(path.read_text())
        constants = {t.id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            key = None
            if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                key = node.slice
            elif (isinstance(node, ast.Call) and node.args
                  and ast.unparse(node.func) in ("os.environ.get", "os.getenv", "os.environ.setdefault")):
                key = node.args[0]
            if isinstance(key, ast.Constant):
                names.add(key.value)
            elif isinstance(key, ast.Name) and key.id in constants:
                names.add(constants[key.id])
    return names


def test_readme_lists_every_setting_with_its_default():
    names = _settings()
    assert {"SMS_PROVIDER", "PORT", "METRICS", "LOG_LEVEL", "PROMETHEUS_MULTIPROC_DIR"} <= names
    rows = {m.group(1) for m in re.finditer(r"^\| `([A-Z0-9_]+)` \| [^|]+ \| [^|]+ \|$",
                                            README.read_text(), flags=re.M)}
    assert sorted(names - rows) == []


def test_prometheus_multiproc_dir_is_described_once_and_truly(tmp_path):
    """The default README states is the one metrics.py picks; the default is stated once."""
    text = "\n".join(p.read_text() for p in PAGES)
    assert text.count("ussd-app-metrics-") == 1
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "METRICS")}
    env["TMPDIR"] = str(tmp_path)  # where tempfile.gettempdir() points: the default lands here
    chosen = subprocess.run(
        [sys.executable, "-c", "import os; from ussd_app.core import metrics; "
         "print(os.environ['PROMETHEUS_MULTIPROC_DIR'])"],
        env=env, capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    stated = re.search(r"`PROMETHEUS_MULTIPROC_DIR` \| `([^`]+)`", README.read_text()).group(1)
    # <id>: a hash of what one deployment's processes share (the working directory, REDIS_URL, JOBS_REDIS_URL)
    ident = "\0".join((str(ROOT), env.get("REDIS_URL") or "", env.get("JOBS_REDIS_URL") or ""))
    deployment = hashlib.sha256(ident.encode()).hexdigest()[:16]
    assert stated.replace("<tmp>", str(tmp_path)).replace("<uid>", str(os.getuid())).replace(
        "<id>", deployment) == chosen


def test_docstrings_and_comments_name_only_files_that_exist():
    """A ``*.md`` named anywhere in the code exists in the project; nothing cites
    documents it does not ship (a brief, a style guide kept elsewhere)."""
    wrong = []
    for path in SOURCES + PAGES:
        text = path.read_text(errors="replace")
        for name in re.findall(r"(?<![\w/.-])((?:\.\./)*[\w./-]*\w\.md)\b", text):
            if not any((where / name).exists() for where in (ROOT, ROOT / "docs", path.parent)):
                wrong.append(f"{path.relative_to(ROOT)}: {name}")
        for word in ("BRIEF", "../shared", "foundation issue"):
            if word in text and path.name not in ("test_docs.py", "test_newcomers.py"):  # they look for it
                wrong.append(f"{path.relative_to(ROOT)}: {word}")
    assert wrong == []


def test_the_api_page_names_every_route(app):
    page = (ROOT / "docs" / "api.md").read_text()
    named = {re.sub(r"<[^>]+>", "<>", m) for m in re.findall(r"(/(?:api|healthz|readyz|metrics)[\w/<>-]*)", page)}
    served = {re.sub(r"<[^>]+>", "<>", r.rule) for r in app.url_map.iter_rules()
              if r.rule.startswith(("/api", "/healthz", "/readyz", "/metrics"))}
    assert sorted(served - named) == []
