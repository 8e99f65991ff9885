"""The shipped fer-ferplus-cnn model (trained by scripts/train_base.py): its sidecar verifies, it is
small, it loads through the registry, and a real smiling face comes out 'happy'."""

from __future__ import annotations

import json

import numpy as np

from labeler.fer import model as models
from labeler.fer.cards import default_models_dir, read_card, sha256_file
from labeler.types import LABELS

from .conftest import SAMPLE

SIDECAR = default_models_dir() / "fer_ferplus_cnn.json"


def test_sidecar_verifies_and_file_is_small():
    card = read_card(SIDECAR, verify=True)  # raises on a sha256 mismatch
    meta = json.loads(SIDECAR.read_text())
    assert card.kind == "fer" and card.name == "fer-ferplus-cnn"
    assert sha256_file(card.file) == meta["sha256"]
    assert meta["labels"] == list(LABELS)
    assert card.file.stat().st_size <= 5 * 2**20
    assert (SIDECAR.parent / meta["licence_file"]).is_file()
    assert meta["outputs"] == {"logits": "logits", "embedding": "embedding"}
    assert meta["calibration"]["temperature"] > 0
    assert {"command", "data", "seed", "epochs", "metrics", "hardware"} <= set(meta["training"])


def test_loads_by_name_and_predicts():
    m = models.load_model("fer-ferplus-cnn")
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, size=s + (3,), dtype=np.uint8) for s in [(112, 112), (48, 48), (20, 90)]]
    p = m.predict(crops, flip=True)
    assert p.shape == (3, 7)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    assert m.embed(crops).shape == (3, m.card.meta["embedding_dim"])


def test_smiling_astronaut_is_happy():
    import cv2

    path = SAMPLE / "smiling_astronaut.png"
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    face = rgb[40:230, 150:300]
    m = models.load_model("fer-ferplus-cnn")
    for flip in (False, True):
        p = m.predict([face], flip=flip)[0]
        assert m.labels[int(p.argmax())] == "happy"
        assert p.max() > 0.5
