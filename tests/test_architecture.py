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
