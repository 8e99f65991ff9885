"""CI fails rather than skips: whatever scripts/test.sh installs is required there (LABELER_REQUIRE_*,
tests/conftest.py), and a test skips by itself only where the README's test section lists it as optional."""

from __future__ import annotations

import ast
import re

import pytest

from .conftest import REQUIRABLE, ROOT, missing, need_module

TESTS = ROOT / "tests"


def _optional() -> set[tuple[str, str]]:
    """(module, test) pairs the README lists as optional; test '*' for a whole module's "'s" line."""
    body = (ROOT / "README.md").read_text(encoding="utf-8").split("## Tests", 1)[1].split("\n## ", 1)[0]
    out = set()
    for m in re.finditer(r"^- `(test_\w+)(?:::(test_\w+))?`", body, re.M):
        out.add((m.group(1), m.group(2) or "*"))
    return out


def _skips() -> list[tuple[str, str, int]]:
    """(module, enclosing top-level function or '<module>', line) of every pytest.skip, importorskip and
    skipif in the tests, conftest's own helpers aside."""
    found = []
    for path in sorted(TESTS.glob("*.py")):
        if path.name in ("conftest.py", "test_skips.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        owner = {}
        for top in tree.body:
            for node in ast.walk(top):
                owner[id(node)] = top.name if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)) else "<module>"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("skip", "importorskip", "skipif"):
                found.append((path.stem, owner.get(id(node), "<module>"), node.lineno))
    return found


def test_every_skip_in_the_tests_is_one_the_readme_lists_as_optional():
    allowed = _optional()
    assert len(allowed) >= 3  # the list was read
    stray = [f"{mod}.py:{line} ({fn})" for mod, fn, line in _skips()
             if (mod, fn) not in allowed and (mod, "*") not in allowed]
    assert not stray, ("skips the README's test section does not list as optional (use conftest's missing()/"
                       f"need_module() for what scripts/test.sh installs, or list the test): {stray}")
    # and the list names tests that exist
    for mod, fn in allowed:
        src = (TESTS / f"{mod}.py").read_text(encoding="utf-8")
        assert fn == "*" or f"def {fn}(" in src, f"README lists {mod}::{fn}, which does not exist"


def test_scripts_test_sh_requires_everything_the_tests_can_require():
    sh = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    for what in REQUIRABLE:
        assert f"LABELER_REQUIRE_{what.upper()}=1" in sh, what


def test_missing_fails_where_required_and_skips_elsewhere(monkeypatch):
    monkeypatch.delenv("LABELER_REQUIRE_RAY", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no_such_module is not installed"):
        need_module("no_such_module", "ray", "pip install it")
    monkeypatch.setenv("LABELER_REQUIRE_RAY", "1")
    with pytest.raises(pytest.fail.Exception, match="LABELER_REQUIRE_RAY is set"):
        need_module("no_such_module", "ray", "pip install it")
    with pytest.raises(pytest.fail.Exception, match="chromium"):
        missing("ray", "chromium gone")
    assert need_module("json", "ray", "-").dumps([1]) == "[1]"
