"""Write ``labeler/data/label_distance.json``: how far apart two expression classes are, for the
weighted Krippendorff's alpha of ``labeler.quality.agreement``.

The distance comes from how people split their votes: on FER2013 train (28,709 images, the FER+
crowd's ten votes each, ``../shared/data/fer2013/ferplus_votes.csv``), ``J[a, b]`` counts the ordered
pairs of votes of one image that say ``a`` and ``b`` (``a == b``: pairs of two different taggers
both saying ``a``). The similarity of two classes is ``J[a, b] / sqrt(J[a, a] J[b, b])`` (1 on the
diagonal; how often a vote for one sits next to a vote for the other, relative to how often each
sits next to itself) and the distance is one minus it. Classes people mix up are near (angry and
disgust, fear and surprise, sad and neutral); happy is far from everything. Contempt, unknown and
not-a-face votes are left out.

    .venv/bin/python scripts/make/label_distance.py [--votes ../shared/data/fer2013/ferplus_votes.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
#: FER+ vote columns of the seven classes, in labeler.types.LABELS order
VOTE_COLUMNS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def distance(votes: np.ndarray) -> np.ndarray:
    """images x classes vote counts -> the classes x classes distance (0 on the diagonal)."""
    v = votes.astype(float)
    pairs = v.T @ v - np.diag(v.sum(0))  # ordered pairs of votes within one image
    d = np.sqrt(np.diag(pairs))
    out = 1.0 - pairs / np.outer(d, d)
    np.fill_diagonal(out, 0.0)
    return np.clip(out, 0.0, 1.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--votes", default=str(ROOT.parent / "shared" / "data" / "fer2013" / "ferplus_votes.csv"))
    ap.add_argument("--out", default=str(ROOT / "labeler" / "data" / "label_distance.json"))
    args = ap.parse_args(argv)
    with open(args.votes, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["file"].startswith("train/")]
    votes = np.array([[int(r[c] or 0) for c in VOTE_COLUMNS] for r in rows])
    d = distance(votes)
    doc = {
        "what": "distance between expression classes for the weighted Krippendorff's alpha (0 same, 1 never confused)",
        "how": "1 - J[a,b] / sqrt(J[a,a] J[b,b]), J[a,b] = ordered pairs of FER+ crowd votes of one image saying a and b",
        "source": f"FER+ votes of FER2013 train ({len(rows)} images; Microsoft FER+, MIT licence)",
        "command": "python scripts/make/label_distance.py",
        "labels": list(LABELS),
        "distance": [[round(float(x), 3) for x in row] for row in d],
    }
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(doc["distance"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
