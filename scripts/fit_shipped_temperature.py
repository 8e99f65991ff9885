"""Fit the shipped FER model's temperature on human-labeled faces of a database (not the dev set).

    labeler autolabel ../shared/data/web_pool/images --db pool.db
    labeler import --format csv ../shared/data/web_pool/labels.csv --db pool.db --annotator web_pool
    python scripts/fit_shipped_temperature.py sqlite:///pool.db

Prints the temperature and the calibration error before/after; the value goes into
SHIPPED_CALIBRATION in scripts/convert_fer.py (and the sidecar models/fer_mini_xception.json).
"""
import numpy as np, sys
from labeler.store import Store, iter_face_records
from labeler.ingest.imageio import decode_crop
from labeler.fer.model import load_model
from labeler.fer.calibration import fit_temperature, expected_calibration_error
from labeler.fer.model import softmax
from sqlalchemy import select
from labeler.store import Face
s = Store(sys.argv[1])
m = load_model()
crops, ys = [], []
recs = [r for r in iter_face_records(s) if r['face_id'] and r['human_label'] in m.labels]
with s.session() as x:
    cmap = dict(x.execute(select(Face.id, Face.crop).where(Face.id.in_([r['face_id'] for r in recs]))).all())
for r in recs:
    crops.append(decode_crop(cmap[r['face_id']])); ys.append(m.labels.index(r['human_label']))
y = np.array(ys)
l = (m.logits(crops) + m.logits([c[:, ::-1] for c in crops])) / 2
T = fit_temperature(l, y)
p1 = softmax(l, 1.0); pT = softmax(l, T)
print(f"n={len(y)} acc={(p1.argmax(1)==y).mean():.3f} T={T:.3f} ECE before={expected_calibration_error(p1,y):.3f} after={expected_calibration_error(pT,y):.3f} mean conf before={p1.max(1).mean():.3f} after={pT.max(1).mean():.3f}")
