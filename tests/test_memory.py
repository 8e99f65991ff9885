"""Bounded memory: one 44 MP JPEG (a sample photo upscaled, generated here) is labeled in one
process under 1 GB peak RSS, by detecting on a copy capped at ``[detect] max_side`` and decoding in
strips; and detection on the capped copy finds the faces full resolution finds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from labeler.faces.detect import detect_capped, get_detector
from labeler.ingest.imageio import decode

from .conftest import SAMPLE

GB = 1 << 30


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _upscaled(path, size, out):
    Image.open(SAMPLE / path).convert("RGB").resize(size, Image.BICUBIC).save(out, quality=90)
    return out


def test_capped_detection_finds_the_full_resolution_faces():
    """The team photo (1,000 px) on a 700 px copy: the faces found are those found at full
    resolution, mapped back (box IoU >= 0.85: MTCNN's boxes move that much with the pyramid's
    alignment alone, see scripts/eval/eval_detect_cap.py; landmarks within 3% of the face size)."""
    rgb = decode((SAMPLE / "happy_team_photo.jpg").read_bytes()).rgb
    det = get_detector("mtcnn")
    full = [d for d in det.detect(rgb) if d.score >= 0.9]
    capped = [d for d in detect_capped(det, rgb, 700) if d.score >= 0.9]
    assert len(full) >= 3 and len(capped) == len(full)
    for f in full:
        c = max(capped, key=lambda c: _iou(c.box, f.box))
        assert _iou(c.box, f.box) >= 0.85
        side = f.box[2] - f.box[0]
        assert np.abs(np.asarray(c.landmarks) - np.asarray(f.landmarks)).max() < 0.03 * side
    assert detect_capped(det, rgb, 0) == det.detect(rgb)  # 0: no cap


def _peak_rss_of(cmd: list[str]) -> int:
    """Peak RSS (bytes) of the largest process ``cmd`` ran, measured in a fresh parent."""
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) * 1024


@pytest.mark.slow  # about 15-25 s: a 44 MP JPEG is written, decoded and labeled
def test_a_44_megapixel_jpeg_is_labeled_under_1_gb(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _upscaled("happy_team_photo.jpg", (8120, 5420), src / "team_44mp.jpg")
    cmd = [sys.executable, "-m", "labeler.cli", "autolabel", str(src), "--db", str(tmp_path / "m.db"), "--workers", "1", "-q"]
    peak = _peak_rss_of(cmd)
    assert peak < 1 * GB, f"peak RSS {peak / GB:.2f} GB"
    out = subprocess.run([sys.executable, "-m", "labeler.cli", "status", "--db", str(tmp_path / "m.db")],
                         capture_output=True, text=True, check=True).stdout
    faces = int(next(l for l in out.splitlines() if l.startswith("faces")).split()[-1])
    assert faces >= 3  # the team's faces, found on the capped copy


@pytest.mark.slow  # ~40 s: a 200 MP JPEG is written (0.8 GB in this process for a moment), then labeled
@pytest.mark.parametrize("size", [(8000, 6000), (16320, 12240)], ids=["48MP", "200MP"])
def test_phone_and_camera_photos_of_48_and_200_megapixels_are_labeled_under_1_gb(tmp_path, size):
    """Issue 35: both were stored as broken ("decompression bomb"). Decoded at 1/2 and 1/4 a side
    (JPEG draft mode), they are labeled in one process under 1 GB peak RSS, the team's faces found,
    the image stored at its full size."""
    src = tmp_path / "in"
    src.mkdir()
    team = Image.open(SAMPLE / "happy_team_photo.jpg").convert("RGB")
    h = round(team.height * size[0] / team.width)
    canvas = Image.new("RGB", size, (120, 120, 120))
    canvas.paste(team.resize((size[0], h), Image.BICUBIC), (0, (size[1] - h) // 2))
    canvas.save(src / "IMG_0001.jpg", quality=85)
    del canvas
    db = str(tmp_path / "m.db")
    peak = _peak_rss_of([sys.executable, "-m", "labeler.cli", "autolabel", str(src), "--db", db, "--workers", "1", "-q"])
    assert peak < 1 * GB, f"peak RSS {peak / GB:.2f} GB"
    from labeler.store import Image as ImageRow, Store, status_counts

    store = Store(f"sqlite:///{db}")
    with store.session() as s:
        img = s.query(ImageRow).one()
        assert (img.status, img.width, img.height) == ("ingested", *size)
    assert status_counts(store)["faces"] >= 3  # the team's faces
