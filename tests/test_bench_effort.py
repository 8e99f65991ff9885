"""The simulated annotator's bookkeeping (scripts/bench/bench_effort.py): its time ledger, its errors, its headline."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from labeler.flow import TimeModel

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "scripts" / "bench"))
    spec = importlib.util.spec_from_file_location("bench_effort", ROOT / "scripts" / "bench" / "bench_effort.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_effort"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_the_ledger_prices_each_action_with_the_time_model(bench):
    tm = TimeModel()
    led = bench.Ledger()
    for _ in range(4):
        led.audit(tm)
    led.card(tm, accepted=True)
    led.card(tm, accepted=False)
    led.grid(tm, seen=48, marked=5)
    assert led.seconds["audit"] == pytest.approx(4 * 2.5)
    assert led.seconds["card"] == pytest.approx(1.2 + 2.5)
    assert led.seconds["grid"] == pytest.approx(1.0 + 48 * 0.4 + 5 * 1.5)
    assert led.total == pytest.approx(10 + 3.7 + 27.7) and led.answers == 4 + 2 + 48
    custom = TimeModel.measured({"card": 3.0, "grid_seen": 0.2, "nonsense": 9, "audit": 0})
    assert (custom.card, custom.grid_seen, custom.audit) == (3.0, 0.2, 2.5)


def test_the_annotator_errs_at_the_stated_rates(bench):
    p = bench.Annotator(card_error=0.03, grid_miss=0.10, seed=1)
    answers = [p.card("happy") for _ in range(20000)]
    wrong = sum(1 for a, labs in answers if labs != ["happy"])
    assert 0.025 < wrong / 20000 < 0.035 and all(a == "label" for a, _ in answers)
    assert p.card(None) == ("unusable", None)
    marks = p.grid_marks("happy", ["sad"] * 10000 + ["happy"] * 1000)
    assert 0.88 < sum(marks[:10000]) / 10000 < 0.92 and not any(marks[10000:])


def test_headline_says_seconds_per_face_answers_and_accuracy(bench):
    led = bench.Ledger()
    tm = TimeModel()
    for _ in range(10):
        led.card(tm, accepted=False)
    h = bench.headline(50, led, 0.96, True)
    assert h.startswith("finished: 0.50 human seconds per face") and "20 answers per 100 faces" in h and "96.0%" in h
    assert "below the 95% asked" in bench.headline(50, led, 0.90, False) and "NOT finished" in bench.headline(50, led, 0.9, False)
