"""Where is text in an image: PP-OCRv4's DB text detector (``models/text_det_ppocrv4.onnx``).

Only detection runs, no recognition: the question is *whether and where* an image carries text
(captions, watermarks, infographic labels, meme text), not what it says. The model is loaded
through its sidecar with the checksum verified (:func:`labeler.fer.cards.read_card`); a missing or
damaged file raises :class:`labeler.fer.cards.ModelFileError`, there is no fallback.

Pre- and post-processing are written here with numpy + cv2 (RapidOCR's needs pyclipper and
shapely): the BGR image is scaled up so its shorter side reaches ``min_side`` (small text in small
web images is missed otherwise) but its longer side stays within ``max_side``, both sides rounded to
multiples of 32, and normalised as ``(x/255 - 0.5) / 0.5``; the probability map is thresholded at
``bin_thresh``, dilated 2x2 (as RapidOCR does), split into connected components, and each component
whose mean probability reaches ``box_thresh`` becomes an axis-aligned box, grown by the DB "unclip"
distance ``area * unclip / perimeter`` on every side, and kept if its shape is that of a text line
(see MAX_FRAC below). ``share`` is the area of the union of the boxes over the image area.

Measured on the 128 dev web_keyword images (scripts/eval/eval_cleaning.py, 51 with text by eye), image
flag "any box": at the sides autolabel uses (480, 736; labeler.faces.cleaning) precision 0.96,
recall 0.90; at this class's defaults (640, 960) 0.90 and 0.92, at about twice the time per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import cv2
import numpy as np

from labeler.fer.cards import ModelCard, default_models_dir, read_card
from labeler.types import Box

CARD_NAME = "text_det_ppocrv4.json"


@dataclass(frozen=True)
class TextBox:
    box: Box  # x1, y1, x2, y2 in pixels of the image given
    score: float  # mean text probability inside the component


@dataclass(frozen=True)
class TextResult:
    boxes: tuple[TextBox, ...]
    share: float  # union of the boxes / image area, in [0, 1]

    @property
    def has_text(self) -> bool:
        return bool(self.boxes)


class TextDetector:
    """PP-OCRv4 det on onnxruntime (CPU). One instance per process; ``__call__`` is thread-safe."""

    def __init__(self, models_dir: Optional[Path | str] = None, threads: int = 2, min_side: int = 640,
                 max_side: int = 960, bin_thresh: float = 0.3, box_thresh: float = 0.5, unclip: float = 1.6):
        import onnxruntime as ort

        d = Path(models_dir) if models_dir is not None else default_models_dir()
        self.card: ModelCard = read_card(d / CARD_NAME)  # verifies sha256, raises ModelFileError
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.card.file), sess_options=so,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.min_side, self.max_side = int(min_side), int(max_side)
        self.bin_thresh, self.box_thresh = float(bin_thresh), float(box_thresh)
        self.unclip = float(unclip)

    def prob_map(self, rgb: np.ndarray) -> np.ndarray:
        """The text probability map (float32, same H x W as ``rgb``)."""
        h, w = rgb.shape[:2]
        r = max(1.0, self.min_side / min(h, w))  # small text in small images needs upscaling
        r = min(r, self.max_side / max(h, w))
        rh, rw = (max(32, int(round(h * r / 32)) * 32), max(32, int(round(w * r / 32)) * 32))
        bgr = cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), (rw, rh), interpolation=cv2.INTER_LINEAR)
        x = (bgr.astype(np.float32) * (2.0 / 255.0) - 1.0).transpose(2, 0, 1)[None]
        p = self.session.run(None, {self.input_name: x})[0][0, 0]
        return cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)

    def __call__(self, rgb: np.ndarray) -> TextResult:
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        return boxes_from_map(self.prob_map(rgb[..., :3]), self.bin_thresh, self.box_thresh, self.unclip)


#: shape rules for a component to count as text (measured on dev web_keyword, scripts/eval/eval_cleaning.py):
#: a box taller than MAX_FRAC of the image's short side is scenery (a sunset, a whole silhouette row);
#: a box taller than SMALL_FRAC of the short side must be a line (width >= MIN_ASPECT x height): the
#: detector also fires on eyes, teeth and rows of street lights, which are blobs, not lines.
MAX_FRAC, SMALL_FRAC, MIN_ASPECT = 0.3, 0.03, 2.5


def boxes_from_map(prob: np.ndarray, bin_thresh: float = 0.3, box_thresh: float = 0.5,
                   unclip: float = 1.6) -> TextResult:
    """Connected components of ``prob > bin_thresh`` -> text boxes (DB post-processing, axis-aligned)."""
    h, w = prob.shape
    short = min(h, w)
    mask = cv2.dilate((prob > bin_thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return TextResult((), 0.0)
    sums = np.bincount(lab.ravel(), weights=prob.ravel(), minlength=n)
    boxes: list[TextBox] = []
    union = np.zeros((h, w), np.uint8)
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        score = float(sums[i] / max(area, 1))
        if score < box_thresh or min(bw, bh) < 3:
            continue
        d = area * unclip / max(2 * (bw + bh), 1)  # DB unclip distance of the component
        x1, y1 = max(0.0, x - d), max(0.0, y - d)
        x2, y2 = min(float(w), x + bw + d), min(float(h), y + bh + d)
        bh2, bw2 = y2 - y1, x2 - x1
        if bh2 > MAX_FRAC * short or (bh2 > SMALL_FRAC * short and bw2 < MIN_ASPECT * bh2):
            continue
        boxes.append(TextBox((x1, y1, x2, y2), round(score, 4)))
        union[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = 1
    return TextResult(tuple(boxes), float(union.mean()))


_DEFAULT: Optional[TextDetector] = None


def text_regions(rgb: np.ndarray) -> TextResult:
    """Text boxes and text share of an RGB uint8 image, with the shipped detector (loaded once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = TextDetector()
    return _DEFAULT(rgb)


def text_near_face(text_boxes: Iterable[TextBox | Box], face_box: Box, margin: float = 0.1) -> bool:
    """True when a text box overlaps the face box grown by ``margin`` x its size on every side
    (text on or bordering the face: a caption under the chin, a watermark across it).

    A small box wholly inside the face box (narrower than half the face) is not counted: on dev the
    detector's misses on faces were teeth and eyes, which look like short lines; real text on a face
    (a watermark) is wider or crosses the face's edge."""
    fx1, fy1, fx2, fy2 = face_box
    fw, fh = fx2 - fx1, fy2 - fy1
    gx1, gy1, gx2, gy2 = fx1 - fw * margin, fy1 - fh * margin, fx2 + fw * margin, fy2 + fh * margin
    for t in text_boxes:
        x1, y1, x2, y2 = t.box if isinstance(t, TextBox) else t
        if not (x1 < gx2 and x2 > gx1 and y1 < gy2 and y2 > gy1):
            continue
        inside = x1 >= fx1 and y1 >= fy1 and x2 <= fx2 and y2 <= fy2
        if inside and (x2 - x1) < 0.5 * fw:
            continue
        return True
    return False
