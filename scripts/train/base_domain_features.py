"""The base model's own domain, shipped beside it as features (issue 32): embeddings and raw logits
and the global averages of earlier feature maps (each face as is and
mirrored, float16) of a few thousand FER2013 faces with their FER+ majority
labels, so `labeler train` can replay the base's domain and judge a new head on it without any
image (no image or crop is written; `labeler/training/basedomain.py` reads the result).

    python scripts/train/base_domain_features.py --data ../shared/data/fer2013 [--model models/fer_ferplus_cnn.json]
                                           [--gate-per-class 300] [--replay-per-class 200] [--out labeler/data]
    python scripts/train/base_domain_features.py --data ../shared/data/fer2013 --public-test /tmp/pt.npz  # evaluation only

Needs the training extras (the split is rebuilt by ``labeler.training.base_train.train_val_split``,
which imports torch). The sets:

- **gate**: faces of the model's own validation split (the content-hash groups of FER2013 train it
  was not trained on; seed and fraction from its sidecar, the split's size checked against the
  sidecar's counts) with a FER+ majority label, up to ``--gate-per-class`` per class (seeded);
- **replay**: faces of its training part (what it was trained on, after the split), up to
  ``--replay-per-class`` per class by FER+ majority (seeded).

PublicTest is left out of both, so a measurement on it stays independent of the gate.
``--public-test FILE`` writes the same features of the whole PublicTest (all images, FER+ majority
or -1) to FILE for evaluation scripts; that file is never shipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from labeler.fer.resolver import load_model  # noqa: E402
from labeler.training.basedomain import FILE_STEM, FORMAT  # noqa: E402
from labeler.training.likeness import ProbeRunner  # noqa: E402


def views(runner: ProbeRunner, x: np.ndarray) -> dict[str, np.ndarray]:
    """Embeddings, logits and probe features of 48x48 uint8 faces, as is and mirrored (float32)."""
    out = {}
    for tag, imgs in (("", list(x)), ("_flip", [np.ascontiguousarray(g[:, ::-1]) for g in x])):
        out["emb" + tag], out["logits" + tag], out["probe" + tag] = runner.run(imgs)
    return out


def pick(maj: np.ndarray, per_class: int, k: int, seed: int) -> np.ndarray:
    """Seeded indices: up to ``per_class`` faces of each FER+ majority class, sorted."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(k):
        idx = np.flatnonzero(maj == c)
        out += list(idx[np.sort(rng.permutation(len(idx))[:per_class])])
    return np.sort(np.asarray(out, dtype=np.int64))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="FER2013 folder with train/, public_test/ and ferplus_votes.csv")
    ap.add_argument("--model", default=str(ROOT / "models" / "fer_ferplus_cnn.json"), help="the base model's sidecar")
    ap.add_argument("--gate-per-class", type=int, default=300)
    ap.add_argument("--replay-per-class", type=int, default=200)
    ap.add_argument("--val-frac", type=float, default=0.1, help="as the model was trained (train_base.py's default)")
    ap.add_argument("--seed", type=int, default=0, help="of the per-class samples")
    ap.add_argument("--out", default=str(ROOT / "labeler" / "data"), help="folder of the .npz and .json")
    ap.add_argument("--public-test", default=None, metavar="FILE", help="instead: the whole PublicTest's features to FILE")
    a = ap.parse_args(argv)
    from labeler.training.base_data import LABELS, load_split, read_votes
    from labeler.training.base_train import train_val_split

    data = Path(a.data)
    model = load_model(a.model)
    if list(model.labels) != LABELS:
        raise SystemExit(f"error: {a.model}: expected labels {LABELS}, found {model.labels}")
    runner = ProbeRunner(model)
    votes = read_votes(data / "ferplus_votes.csv")
    test = load_split(data, "public_test", votes)
    if a.public_test:
        f = views(runner, test.x)
        np.savez_compressed(a.public_test, y=test.maj.astype(np.int8), folder=test.folder.astype(np.int8),
                            files=np.asarray(test.files), **{k: v.astype(np.float32) for k, v in f.items()})
        print(f"{a.public_test}: {len(test)} PublicTest images ({int((test.maj >= 0).sum())} with a FER+ majority)")
        return 0
    tr_meta = model.card.meta.get("training") or {}
    full = load_split(data, "train", votes)
    tr, va, counts = train_val_split(full, test, a.val_frac, int(tr_meta["seed"]))
    want = (tr_meta.get("data") or {}).get("counts") or {}
    if want and (want.get("val_files"), want.get("train_used")) != (counts["val_files"], counts["train_used"]):
        raise SystemExit(f"error: the rebuilt split differs from the one {model.ident} was trained with: expected "
                         f"{want.get('val_files')} validation / {want.get('train_used')} training files, found "
                         f"{counts['val_files']} / {counts['train_used']}; check --data and --val-frac")
    k = len(LABELS)
    sets = {"gate": (va, pick(va.maj, a.gate_per_class, k, a.seed)),
            "replay": (tr, pick(tr.maj, a.replay_per_class, k, a.seed + 1))}
    arrays, facts = {}, {}
    for name, (split, idx) in sets.items():
        f = views(runner, split.x[idx])
        for key, v in f.items():
            if key.startswith("probe"):  # averages of ReLU maps (>= 0): 8 bits a value, a scale per column
                scale = np.maximum(v.max(axis=0), 1e-6).astype(np.float32)
                arrays[f"{name}_{key}"] = np.round(v / scale * 255).astype(np.uint8)
                arrays[f"{name}_{key}_scale"] = scale
            else:
                arrays[f"{name}_{key}"] = v.astype(np.float16)
        arrays[f"{name}_y"] = split.maj[idx].astype(np.int8)
        files = [split.files[i] for i in idx]
        arrays[f"{name}_files"] = np.asarray([Path(p).name for p in files])
        facts[name] = {"faces": int(len(idx)), "per_class": {LABELS[c]: int((split.maj[idx] == c).sum()) for c in range(k)},
                       "files_sha256": hashlib.sha256("\n".join(files).encode()).hexdigest()}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{FILE_STEM}{model.name}"
    np.savez_compressed(out / f"{stem}.npz", **arrays)
    meta = {
        "format": FORMAT,
        "model": {"name": model.name, "version": model.version, "sha256": model.card.sha256},
        "labels": LABELS,
        "label_rule": "FER+ majority: the unique largest of the 10 vote counts when it is one of the 7 classes",
        "views": "each face as is and mirrored (emb / emb_flip, logits / logits_flip, probe / probe_flip); raw logits, "
                 "before the temperature",
        "probe": {"tensors": runner.tensors, "what": "global averages of these feature maps (labeler.training.likeness)"},
        "dtype": "float16; probe features uint8 times <name>_scale / 255 (per column)",
        "sets": {
            "gate": {**facts["gate"], "what": f"FER2013 train's validation split of {model.ident} (content-hash groups it was "
                                               f"not trained on, seed {tr_meta['seed']}, fraction {a.val_frac}), faces with a "
                                               f"FER+ majority, up to {a.gate_per_class} per class (seed {a.seed})"},
            "replay": {**facts["replay"], "what": f"FER2013 train faces {model.ident} was trained on, up to "
                                                   f"{a.replay_per_class} per FER+ majority class (seed {a.seed + 1})"},
        },
        "source": "FER2013 (Goodfellow et al. 2013) 48x48 faces and the FER+ crowd votes (Microsoft, MIT); "
                  "features only: no image or crop is stored",
        "command": "python scripts/train/base_domain_features.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "computed": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "npz_sha256": hashlib.sha256((out / f"{stem}.npz").read_bytes()).hexdigest(),
    }
    (out / f"{stem}.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    size = (out / f"{stem}.npz").stat().st_size
    print(f"{out / stem}.npz: {size / 1e6:.2f} MB; gate {facts['gate']['per_class']}; replay {facts['replay']['per_class']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
