"""The price of the web domain on FER2013: for a model trained by scripts/train/train_base_web.py, PublicTest
(FER+ majority) and web validation accuracy, neutral recall and sad/angry called neutral, as the prior
power alpha of its training report varies (the chosen shift is taken out of the last bias first), and with the chosen shift plus a bonus
on neutral's logit.

    python scripts/eval/eval_web_tradeoff.py --model DIR/fer_ferplus_cnn.json [--model models/fer_ferplus_cnn.json]

A sidecar without a web training report (the shipped model) is shown at its own bias only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    here = Path(__file__).resolve().parents[2]
    shared = here.parent / "shared" / "data"
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, help="sidecar path (repeatable)")
    ap.add_argument("--data", default=str(shared / "fer2013"))
    ap.add_argument("--web-faces", default=str(shared / "web_faces"))
    args = ap.parse_args(argv)

    from labeler.fer.resolver import load_model
    from labeler.training import prior
    from labeler.training.base_data import LABELS, load_split, read_votes
    from labeler.training.web_train import load_web_faces, web_split

    data = Path(args.data)
    test = load_split(data, "public_test", read_votes(data / "ferplus_votes.csv"))
    n = LABELS.index("neutral")
    for want in args.model:
        m = load_model(want)
        side = Path(want)
        rep = side.parent / "train_report.json"
        meta = json.loads(side.read_text())
        web = meta.get("training", {}).get("data", {}).get("web", {})
        seed = int(meta.get("training", {}).get("seed", 20261128))
        ws = load_web_faces(Path(args.web_faces))
        val_repos = "naapeli/CS-C3240-Machine-learning-project,tungheidiie/StatesImageClassification"
        _, va = web_split(ws, set(val_repos.split(",")), "katstudz/emotion_reco", 0.25, seed)
        wva = ws.subset(va)
        zt = 0.5 * (m.logits(test.x) + m.logits(test.x[:, :, ::-1].copy()))
        zw = 0.5 * (m.logits(wva.x) + m.logits(wva.x[:, :, ::-1].copy()))
        rows = [("as shipped", np.zeros(len(LABELS)))]
        if rep.is_file() and web:
            r = json.loads(rep.read_text())
            p = r["prior"]
            mix = np.asarray([p["prior"][c] for c in LABELS])
            shift = np.asarray([p["shift"][c] for c in LABELS])
            t_f = None
            # the chosen shift was -alpha * T_fer * log(prior) with T_fer before the refit: recover it
            if p["alpha"] > 0:
                t_f = float(np.median(shift / (-p["alpha"] * np.log(mix))))
            zt, zw = zt - shift, zw - shift
            rows = [(f"alpha {a}", prior.shift_for(a, mix, t_f) if t_f else np.zeros(len(LABELS)))
                    for a in (prior.ALPHAS if t_f else (0.0,))]
            rows = [(f"{lab}{' (chosen)' if t_f and abs(float(lab.split()[1]) - p['alpha']) < 1e-9 else ''}", s) for lab, s in rows]
            for b in (0.25, 0.5, 1.0, 1.5, 2.0):  # the chosen shift plus a neutral bonus: how much neutral buys back
                rows.append((f"chosen + neutral {b:+.2f}", shift + b * np.eye(len(LABELS))[n]))
        print(f"== {m.ident} ({want})")
        mt = test.maj >= 0
        sa = np.isin(wva.y, [LABELS.index("sad"), LABELS.index("angry")])
        for lab, s in rows:
            pt = (zt + s).argmax(1)
            pw = (zw + s).argmax(1)
            print(f"  {lab}: PublicTest FER+ {float((pt[mt] == test.maj[mt]).mean()):.4f} (neutral recall "
                  f"{float((pt[mt & (test.maj == n)] == n).mean()):.3f}); web val {float((pw == wva.y).mean()):.4f} (n {len(pw)}; neutral recall "
                  f"{float((pw[wva.y == n] == n).mean()):.3f}; sad/angry called neutral {int((pw[sa] == n).sum())}/{int(sa.sum())})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
