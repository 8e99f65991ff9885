"""Fit the shipped FER model's temperature on human-labeled faces of a database (not the dev set).

    labeler autolabel ../shared/data/web_pool/images --db pool.db
    labeler import --format csv ../shared/data/web_pool/labels.csv --db pool.db --annotator web_pool
    python scripts/train/fit_shipped_temperature.py sqlite:///pool.db [--model NAME]

Prints the temperature and the calibration error before/after (flip-averaged logits, as the
labeler predicts). For the converted mini-Xception the value goes into SHIPPED_CALIBRATION in
scripts/convert/convert_fer.py (and models/fer_mini_xception.json); fer-ferplus-cnn's temperature is fitted
by scripts/train/train_base.py on its FER2013 validation split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from labeler.fer.calibration import expected_calibration_error, fit_temperature  # noqa: E402
from labeler.fer.model import softmax  # noqa: E402
from labeler.fer.resolver import load_model  # noqa: E402
from labeler.store import Store, iter_face_records  # noqa: E402
from labeler.training.data import crops  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db", help="database URL, e.g. sqlite:///pool.db")
    ap.add_argument("--model", default=None, help="model name or sidecar (default: the shipped default)")
    a = ap.parse_args(argv)
    store = Store(a.db)
    m = load_model(a.model)
    recs = [r for r in iter_face_records(store) if r.face_id is not None and r.human_label in m.labels]
    if not recs:
        print(f"error: expected human-labeled faces in {a.db}, found none; import labels first (labeler import)", file=sys.stderr)
        return 2
    cs = crops(store, [r.face_id for r in recs])
    y = np.array([m.labels.index(r.human_label) for r in recs])
    z = (m.logits(cs) + m.logits([np.ascontiguousarray(c[:, ::-1]) for c in cs])) / 2
    t = fit_temperature(z, y)
    p1, pt = softmax(z, 1.0), softmax(z, t)
    print(f"n={len(y)} acc={(p1.argmax(1) == y).mean():.3f} T={t:.3f} ECE before={expected_calibration_error(p1, y):.3f} "
          f"after={expected_calibration_error(pt, y):.3f} mean conf before={p1.max(1).mean():.3f} after={pt.max(1).mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
