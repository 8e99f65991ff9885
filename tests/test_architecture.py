"""The import rules that make the layout mean something (docs/ARCHITECTURE.md). Parses every module
of the package and checks what it imports, including imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "labeler"

#: third-party packages that only one folder may import
OWNED = {"sqlalchemy": "store", "alembic": "store", "streamlit": "ui", "torch": "training", "onnx": None,
         "ray": "distributed", "cleanlab": "quality", "crowdkit": "quality", "sklearn": "quality",
         "fsspec": "ingest"}
#: lower layers must not import these upper ones
UPPER = ("pipeline", "work", "distributed", "datasets", "training", "reports", "ui", "cli")
LOWER = ("types", "errors", "util", "resources", "routing", "selection", "flow", "audit", "config", "ingest", "faces", "fer", "store", "quality")


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(("labeler",) + parts), path


def _imports(mod: str, path: Path) -> set[str]:
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(x for x in (base, node.module or "") if x)
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)
    return out


MODULES = list(_modules())


def _top(mod: str) -> str:
    return mod.split(".")[1] if mod.startswith("labeler.") and mod.count(".") >= 1 else mod


@pytest.mark.parametrize("mod,path", MODULES, ids=[m for m, _ in MODULES])
def test_import_rules(mod, path):
    here = _top(mod)
    problems = []
    for imp in _imports(mod, path):
        root = imp.split(".")[0]
        if root in OWNED and OWNED[root] is not None and here != OWNED[root]:
            problems.append(f"{imp} may be imported only under labeler/{OWNED[root]}/")
        if not imp.startswith("labeler."):
            continue
        target = _top(imp)
        if target == "cli" and mod != "labeler.__main__" and here != "cli":
            problems.append(f"{imp}: nothing imports the CLI")
        if target == "ui" and here != "ui" and not (here == "cli" and imp.startswith("labeler.ui.launch")):
            problems.append(f"{imp}: nothing imports the UI (the CLI only starts it through labeler.ui.launch)")
        if here in LOWER and target in UPPER:
            problems.append(f"{imp}: the lower layer {here} must not import the upper layer {target}")
        if here == "routing" and target not in ("types", "errors", "routing"):
            problems.append(f"{imp}: routing is pure (types only)")
        if here == "fer" and target == "store":
            problems.append(f"{imp}: fer/ knows models, not the database (pass what it needs in)")
        if here == "quality" and target not in ("quality", "types", "errors"):
            problems.append(f"{imp}: quality/ is pure (typed inputs in, results out; the reads are store.quality)")
    assert not problems, f"{path.relative_to(PKG.parent)}:\n  " + "\n  ".join(problems)


def test_every_module_is_small():
    """No module over ~400 lines (a module that grows past it has more than one job)."""
    big = {str(p.relative_to(PKG.parent)): n for _, p in MODULES if (n := len(p.read_text().splitlines())) > 420}
    assert not big, big


def test_every_subpackage_ships():
    """Every folder of the package is listed in pyproject.toml, so the wheel carries it."""
    text = (PKG.parent / "pyproject.toml").read_text()
    for init in PKG.rglob("__init__.py"):
        name = ".".join(("labeler",) + init.parent.relative_to(PKG).parts)
        assert f'"{name}"' in text, f"{name} is missing from [tool.setuptools] packages"


MODULE_NAMES = {m for m, _ in MODULES}


def _edges(mod: str, path: Path) -> set[str]:
    """The modules of the package that ``mod`` imports, anywhere in it (inside functions too: an
    import inside a function that closes a circle is still a circle). ``from pkg import sub`` of a
    submodule is an edge to the submodule only (Python initialises the parent package first anyway)."""
    out = set()
    for imp in _imports(mod, path):
        if imp in MODULE_NAMES:
            out.add(imp)
        elif imp.rsplit(".", 1)[0] in MODULE_NAMES:  # a name from a module: `from a.b import name`
            out.add(imp.rsplit(".", 1)[0])
    out.discard(mod)
    # `from pkg import sub`: _imports gives both "pkg" and "pkg.sub"; the parent alone is no edge
    # unless a name (not a submodule) is taken from it
    tree = ast.parse(path.read_text(), str(path))
    from_pkg_names = set()
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(x for x in (base, node.module or "") if x)
            if module in MODULE_NAMES and any(f"{module}.{a.name}" not in MODULE_NAMES for a in node.names):
                from_pkg_names.add(module)
        elif isinstance(node, ast.Import):
            from_pkg_names.update(a.name for a in node.names if a.name in MODULE_NAMES)
    return {t for t in out if not (mod.startswith(t + ".") and t not in from_pkg_names)}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycles_finds_a_circle_and_only_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_in_the_package():
    """No module imports, directly or through others, a module that imports it: every package is
    layered (store/: schema, engine, images/cleaning, records, faces/review, video/audit/models,
    then stats/grid/leases; docs/ARCHITECTURE.md)."""
    graph = {m: _edges(m, p) for m, p in MODULES}
    cycles = _cycles(graph)
    assert not cycles, "import cycles (break each by moving the shared piece down a layer):\n  " + "\n  ".join(
        " <-> ".join(c) + ": " + "; ".join(f"{v} -> {sorted(graph[v] & set(c))}" for v in c) for c in cycles)


def test_store_imports_its_own_modules_at_the_top():
    """store/ is layered, not held together by imports inside functions (which hid a 9-module circle):
    every import of a labeler module in store/ is at the top of its module."""
    late = []
    for mod, path in MODULES:
        if not mod.startswith("labeler.store"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    name = (node.module or "") if isinstance(node, ast.ImportFrom) else (
                        node.names[0].name if isinstance(node, ast.Import) else "")
                    if name.startswith("labeler"):
                        late.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {name}")
    assert not late, late
