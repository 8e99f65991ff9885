"""The simulated annotator's bookkeeping (scripts/bench_effort.py) on tiny generated states."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_effort", ROOT / "scripts" / "bench_effort.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_effort"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _faces(b):
    F = b.FaceState
    return [
        F(1, "happy", "happy", "review", None, "happy"),  # human, right
        F(2, "sad", None, "auto", "sad", "sad"),  # auto, right
        F(3, "angry", None, "auto", "fear", "fear"),  # auto, wrong
        F(4, None, None, "auto", "happy", "happy"),  # auto, truth not a class: not scored
        F(5, "fear", None, "review", None, "fear"),  # waiting, model right
        F(6, "neutral", None, "review", None, "sad"),  # waiting, model wrong
        F(7, None, "unusable", "review", None, "sad"),  # human said unusable
    ]


def test_figures_count_what_the_issue_asks(bench):
    r = bench.figures(3, _faces(bench), answers=9, estimate=0.9)
    assert (r.faces, r.auto, r.auto_scored, r.auto_correct) == (7, 3, 2, 1)
    assert r.auto_share == pytest.approx(3 / 7) and r.auto_precision == pytest.approx(0.5)
    assert r.unlabeled_scored == 4 and r.top1_unlabeled == pytest.approx(2 / 4)  # faces 2, 3, 5, 6
    assert r.finished == 5 and r.agreement == pytest.approx(2 / 3)  # scored finished: 1 (ok), 2 (ok), 3 (wrong)
    assert not r.done and "answers    9" in r.line() and "tool estimate  90.0%" in r.line()


def test_oracle_and_headline(bench):
    assert bench.oracle_answer("sad") == ("label", ["sad"])
    assert bench.oracle_answer(None) == ("unusable", None) and bench.oracle_answer("contempt") == ("unusable", None)
    F = bench.FaceState
    done = [F(i, "happy", "happy", "review", None, "happy") for i in range(19)] + [F(19, "sad", None, "auto", "happy", "happy")]
    r1 = bench.figures(1, done[:10] + [F(i, "happy", None, "review", None, "sad") for i in range(10, 20)], answers=10)
    r2 = bench.figures(2, done, answers=19)
    assert r2.done and r2.agreement == pytest.approx(0.95)
    assert bench.headline([r1, r2]).startswith("finished at round 2 with 19 human answers for 20 faces = 95.0 answers per 100")
    assert bench.headline([r1]).startswith("not finished after 1 rounds") and "best agreement 100.0%" in bench.headline([r1])
    assert "< 98%" in bench.headline([r1, r2], target=0.98)


def test_read_truth_selects_subsets(bench, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("file,subset,label\nimages/a.jpg,web,happy\nimages/b.jpg,lab,contempt\nimages/c.jpg,multi,\n")
    t = bench.read_truth(csv, {"web", "lab"})
    assert t == {str((tmp_path / "images/a.jpg").resolve()): "happy", str((tmp_path / "images/b.jpg").resolve()): None}
    assert len(bench.read_truth(csv)) == 3
