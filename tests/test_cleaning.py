"""Cleaning flags on generated images and sample_data: text regions, near-duplicate groups,
non-photo score. Never reads ../shared."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from labeler.faces import neardup
from labeler.faces.nonphoto import nonphoto_score
from labeler.faces.text import TextBox, TextDetector, text_near_face
from labeler.fer.cards import ModelFileError
from labeler.ingest.imageio import decode

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
PHOTOS = ["smiling_astronaut.png", "coffee_cup.jpg", "shocked_cat.jpg", "笑顔_laughing-woman.jpg"]


def _rgb(name: str) -> np.ndarray:
    return decode((SAMPLE / name).read_bytes()).rgb


def _photo_like(h: int = 360, w: int = 540, seed: int = 0) -> np.ndarray:
    """A smooth two-colour gradient with soft blobs and sensor-like noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([90 + 80 * xx / w, 110 + 60 * yy / h, 140 - 50 * xx / w], axis=2)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(30, 90)
        img += (rng.uniform(-40, 40, 3) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None])
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


@pytest.fixture(scope="module")
def text_det() -> TextDetector:
    return TextDetector(threads=1)


# ------------------------------------------------------------------ text
def test_rendered_text_is_found_and_plain_photo_is_not(text_det):
    plain = _photo_like()
    with_text = plain.copy()
    cv2.putText(with_text, "SALE 50% OFF", (40, 300), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (255, 255, 255), 3)
    found = text_det(with_text)
    assert found.has_text and 0.01 < found.share < 0.3
    x1, y1, x2, y2 = max(found.boxes, key=lambda b: b.score).box
    assert y1 < 300 < y2 + 5 and x1 < 60 and x2 > 250  # the box is where the text was drawn
    assert not text_det(plain).has_text
    assert text_det(plain).share == 0.0


@pytest.mark.parametrize("name", PHOTOS)
def test_sample_photos_have_no_text(text_det, name):
    assert not text_det(_rgb(name)).has_text


def test_text_near_face_borders_overlaps_and_ignores_features():
    face = (100.0, 100.0, 200.0, 200.0)
    assert text_near_face([TextBox((90, 205, 220, 225), 0.9)], face)  # caption just under the chin
    assert text_near_face([(50, 140, 260, 160)], face)  # watermark across the face
    assert not text_near_face([(100, 260, 200, 280)], face)  # 60 px below: not bordering
    assert not text_near_face([(130, 165, 170, 180)], face)  # small box inside the face (teeth)


def test_damaged_model_is_refused(tmp_path):
    for name in ("text_det_ppocrv4.json", "text_det_ppocrv4.onnx"):
        (tmp_path / name).write_bytes((ROOT / "models" / name).read_bytes())
    meta = json.loads((tmp_path / "text_det_ppocrv4.json").read_text())
    assert meta["kind"] == "text-det" and meta["licence"] == "Apache-2.0"
    assert (ROOT / "models" / meta["licence_file"]).is_file()
    with open(tmp_path / "text_det_ppocrv4.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\0\0\0\0")
    with pytest.raises(ModelFileError, match="checksum"):
        TextDetector(models_dir=tmp_path)


# ------------------------------------------------------------------ near-duplicates
def test_resized_reencoded_copies_are_one_group_and_another_photo_is_not():
    photo = _rgb("smiling_astronaut.png")
    h, w = photo.shape[:2]
    a = _jpeg(cv2.resize(photo, (w // 2, h // 2), interpolation=cv2.INTER_AREA), 60)
    b = _jpeg(cv2.resize(photo, (int(w * 0.8), int(h * 0.8)), interpolation=cv2.INTER_LINEAR), 85)
    others = [_rgb(n) for n in ("coffee_cup.jpg", "shocked_cat.jpg", "笑顔_laughing-woman.jpg")]
    hashes = [neardup.phash(x) for x in (photo, a, b, *others)]
    ids = neardup.group_ids(hashes)
    assert ids[0] == ids[1] == ids[2]
    assert len(set(ids[3:]) | {ids[0]}) == 4, [neardup.hamming(hashes[0], x) for x in hashes]
    assert neardup.groups(hashes) == [[0, 1, 2]]


def test_face_crop_hash_follows_the_face():
    photo = _rgb("smiling_astronaut.png")
    box = (160.0, 40.0, 330.0, 250.0)
    small = cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA)
    half = tuple(v / 2 for v in box)
    assert neardup.hamming(neardup.face_phash(photo, box), neardup.face_phash(_jpeg(small, 70), half)) <= 6
    assert neardup.hamming(neardup.face_phash(photo, box), neardup.face_phash(photo, (0, 300, 170, 510))) > 6


def test_close_pairs_is_exact_against_brute_force():
    rnd = random.Random(1)
    base = [rnd.getrandbits(64) for _ in range(40)]
    hashes = base + [h ^ sum(1 << rnd.randrange(64) for _ in range(rnd.randrange(12))) for h in base]
    for d in (0, 3, 6, 10):
        brute = [(i, j, neardup.hamming(hashes[i], hashes[j])) for i in range(len(hashes))
                 for j in range(i + 1, len(hashes)) if neardup.hamming(hashes[i], hashes[j]) <= d]
        assert neardup.close_pairs(hashes, d) == brute


def test_same_key_joins_groups_and_signed_roundtrip():
    assert neardup.group_ids([0, (1 << 64) - 1, 12345], 2, same=["x", "y", "x"]) == [0, 1, 0]
    for h in (0, 1, (1 << 63), (1 << 64) - 1):
        s = neardup.to_signed(h)
        assert -(1 << 63) <= s < (1 << 63) and neardup.from_signed(s) == h


# ------------------------------------------------------------------ non-photo
def _emoji() -> np.ndarray:
    img = np.full((300, 300, 3), 255, np.uint8)
    cv2.circle(img, (150, 150), 120, (250, 200, 30), -1, cv2.LINE_AA)
    cv2.circle(img, (150, 150), 120, (40, 40, 40), 4, cv2.LINE_AA)
    for x in (105, 195):
        cv2.circle(img, (x, 120), 16, (40, 40, 40), -1, cv2.LINE_AA)
    cv2.ellipse(img, (150, 190), (55, 30), 0, 0, 180, (40, 40, 40), 6, cv2.LINE_AA)
    return img


def _cartoon() -> np.ndarray:
    img = np.full((320, 240, 3), (230, 240, 250), np.uint8)
    cv2.rectangle(img, (60, 200), (180, 320), (70, 110, 200), -1)
    cv2.circle(img, (120, 120), 70, (245, 205, 170), -1)
    cv2.circle(img, (120, 120), 70, (20, 20, 20), 3)
    cv2.ellipse(img, (120, 70), (72, 35), 0, 180, 360, (60, 40, 20), -1)
    for x in (95, 145):
        cv2.circle(img, (x, 115), 9, (20, 20, 20), -1)
    cv2.line(img, (100, 160), (140, 160), (20, 20, 20), 3)
    return img


def test_nonphoto_ranks_drawings_above_photos():
    drawn = [nonphoto_score(x) for x in (_emoji(), _cartoon())]
    photos = [nonphoto_score(_rgb(n)) for n in PHOTOS] + [nonphoto_score(_photo_like(seed=3))]
    assert min(s.score for s in drawn) > max(s.score for s in photos)
    assert all(s.is_nonphoto for s in drawn) and not any(s.is_nonphoto for s in photos)
    assert all(0.0 <= s.score <= 1.0 for s in drawn + photos)


def test_nonphoto_sees_a_grid_of_panels():
    panel = cv2.resize(_rgb("smiling_astronaut.png"), (120, 120), interpolation=cv2.INTER_AREA)
    sheet = np.full((2 * 120 + 30, 3 * 120 + 40, 3), 255, np.uint8)
    for r in range(2):
        for c in range(3):
            sheet[10 + r * 130:130 + r * 130, 10 + c * 130:130 + c * 130] = panel
    assert nonphoto_score(sheet).grid > 0.5
    assert nonphoto_score(_rgb("smiling_astronaut.png")).grid == 0.0
    assert nonphoto_score(sheet).score > nonphoto_score(_rgb("smiling_astronaut.png")).score
