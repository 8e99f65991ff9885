"""Face geometry: registry, filtering, aligned crops, quality flags, whole-image rule."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from PIL import Image

from labeler.faces import detect as faces
from labeler.config import DetectConfig
from labeler.types import Detection

from .conftest import SAMPLE


@pytest.fixture(scope="module")
def astro() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE / "smiling_astronaut.png").convert("RGB"))


@pytest.fixture(scope="module")
def det():
    return faces.get_detector("mtcnn")


def _d(x1, y1, x2, y2, score=0.99, lm=None) -> Detection:
    return Detection(box=(x1, y1, x2, y2), score=score, landmarks=lm)


def test_registry_caches_instances(det):
    assert isinstance(det, faces.Detector)
    assert faces.get_detector("mtcnn") is det
    assert faces.get_detector("mtcnn", min_face_size=30) is not det
    with pytest.raises(ValueError, match="unknown detector"):
        faces.get_detector("nope")


def test_filter_drops_background_small_and_low_score():
    main = _d(100, 100, 300, 320, 0.999)
    bg = _d(10, 10, 40, 42, 0.99)  # 30 px next to a 200 px face: background person
    weak = _d(400, 100, 560, 260, 0.6)
    tiny = _d(0, 0, 12, 12, 0.99)
    kept, dropped = faces.filter_detections([main, bg, weak, tiny], 640, 480)
    assert kept == [main]
    reasons = {d.box: r for d, r in dropped}
    assert reasons[bg.box] == "background" and reasons[weak.box] == "low_score" and reasons[tiny.box] == "small"
    # two similar faces are both kept
    other = _d(350, 120, 520, 300, 0.98)
    kept, _ = faces.filter_detections([main, other], 640, 480)
    assert kept == [main, other]
    assert faces.filter_detections([], 10, 10) == ([], [])


def test_align_crop_levels_the_eyes_after_rotation(det, astro):
    m = cv2.getRotationMatrix2D((256, 256), 20, 1.0)
    rot = cv2.warpAffine(astro, m, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    (f,) = [x for x in det.detect(rot) if x.score > 0.9]
    assert abs(abs(faces.eye_angle(f)) - 20) < 5  # the detector sees the tilt
    crop = faces.align_crop(rot, f, size=112, margin=0.25)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    # landmarks mapped through the crop's affine: eye line horizontal
    t = faces.crop_transform(f, 112, 0.25)
    (lx, ly), (rx, ry) = (t @ np.array([*f.landmarks[i], 1.0]) for i in (0, 1))
    assert abs(math.degrees(math.atan2(ry - ly, rx - lx))) < 1
    # and the detector agrees on the crop itself
    again = [x for x in det.detect(cv2.resize(crop, (224, 224))) if x.score > 0.9]
    assert len(again) == 1 and abs(faces.eye_angle(again[0])) < 5


def test_align_crop_without_landmarks_is_axis_aligned(astro):
    f = _d(181, 62, 268, 172)
    crop = faces.align_crop(astro, f, size=64, margin=0.0)
    side = 110  # max(w, h) of the box
    cx, cy = (181 + 268) / 2, (62 + 172) / 2
    ref = cv2.resize(astro[int(cy - side / 2) : int(cy + side / 2), int(cx - side / 2) : int(cx + side / 2)], (64, 64), interpolation=cv2.INTER_AREA)
    assert crop.shape == (64, 64, 3)
    assert np.abs(crop.astype(int) - ref.astype(int)).mean() < 12


def test_negative_margin_crops_inside_the_box(astro):
    """The default crop ([crop] margin -0.10, FER2013's framing) is the box's central 80%."""
    from labeler.config import CropConfig

    assert CropConfig().margin == pytest.approx(-0.10)
    f = _d(150, 60, 250, 160)  # 100 px box
    crop = faces.align_crop(astro, f, size=80, margin=-0.10)  # 80 px of the box at 1:1 scale
    ref = astro[70:150, 160:240]
    assert crop.shape == (80, 80, 3)
    assert np.abs(crop.astype(int) - ref.astype(int)).mean() < 2
    wide = faces.align_crop(astro, f, size=80, margin=0.05)
    assert np.abs(wide.astype(int) - ref.astype(int)).mean() > 5  # a different framing


def test_quality_and_flags(det, astro):
    (f,) = det.detect(astro)
    q = faces.quality(astro, f)
    assert set(q) == {"det_score", "size", "blur", "yaw"}
    assert 80 < q["size"] < 120 and abs(q["yaw"]) < 15 and q["blur"] > 50
    assert faces.quality_flags(q, DetectConfig()) == ()
    blurred = cv2.GaussianBlur(astro, (0, 0), 6)
    qb = faces.quality(blurred, f)
    assert qb["blur"] < q["blur"] / 5 and "blurry" in faces.quality_flags(qb, DetectConfig())
    # nose over the right eye: profile
    lm = ((100.0, 100.0), (140.0, 100.0), (139.0, 120.0), (105.0, 140.0), (135.0, 140.0))
    side = faces.quality(astro, _d(90, 80, 150, 150, 0.5, lm))
    assert side["yaw"] > 60
    assert set(faces.quality_flags(side, {"small_px": 80})) >= {"small", "profile", "low_score"}


def test_whole_image_rule():
    whole = faces.whole_image_face(48, 48)
    assert whole.box == (0.0, 0.0, 48.0, 48.0) and whole.score == 0.0 and whole.landmarks is None
    assert faces.is_face_crop_candidate(48, 48, [])  # FER-style crop
    assert faces.is_face_crop_candidate(150, 120, [])
    assert faces.is_face_crop_candidate(240, 224, [])  # near-square, face sized
    assert not faces.is_face_crop_candidate(11, 11, [])  # too small to label
    assert not faces.is_face_crop_candidate(400, 267, [])  # ordinary photo, no face
    assert not faces.is_face_crop_candidate(600, 600, [])
    big = _d(20, 10, 580, 590, 0.5)
    assert faces.is_face_crop_candidate(600, 600, [big])  # one low-score face filling the image
    assert not faces.is_face_crop_candidate(600, 600, [_d(20, 20, 120, 120, 0.5)])
    # a kept face: whole image only for one face filling a face-sized image
    fill = _d(7, 4, 37, 44, 0.99)
    assert faces.is_face_crop_candidate(48, 48, [fill], kept=[fill])
    assert not faces.is_face_crop_candidate(48, 48, [fill, fill], kept=[fill, fill])
    assert not faces.is_face_crop_candidate(600, 600, [big], kept=[big])  # close-up photo: aligned crop
    part = _d(10, 10, 40, 40, 0.99)
    assert not faces.is_face_crop_candidate(150, 150, [part], kept=[part])


def test_48px_crop_is_a_whole_image_face(det):
    rgb = np.asarray(Image.open(SAMPLE / "crops" / "happy_crop_48px.png").convert("RGB"))
    dets = det.detect(rgb)
    kept, _ = faces.filter_detections(dets, 48, 48)
    assert faces.is_face_crop_candidate(48, 48, dets, kept=kept)


def test_sample_no_face_images_stay_no_face(det):
    for name in ("coffee_cup.jpg", "shocked_cat.jpg"):
        rgb = np.asarray(Image.open(SAMPLE / name).convert("RGB"))
        h, w = rgb.shape[:2]
        dets = det.detect(rgb)
        kept, _ = faces.filter_detections(dets, w, h)
        assert kept == [] and not faces.is_face_crop_candidate(w, h, dets), name


def test_faces_to_label_one_rule_one_set_of_thresholds():
    from labeler.config import DetectConfig

    # the config's defaults are the faces module's thresholds, not a second copy
    assert (DetectConfig().whole_image_min_side, DetectConfig().whole_image_max_side) == (faces.WHOLE_MIN_SIDE, faces.WHOLE_SMALL_SIDE)
    fill = _d(7, 4, 37, 44, 0.99)
    got, whole = faces.faces_to_label(48, 48, [fill], [fill])  # small, one kept face: the whole image, its score kept
    assert whole and got[0].box == (0.0, 0.0, 48.0, 48.0) and got[0].score == 0.99 and got[0].landmarks is None
    got, whole = faces.faces_to_label(48, 48, [], [])  # small, nothing found: the whole image, score 0
    assert whole and got[0].score == 0.0
    two = [_d(10, 10, 60, 60, 0.99), _d(100, 10, 150, 60, 0.99)]
    assert faces.faces_to_label(160, 120, two, two) == (two, False)  # two faces: never one whole image
    assert faces.faces_to_label(600, 400, [], []) == ([], False)  # an ordinary photo without faces
    assert faces.faces_to_label(11, 11, [], []) == ([], False)  # too small to label
    # thresholds are parameters: a 100 px image is "small" by default, not with small_side=90
    assert faces.faces_to_label(100, 100, [fill], [fill])[1]
    assert faces.faces_to_label(300, 200, [fill], [fill], small_side=90) == ([fill], False)


def test_needed_size_is_the_smallest_face_filter_could_keep():
    big = Detection((0, 0, 200, 240), 0.99, None)
    weak = Detection((0, 0, 400, 400), 0.5, None)  # too weak to count as the largest face
    assert faces.needed_size([big, weak], 640, 480, margin=1.0) == pytest.approx(50.0)  # 0.25 x 200
    assert faces.needed_size([big], 640, 480, margin=0.5) == pytest.approx(25.0)
    assert faces.needed_size([Detection((0, 0, 60, 60), 0.99, None)], 640, 480, margin=1.0) == 20.0  # min_size
    assert faces.needed_size([weak], 640, 480) == 0.0  # nothing kept yet: every size is needed
    assert faces.needed_size([], 640, 480) == 0.0
