"""Build sample_data/video/two_shots.mp4 (and its expected tracks/segments) from shipped images.

Source: ``sample_data/smiling_astronaut.png`` (Eileen Collins, NASA portrait, public domain; see
scripts/make/make_sample_data.py). The second expression is made here from the same face: the mouth is
painted out (cv2.inpaint) and replaced by an open "O", and the eyes are widened.

The clip (6 s, 10 fps, 320x240, MPEG-4 Part 2 'mp4v' in MP4, about 0.1 MB):

- shot 0, frames 0-31 (0-3.1 s): two people (the portrait and its mirror image, so they look
  alike and only position tells them apart) drifting towards each other on a blue background;
- a cut at frame 32 (3.2 s) to a warm background;
- shot 1, frames 32-59: one person, larger, drifting and zooming slowly; smiling until frame 44,
  the edited face from frame 45 (4.5 s) on.

Written next to it: ``two_shots.json`` with the cut, the tracks and the segments by construction
(frame numbers), for tests/test_video.py. Run: ``python scripts/make/make_sample_video.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "sample_data" / "smiling_astronaut.png"
OUT = ROOT / "sample_data" / "video"
W, H, FPS, N = 320, 240, 10, 60
CUT, SWITCH = 32, 45
HEAD = (140, 20, 310, 210)  # head and shoulders of the portrait (x1, y1, x2, y2)
# landmarks of the portrait's face (MTCNN on smiling_astronaut.png, rounded): eyes, mouth corners
EYES = ((205, 102), (247, 104))
MOUTH = ((202, 139), (245, 142))


def edited_face(img: np.ndarray) -> np.ndarray:
    """The portrait with an open "O" mouth and widened eyes (a second expression)."""
    (lx, ly), (rx, ry) = MOUTH
    cx, cy, w = (lx + rx) // 2, (ly + ry) // 2, int(0.8 * np.hypot(rx - lx, ry - ly))
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(mask, (cx, cy + 3), (w, int(w * 0.55)), 0, 0, 360, 255, -1)
    out = cv2.inpaint(img, mask, 5, cv2.INPAINT_TELEA)
    cv2.ellipse(out, (cx, cy + 6), (11, 17), 0, 0, 360, (50, 15, 20), -1, cv2.LINE_AA)
    h, wd = out.shape[:2]
    yy, xx = np.mgrid[0:h, 0:wd].astype(np.float32)
    for ex, ey in EYES:  # magnify a disc around each eye by up to 1.5x
        mx, my = xx - ex, yy - ey
        d = np.sqrt(mx**2 + my**2)
        s = np.where(d < 22.4, 1.0 / (1.5 - 0.5 * d / 22.4), 1.0)
        out = cv2.remap(out, (ex + mx * s).astype(np.float32), (ey + my * s).astype(np.float32), cv2.INTER_LINEAR)
    return out


def gradient(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    t = np.linspace(0.0, 1.0, H)[:, None, None]
    return (np.array(top) * (1 - t) + np.array(bottom) * t).repeat(W, axis=1).astype(np.uint8)


def paste(canvas: np.ndarray, img: np.ndarray, x: float, y: float, w: int) -> None:
    h = round(w * img.shape[0] / img.shape[1])
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    x, y = int(round(x)), int(round(y))
    x1, y1, x2, y2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    canvas[y1:y2, x1:x2] = small[y1 - y : y2 - y, x1 - x : x2 - x]


def frames(astro: np.ndarray) -> list[np.ndarray]:
    x1, y1, x2, y2 = HEAD
    happy, other = astro[y1:y2, x1:x2], edited_face(astro)[y1:y2, x1:x2]
    mirror = np.ascontiguousarray(happy[:, ::-1])
    blue, warm = gradient((70, 110, 170), (20, 40, 90)), gradient((235, 200, 150), (160, 90, 60))
    out = []
    for i in range(N):
        if i < CUT:
            f = blue.copy()
            paste(f, happy, 20 + 0.6 * i, 60 + 0.2 * i, 100)
            paste(f, mirror, 195 - 0.6 * i, 70 - 0.2 * i, 100)
        else:
            k = i - CUT
            f = warm.copy()
            paste(f, happy if i < SWITCH else other, 85 + 0.8 * k, 25 - 0.3 * k, 150 + k // 3)
        out.append(f)
    return out


def expected(fps: float = 2.0) -> dict:
    step = FPS / fps
    grid = [i for i in range(N) if i % step == 0]
    sampled = sorted(set(grid) | {CUT})
    shot0 = [i for i in sampled if i < CUT]
    shot1 = [i for i in sampled if i >= CUT]
    return {
        "file": "two_shots.mp4",
        "width": W, "height": H, "fps": FPS, "frames": N, "duration_ms": 1000 * N / FPS,
        "sample_fps": fps,
        "sampled_frames": sampled,
        "cuts": [{"frame": CUT, "t_ms": 1000 * CUT / FPS}],
        "tracks": [
            {"shot": 0, "who": "left person (portrait)", "frames": shot0, "label": "happy"},
            {"shot": 0, "who": "right person (mirror image)", "frames": shot0, "label": "happy"},
            {"shot": 1, "who": "one person, expression changes", "frames": shot1, "label": "happy",
             "segments": [
                 {"label": "happy", "frames": [i for i in shot1 if i < SWITCH]},
                 {"label": "surprise", "frames": [i for i in shot1 if i >= SWITCH]},
             ]},
        ],
        "note": ("a track's label is the argmax of its mean probabilities, a segment's that of its frames; labels are the shipped default FER model's proposals (fer-ferplus-cnn); the edited face "
                 "(open O mouth, wide eyes) is proposed 'surprise' by it, as a person would say (the mini-Xception said 'angry')"),
    }


def main() -> None:
    astro = np.asarray(Image.open(SRC).convert("RGB"))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "two_shots.mp4"
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    if not wr.isOpened():
        raise SystemExit("cv2.VideoWriter cannot write mp4v here")
    for f in frames(astro):
        wr.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    wr.release()
    (OUT / "two_shots.json").write_text(json.dumps(expected(), indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size:,} bytes) and two_shots.json")


if __name__ == "__main__":
    main()
