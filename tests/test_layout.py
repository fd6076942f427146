"""The rooms of the service and the direction of their imports (README: Layout).

Every package and top-level module of ``ussd_app``, and ``menus``, has a layer
below; a room imports only rooms of lower layers (never one beside it, never
one above), dynamic imports included (``importlib.import_module``,
``__import__``, ``importlib.resources.files``)::

    0  core
    1  ussd, loyalty, offers, retention
    2  sms, gateways, menus, demo
    3  scenarios, jobs, services
    4  web
    5  the composition root (ussd_app/__init__.py: create_app)
    6  cli, sim, wsgi
"""
import ast
import pathlib

import menus
import ussd_app

ROOT = pathlib.Path(ussd_app.__file__).parent
TOP = ROOT.parent
PACKAGES = (ROOT, pathlib.Path(menus.__file__).parent)

LAYERS = {
    "core": 0,
    "ussd": 1, "loyalty": 1, "offers": 1, "retention": 1,
    "sms": 2, "gateways": 2, "menus": 2, "demo": 2,
    "scenarios": 3, "jobs": 3, "services": 3,
    "web": 4,
    "": 5,  # the composition root
    "cli": 6, "sim": 6, "wsgi": 6, "rsgi": 6,
}
DYNAMIC = ("import_module", "__import__", "files")  # a module or package named by a string


def _module(path: pathlib.Path, package_dir: pathlib.Path) -> str:
    parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(module: str) -> bool:
    path = TOP / module.replace(".", "/")
    return path.with_suffix(".py").exists() or path.is_dir()


def _ours(module: str) -> bool:
    return module.split(".")[0] in ("ussd_app", "menus")


def imports() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (anywhere in its body, lazily or not)."""
    graph = {}
    for package_dir in PACKAGES:
        for path in package_dir.rglob("*.py"):
            name = _module(path, package_dir)
            package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
            found = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        kept = package.split(".")[:len(package.split(".")) - node.level + 1]
                        base = ".".join(kept + ([base] if base else []))
                    for alias in node.names:
                        full = f"{base}.{alias.name}"
                        found.add(full if _exists(full) else base)
                elif isinstance(node, ast.Import):
                    found.update(a.name for a in node.names)
                elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                      and isinstance(node.args[0].value, str)
                      and getattr(node.func, "attr", getattr(node.func, "id", None)) in DYNAMIC):
                    target = node.args[0].value
                    # files("ussd_app") reads the root package's data/ (no code); any other
                    # package named by a string is reached as an import is
                    if not (target == "ussd_app" and getattr(node.func, "attr", "") == "files"):
                        found.add(target)
            graph[name] = {m for m in found if _ours(m) and m != name}
    return graph


def room(module: str) -> str:
    """``ussd_app.web.api`` -> ``web``; ``ussd_app.cli`` -> ``cli``; ``menus.help``
    -> ``menus``; ``ussd_app`` -> ``""`` (the composition root)."""
    parts = module.split(".")
    if parts[0] == "menus":
        return "menus"
    return parts[1] if len(parts) > 1 else ""


def test_every_room_has_a_layer():
    """A new package or top-level module fails here until it is given its place."""
    assert sorted({room(m) for m in imports()} - set(LAYERS)) == []
    assert sorted(set(LAYERS) - {room(m) for m in imports()}) == []


def test_every_import_points_down():
    wrong = {m: sorted(i for i in deps if room(i) != room(m) and LAYERS[room(i)] >= LAYERS[room(m)])
             for m, deps in imports().items()}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_core_imports_only_core():
    wrong = {m: sorted(i for i in deps if room(i) != "core")
             for m, deps in imports().items() if room(m) == "core"}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_the_ussd_machinery_knows_no_domain():
    wrong = {m: sorted(i for i in deps if room(i) not in ("core", "ussd"))
             for m, deps in imports().items() if room(m) == "ussd"}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_domains_import_only_core_and_themselves():
    for name in ("loyalty", "offers"):
        wrong = {m: sorted(i for i in deps if room(i) not in ("core", name))
                 for m, deps in imports().items() if room(m) == name}
        assert {m: d for m, d in wrong.items() if d} == {}, name


def test_the_check_sees_what_it_checks():
    """The graph holds menus, web and scenarios, and a string-named package
    (the root's texts come from ``menus`` by name)."""
    graph = imports()
    assert {"menus", "menus.help", "ussd_app.web.api", "ussd_app.scenarios.play"} <= set(graph)
    assert "menus" in graph["ussd_app"]
    assert "ussd_app.ussd.screens" in graph["menus.help"]


def test_no_import_cycle():
    graph = imports()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_core_shows_the_texts_the_root_hands_it():
    from ussd_app.core import texts

    try:
        texts.register(lambda lang: "main:\n  title: 'Poin Uji'\n" if lang == "id" else "{}")
        assert texts.t("id", "main.title") == texts.t("en", "main.title") == "Poin Uji"
    finally:
        texts.register(ussd_app.menu_texts)
    assert texts.t("id", "main.title") == "Poin Plus"


def test_the_root_registers_the_texts_before_anything_below_it_asks():
    """Importing core alone runs the composition root first (it is the package)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from ussd_app.core import texts; "
                          "print(texts.t('en', 'main.rewards'))"],
                         capture_output=True, text=True, check=True, cwd=TOP).stdout
    assert out.strip() == "Redeem reward"
