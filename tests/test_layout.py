"""The rooms of the package and the direction of their imports (README: Layout):
core <- ussd, loyalty, offers <- sms, gateways, menus <- web, cli, the composition root."""
import ast
import pathlib

import ussd_app

ROOT = pathlib.Path(ussd_app.__file__).parent


def _module(path: pathlib.Path) -> str:
    parts = ["ussd_app", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Module -> the ussd_app modules it imports (anywhere in its body, lazily or not)."""
    graph = {}
    for path in ROOT.rglob("*.py"):
        name = _module(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                    + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if (ROOT.parent / (full.replace(".", "/") + ".py")).exists()
                              or (ROOT.parent / full.replace(".", "/")).is_dir() else base)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {m for m in found if m.startswith("ussd_app") and m != name}
    return graph


def _room(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else ""


def test_core_imports_only_core():
    wrong = {m: sorted(i for i in deps if _room(i) != "core")
             for m, deps in imports().items() if _room(m) == "core"}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_the_ussd_machinery_knows_no_domain():
    wrong = {m: sorted(i for i in deps if _room(i) not in ("core", "ussd"))
             for m, deps in imports().items() if _room(m) == "ussd"}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_domains_import_only_core_and_themselves():
    for room in ("loyalty", "offers"):
        wrong = {m: sorted(i for i in deps if _room(i) not in ("core", room))
                 for m, deps in imports().items() if _room(m) == room}
        assert {m: d for m, d in wrong.items() if d} == {}, room


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
