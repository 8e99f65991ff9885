"""FER models on dev's real-photo single faces: against the folder labels and against careful labels.

Crops come from one autolabeled database of dev (``[crop] margin -0.10``, the default), written by
``scripts/train/face_crops_npz.py``, so every model sees the same faces; proposals are flip-averaged (the
pipeline's default). Careful labels: ``docs/data/dev_web_keyword_careful.csv`` (two blind passes by
eye; ``none`` and ``unsure`` rows left out)::

    labeler autolabel ../shared/data/dev/images --db sqlite:////tmp/dev.db -q
    python scripts/train/face_crops_npz.py --db /tmp/dev.db --labels ../shared/data/dev/labels.csv --subset web_keyword --out /tmp/wk.npz
    python scripts/train/face_crops_npz.py --db /tmp/dev.db --labels ../shared/data/dev/labels.csv --subset muxspace --out /tmp/mux.npz
    python scripts/eval/eval_real_photos.py --web-keyword /tmp/wk.npz --muxspace /tmp/mux.npz --model fer-ferplus-cnn --model DIR/x.json

Per model and set: accuracy, per-class recall, the confusion row of neutral (true neutral -> predicted),
how many faces of each class were called neutral, and the share of sad/angry/disgust faces called neutral.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from labeler.types import LABELS  # noqa: E402

HERE = Path(__file__).resolve().parents[2]
CAREFUL = HERE / "docs" / "data" / "dev_web_keyword_careful.csv"
NEGATIVE = ("sad", "angry", "disgust")


def summary(y: list[str], pred: list[str]) -> dict:
    """Accuracy, per-class recall, neutral's confusion row and column, sad/angry/disgust called neutral."""
    y, pred = np.asarray(y), np.asarray(pred)
    out: dict = {"n": int(len(y)), "correct": int((y == pred).sum()),
                 "acc": round(float((y == pred).mean()), 4) if len(y) else None}
    out["recall"] = {c: f"{int(((y == c) & (pred == c)).sum())}/{int((y == c).sum())}" for c in LABELS if (y == c).any()}
    out["neutral_row"] = {c: int(((y == "neutral") & (pred == c)).sum()) for c in LABELS if ((y == "neutral") & (pred == c)).any()}
    out["called_neutral"] = {c: int(((y == c) & (pred == "neutral")).sum()) for c in LABELS
                             if c != "neutral" and ((y == c) & (pred == "neutral")).any()}
    neg = np.isin(y, NEGATIVE)
    k = int((neg & (pred == "neutral")).sum())
    out["sad_angry_disgust_called_neutral"] = f"{k}/{int(neg.sum())}"
    out["sad_angry_disgust_called_neutral_share"] = round(k / int(neg.sum()), 4) if neg.any() else None
    return out


def predict(model, gray: np.ndarray) -> list[str]:
    p = model.predict(gray, flip=True)
    return [model.labels[i] for i in p.argmax(1)]


def read_careful(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as f:
        return {r["file"]: r["label"] for r in csv.DictReader(f) if r["label"] in LABELS}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--web-keyword", required=True, help=".npz of dev web_keyword's single faces (face_crops_npz.py)")
    ap.add_argument("--muxspace", default=None, help=".npz of dev muxspace's single faces")
    ap.add_argument("--careful", default=str(CAREFUL), help="careful labels CSV (file,label,...)")
    ap.add_argument("--model", action="append", default=None, help="name, name@version or sidecar path (repeatable)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    from labeler.fer.resolver import load_model

    careful = read_careful(Path(args.careful))
    sets = {"web_keyword": np.load(args.web_keyword)}
    if args.muxspace:
        sets["muxspace"] = np.load(args.muxspace)
    res: dict = {}
    for want in args.model or ["fer-ferplus-cnn"]:
        m = load_model(want)
        r: dict = {}
        for name, d in sets.items():
            files, folder = [str(f) for f in d["files"]], [str(x) for x in d["label"]]
            pred = predict(m, d["gray48"])
            keep = [i for i, lab in enumerate(folder) if lab in LABELS]
            r[name] = summary([folder[i] for i in keep], [pred[i] for i in keep])
            if name == "web_keyword":
                ck = [i for i, f in enumerate(files) if f in careful]
                r["web_keyword_careful"] = summary([careful[files[i]] for i in ck], [pred[i] for i in ck])
        res[m.ident] = r
        print(f"== {m.ident}")
        for name, s in r.items():
            print(f"  {name}: {s['correct']}/{s['n']} = {s['acc']}; recall {s['recall']}; called neutral {s['called_neutral']} "
                  f"(sad/angry/disgust {s['sad_angry_disgust_called_neutral']}); neutral row {s['neutral_row']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
