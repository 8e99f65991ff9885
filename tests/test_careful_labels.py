"""docs/data/dev_web_keyword_careful.csv (issue 38): careful labels of dev web_keyword's single faces,
two blind passes by eye. File names and labels only; the rules its evaluation relies on."""

from __future__ import annotations

import csv
from pathlib import Path

LABELS = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
CSV = Path(__file__).resolve().parent.parent / "docs" / "data" / "dev_web_keyword_careful.csv"


def test_careful_labels_follow_their_rules():
    with open(CSV, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == ["file", "label", "pass1", "pass2", "note"]
    files = [r["file"] for r in rows]
    assert len(set(files)) == len(files)
    for r in rows:
        assert r["file"].startswith("images/web_keyword/"), r
        assert Path(r["file"]).suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".gif"}, r  # names only, no pixels
        assert r["pass1"] in LABELS | {"none"} and r["pass2"] in LABELS | {"none"}, r
        if r["pass1"] == r["pass2"]:
            assert r["label"] == r["pass1"], r  # agreement is the label
        else:
            assert r["label"] in LABELS | {"unsure"} and "third look" in r["note"], r  # settled or marked, and said so
    usable = [r for r in rows if r["label"] in LABELS]
    assert len(usable) >= 0.85 * len(rows)
