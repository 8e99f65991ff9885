"""Names that do not exist fail here, not in a user's run: pyflakes over the package, the scripts and
the tests. A merge once left ``walk.check_source`` calling two helpers another change had removed; the
module imported fine and only ``labeler autolabel notes.txt`` raised NameError. Unused imports and
similar style findings are not errors here; undefined names, undefined exports and the like are."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyflakes import api, messages, reporter

ROOT = Path(__file__).resolve().parent.parent

#: findings that mean the code cannot run as written
FATAL = (
    messages.UndefinedName, messages.UndefinedExport, messages.UndefinedLocal, messages.DuplicateArgument,
    messages.ReturnOutsideFunction, messages.YieldOutsideFunction, messages.ContinueOutsideLoop,
    messages.BreakOutsideLoop, messages.ImportStarUsage, messages.PercentFormatMissingArgument,
    messages.StringDotFormatMissingArgument,
)


class _Collect(reporter.Reporter):
    def __init__(self):
        self.found: list[str] = []

    def unexpectedError(self, filename, msg):
        self.found.append(f"{filename}: {msg}")

    def syntaxError(self, filename, msg, lineno, offset, text):
        self.found.append(f"{filename}:{lineno}: {msg}")

    def flake(self, message):
        if isinstance(message, FATAL):
            self.found.append(str(message))


@pytest.mark.parametrize("folder", ["labeler", "scripts", "tests"])
def test_no_undefined_names(folder):
    rep = _Collect()
    for path in sorted((ROOT / folder).rglob("*.py")):
        api.checkPath(str(path), rep)
    assert not rep.found, "\n".join(rep.found)


def test_the_check_finds_an_undefined_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(p):\n    return _is_video(p)\n")
    rep = _Collect()
    api.checkPath(str(bad), rep)
    assert len(rep.found) == 1 and "_is_video" in rep.found[0]
