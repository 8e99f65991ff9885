"""MTCNN detector (onnxruntime port of facenet-pytorch) on real and synthetic images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeler.fer.cards import ModelFileError, default_models_dir
from labeler.faces.mtcnn import MTCNNDetector, _crops, area_resize, integral_image, nms_torchvision

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
    from scripts.eval.mtcnn_parity import load_rgb, match  # noqa: PLC0415

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


# ---------------------------------------------------------------- speed-ups that must not change results
def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """torchvision's NMS written plainly: best first, drop every later box overlapping a kept one."""
    b = boxes.astype(np.float32)
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep, removed = [], np.zeros(len(b), bool)
    for i in np.argsort(-scores, kind="stable"):
        if removed[i]:
            continue
        keep.append(int(i))
        w = np.maximum(np.float32(0), np.minimum(b[i, 2], b[:, 2]) - np.maximum(b[i, 0], b[:, 0]))
        h = np.maximum(np.float32(0), np.minimum(b[i, 3], b[:, 3]) - np.maximum(b[i, 1], b[:, 1]))
        with np.errstate(invalid="ignore", divide="ignore"):
            removed |= (w * h) / (areas[i] + areas - w * h) > thr
    return keep


def test_nms_keeps_what_the_greedy_loop_keeps():
    rng = np.random.default_rng(3)
    for trial in range(200):
        n = int(rng.integers(1, 300))
        xy = rng.uniform(0, 150, (n, 2)).astype(np.float32)
        side = rng.choice([0.0, 1.0, 12.0, 17.5, 40.0, 90.0], size=(n, 1)) * rng.uniform(0.8, 1.25, (n, 2))
        if trial % 4 == 0:
            side[:] = 12.0  # one P-Net scale: all boxes alike, on a grid
            xy = np.floor(xy / 2) * 2
        boxes = np.concatenate([xy, xy + side.astype(np.float32)], axis=1)
        if trial % 7 == 0:
            boxes[: n // 3, 2] = boxes[: n // 3, 0] - 1  # degenerate boxes overlap nothing
        scores = rng.choice(np.linspace(0.6, 1.0, 9), n).astype(np.float32)  # ties: stable order decides
        for thr in (0.5, 0.7):
            assert nms_torchvision(boxes, scores, thr).tolist() == _greedy_nms(boxes, scores, thr), (trial, thr)
    assert nms_torchvision(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0


def test_crops_are_the_means_of_torch_windows():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    s = integral_image(img)
    y, ey = np.array([1, 10, 40], np.int32), np.array([90, 33, 47], np.int32)  # 1-based, inclusive ends
    x, ex = np.array([1, 70, 5], np.int32), np.array([120, 119, 9], np.int32)
    out = _crops(s, y, ey, x, ex, 24)
    assert out.shape == (3, 3, 24, 24) and out.dtype == np.float32
    for n in range(3):
        reg = img[y[n] - 1 : ey[n], x[n] - 1 : ex[n]]
        lh, lw = reg.shape[:2]
        for i in range(24):
            ys, ye = (i * lh) // 24, -((-(i + 1) * lh) // 24)
            for j in range(24):
                xs, xe = (j * lw) // 24, -((-(j + 1) * lw) // 24)
                assert np.abs(out[n, :, i, j] - reg[ys:ye, xs:xe].reshape(-1, 3).mean(0)).max() < 1e-3


def _canvas(astro: np.ndarray, sides) -> np.ndarray:
    """Tiles of the astronaut's head (the face about half of a tile) on a grey canvas."""
    head = Image.fromarray(astro[30:210, 135:315])
    canvas = np.full((600, 1100, 3), 235, np.uint8)
    x = 10
    for side in sides:
        canvas[50 : 50 + side, x : x + side] = np.asarray(head.resize((side, side), Image.BILINEAR))
        x += side + 40
    return canvas


def test_coarse_to_fine_runs_fewer_scales_and_keeps_the_same_faces(det, astro):
    from labeler.config import DetectConfig
    from labeler.work import faces_of

    canvas = _canvas(astro, (400, 250, 150, 50))  # the smallest face is background next to the largest
    seen: list[tuple] = []
    run = det._run

    def counting(k, x):
        seen.append((k, x.shape))
        return run(k, x)

    det._run = counting
    try:
        one, _ = faces_of(det, canvas, DetectConfig(coarse_face=0))
        pixels_one = sum(s[2] * s[3] for k, s in seen if k == "pnet")
        seen.clear()
        two, _ = faces_of(det, canvas, DetectConfig(coarse_face=80))
        pixels_two = sum(s[2] * s[3] for k, s in seen if k == "pnet")
    finally:
        det._run = run
    assert len(one) == 3 and two == one
    assert pixels_two < 0.5 * pixels_one
    # when the first pass finds nothing that decides, every scale runs: exactly detect()
    assert det.detect_coarse_to_fine(canvas, 80, lambda found: 0.0) == det.detect(canvas)
    assert det.detect_coarse_to_fine(canvas, 20, lambda found: 1e9) == det.detect(canvas)
