"""The cleaning measurements of one image, in one call: perceptual hash, text (share of the image and
a flag per face), non-photo score, and a perceptual hash per face crop.

Run by ``labeler autolabel`` for every new image (in the worker, beside detection: see
:func:`labeler.work.process_image`) and by ``labeler clean`` for images stored before (the backfill,
which decodes each image again). The parts live in :mod:`labeler.faces.text`,
:mod:`labeler.faces.neardup` and :mod:`labeler.faces.nonphoto`; this module only puts them together
into typed records, and adds the face flag (``labeler.types.TEXT_FLAG``) that routing reads.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from labeler.faces import neardup
from labeler.faces.nonphoto import nonphoto_score
from labeler.faces.text import TextDetector, text_near_face
from labeler.types import TEXT_FLAG, Box, FaceClean, ImageClean

#: the text detector's input sides here (short side scaled up to, long side at most). On dev
#: web_keyword (scripts/eval/eval_cleaning.py): (480, 736) precision 0.96, recall 0.90; the detector's own
#: default (640, 960) 0.90 / 0.92 at about twice the time; (384, 608) 0.96 / 0.86 at 0.7x the time
PIPELINE_SIDES = (480, 736)

#: the long side cleaning measures a large image at (as detection's default ``[detect] max_side``)
MAX_SIDE = 1600

_DETECTORS: dict[int, TextDetector] = {}


def text_detector(threads: int = 1) -> TextDetector:
    """The shipped text detector with ``threads`` onnxruntime threads at :data:`PIPELINE_SIDES`,
    loaded once per process."""
    det = _DETECTORS.get(int(threads))
    if det is None:
        det = _DETECTORS[int(threads)] = TextDetector(threads=threads, min_side=PIPELINE_SIDES[0],
                                                      max_side=PIPELINE_SIDES[1])
    return det


def measured_copy(rgb: np.ndarray, boxes: Sequence[Box] = ()) -> tuple[np.ndarray, list[Box]]:
    """The image cleaning measures (long side at most :data:`MAX_SIDE`) and ``boxes`` scaled to it."""
    import cv2

    h, w = rgb.shape[:2]
    r = MAX_SIDE / max(h, w)
    if r >= 1:
        return rgb, list(boxes)
    small = cv2.resize(rgb, (max(1, round(w * r)), max(1, round(h * r))), interpolation=cv2.INTER_AREA)
    return small, [(b[0] * r, b[1] * r, b[2] * r, b[3] * r) for b in boxes]


def measure(rgb: np.ndarray, boxes: Sequence[Box], threads: int = 1,
            detector: Optional[TextDetector] = None, text: bool = True) -> ImageClean:
    """All cleaning measurements of an RGB uint8 image whose faces are ``boxes`` (whole-image faces
    included: text anywhere on such an image is on the face); with ``text`` off, all but text (the
    text detector is two thirds of the cost; text share and the faces' text flags are then None).
    A large image is measured on a copy whose long side is :data:`MAX_SIDE` (the text detector sees
    at most 736 px anyway): at full size the text map and its components cost ~24 bytes a pixel,
    about 1 GB for a 44 MP photo."""
    rgb, boxes = measured_copy(rgb, boxes)
    found = (detector or text_detector(threads))(rgb) if text else None
    faces = tuple(FaceClean(neardup.face_phash(rgb, b), None if found is None else text_near_face(found.boxes, b))
                  for b in boxes)
    share = None if found is None else round(float(found.share), 4)
    return ImageClean(neardup.phash(rgb), share, nonphoto_score(rgb).score, faces)


def with_text_flag(flags: Sequence[str], text_near: Optional[bool]) -> tuple[str, ...]:
    """A face's flags with :data:`TEXT_FLAG` added (once) when text is on or beside it."""
    out = tuple(f for f in flags if f != TEXT_FLAG)
    return out + (TEXT_FLAG,) if text_near else out
