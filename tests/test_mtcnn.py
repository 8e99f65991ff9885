"""MTCNN detector (onnxruntime port of facenet-pytorch) on real and synthetic images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeler.fer.cards import ModelFileError, default_models_dir
from labeler.faces.mtcnn import MTCNNDetector, area_resize, integral_image

from .conftest import SAMPLE, SHARED

ASTRO = SAMPLE / "smiling_astronaut.png"


@pytest.fixture(scope="module")
def det() -> MTCNNDetector:
    return MTCNNDetector()


@pytest.fixture(scope="module")
def astro() -> np.ndarray:
    return np.asarray(Image.open(ASTRO).convert("RGB"))


def test_one_face_on_the_astronaut(det, astro):
    faces = det.detect(astro)
    assert len(faces) == 1
    f = faces[0]
    x1, y1, x2, y2 = f.box
    assert f.score > 0.99
    # the face is at about x 180-270, y 60-175 of the 512 px portrait
    assert 160 < x1 < 200 and 250 < x2 < 290 and 40 < y1 < 80 and 150 < y2 < 200
    le, re, nose, ml, mr = f.landmarks
    for x, y in f.landmarks:
        assert x1 <= x <= x2 and y1 <= y <= y2
    assert le[0] < re[0] and ml[0] < mr[0]  # image left/right
    assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])  # eyes above nose above mouth
    assert det.name == "mtcnn" and det.version == "facenet-pytorch-2.6.0"


def test_three_faces_at_different_scales(det, astro):
    canvas = np.full((600, 1100, 3), 235, np.uint8)
    x = 10
    for side in (420, 260, 150):
        tile = np.asarray(Image.fromarray(astro).resize((side, side), Image.BILINEAR))
        canvas[50 : 50 + side, x : x + side] = tile
        x += side + 40
    faces = [f for f in det.detect(canvas) if f.score > 0.9]
    assert len(faces) == 3
    centers = sorted((f.box[0] + f.box[2]) / 2 for f in faces)
    assert centers[0] < 450 < centers[1] < 740 < centers[2]
    sizes = sorted(((f.box[2] - f.box[0]) for f in faces), reverse=True)
    assert sizes[0] > sizes[1] > sizes[2]


def test_no_face_on_blank_image(det):
    assert det.detect(np.full((300, 400, 3), 128, np.uint8)) == []
    assert det.detect(np.zeros((8, 8, 3), np.uint8)) == []  # smaller than the pyramid's first scale


def test_rejects_wrong_input(det):
    with pytest.raises(ValueError):
        det.detect(np.zeros((50, 50, 3), np.float32))


def test_area_resize_is_adaptive_average_pooling():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    out = area_resize(integral_image(img), 11, 24)
    # reference: explicit loops with torch's adaptive pooling windows
    ref = np.zeros((11, 24, 3))
    for i in range(11):
        ys, ye = (i * 37) // 11, -((-(i + 1) * 37) // 11)
        for j in range(24):
            xs, xe = (j * 53) // 24, -((-(j + 1) * 53) // 24)
            ref[i, j] = img[ys:ye, xs:xe].reshape(-1, 3).mean(0)
    assert np.abs(out - ref).max() < 1e-3


def test_checksum_failure_names_expected_and_found(tmp_path):
    src = default_models_dir()
    for p in src.glob("mtcnn_*"):
        shutil.copy(p, tmp_path / p.name)
    onnx = tmp_path / "mtcnn_rnet.onnx"
    b = bytearray(onnx.read_bytes())
    b[len(b) // 2] ^= 0xFF
    onnx.write_bytes(bytes(b))
    with pytest.raises(ModelFileError) as e:
        MTCNNDetector(models_dir=tmp_path)
    msg = str(e.value)
    assert "expected" in msg and "found" in msg and "mtcnn_rnet.onnx" in msg


def test_missing_model_file_fails_loudly(tmp_path):
    for p in default_models_dir().glob("mtcnn_*"):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "mtcnn_onet.onnx").unlink()
    with pytest.raises(ModelFileError, match="not found"):
        MTCNNDetector(models_dir=tmp_path)


MULTIFACE = SHARED / "dev" / "images" / "multiface"


@pytest.mark.reference
@pytest.mark.slow
def test_parity_with_facenet_pytorch(det):
    """Boxes within 1 px of facenet-pytorch's MTCNN(keep_all=True) (needs the reference venv)."""
    pytest.importorskip("torch")
    fp = pytest.importorskip("facenet_pytorch")
    if not MULTIFACE.is_dir():
        pytest.skip(f"{MULTIFACE} not present")
    from scripts.mtcnn_parity import load_rgb, match  # noqa: PLC0415

    ref = fp.MTCNN(keep_all=True, device="cpu")
    files = sorted(p for p in MULTIFACE.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert files
    for p in files:
        im = load_rgb(p)
        if im is None:
            continue
        rb, _ = ref.detect(im)
        rb = np.zeros((0, 4)) if rb is None else np.asarray(rb, dtype=np.float64)
        ob = np.array([f.box for f in det.detect(im)], dtype=np.float64).reshape(-1, 4)
        assert len(rb) == len(ob), p.name
        pairs = match(rb, ob)
        assert len(pairs) == len(rb), p.name
        for i, j in pairs:
            assert np.abs(rb[i] - ob[j]).max() <= 1.0, p.name
