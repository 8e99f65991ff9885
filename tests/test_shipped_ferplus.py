"""The shipped fer-ferplus-cnn model (trained by scripts/train/train_base.py): its sidecar verifies, it is
small, it loads through the registry, and a real smiling face comes out 'happy'."""

from __future__ import annotations

import json

import numpy as np

from labeler.fer import resolver as models
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


def _rgb(name: str) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(SAMPLE / name)), cv2.COLOR_BGR2RGB)


def test_loads_by_name_and_answers_real_faces_of_any_size_each_as_if_alone():
    """Real faces of different sizes in one batch: each answer (and embedding) is the one it gets
    alone, flip averaging does not care which way a face looks, and the smiles are 'happy'."""
    m = models.load_model("fer-ferplus-cnn")
    assert m.ident == read_card(SIDECAR).ident
    astronaut = _rgb("smiling_astronaut.png")[40:230, 150:300]
    crops = [astronaut, _rgb("crops/happy_crop_48px.png"), np.ascontiguousarray(astronaut[:120, :100])]
    p = m.predict(crops, flip=True)
    assert p.shape == (3, 7)
    for i, c in enumerate(crops):
        np.testing.assert_allclose(p[i], m.predict([c], flip=True)[0], atol=1e-5)
    mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
    np.testing.assert_allclose(m.predict(mirrored, flip=True), p, atol=1e-5)
    assert [m.labels[i] for i in p[:2].argmax(1)] == ["happy", "happy"]
    e = m.embed(crops)
    assert e.shape == (3, m.card.meta["embedding_dim"])
    np.testing.assert_allclose(e[1], m.embed([crops[1]])[0], atol=1e-5)


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
