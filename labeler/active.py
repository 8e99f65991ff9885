"""Active learning: the order of the review queue (pure; the store gathers the inputs).

What helps the model most comes first: faces the model is unsure of, faces proposed as a class the
project's human labels barely cover yet, and faces from folders (regions of the data) with few human
labels; the routing priority (reason kind + entropy) counts a little. A photo's value is that of its
most useful face; photos are served whole, their faces in reading order (top-to-bottom rows,
left-to-right within a row), and a photo already started (some faces labeled) is finished first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

#: weights of the terms of a face's value
W_UNCERTAIN = 2.0  # 1 - the model's top probability
W_CLASS = 1.0  # / sqrt(1 + human labels of the proposed class)
W_REGION = 1.0  # / sqrt(1 + human labels in the face's folder)
W_ROUTING = 0.25  # the routing priority (kind weight + entropy, about 0.5-4)


@dataclass(frozen=True)
class QueueFace:
    """One face waiting for review, as the ordering sees it."""

    face_id: int
    image_id: int
    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    priority: float = 0.0  # the routing decision's priority
    top_prob: Optional[float] = None  # the model's top probability (None: no proposal)
    label: Optional[str] = None  # the proposed class
    folder: str = ""


@dataclass(frozen=True)
class Coverage:
    """What the project's human labels cover: counts per class and per folder."""

    per_class: Mapping[str, int] = field(default_factory=dict)
    per_folder: Mapping[str, int] = field(default_factory=dict)
    started_images: frozenset = frozenset()  # images with a human-labeled face


def face_value(f: QueueFace, cov: Coverage) -> float:
    unc = 1.0 - (f.top_prob if f.top_prob is not None else 0.0)
    cls = (1.0 / math.sqrt(1 + cov.per_class.get(f.label, 0))) if f.label else 0.5
    reg = 1.0 / math.sqrt(1 + cov.per_folder.get(f.folder, 0))
    return W_UNCERTAIN * unc + W_CLASS * cls + W_REGION * reg + W_ROUTING * f.priority


def reading_order(boxes: Sequence[tuple[int, float, float, float, float]]) -> list[int]:
    """Face ids of a photo's ``(face_id, x1, y1, x2, y2)`` boxes in reading order: rows top to bottom
    (taken by vertical centre, a face joins the current row when its centre is within half the
    median face height of the row's first face's centre), left to right by horizontal centre within
    a row; ties by face id. The one rule of the review queue (:func:`queue_order`) and the Image page
    (labeler/ui/views/image.py)."""
    if not boxes:
        return []
    hs = sorted(max(b[4] - b[2], 0.0) for b in boxes)
    tol = 0.5 * hs[len(hs) // 2]
    rows: list[list[tuple[float, float, int]]] = []
    for fid, x1, y1, x2, y2 in sorted(boxes, key=lambda b: ((b[2] + b[4]) / 2, (b[1] + b[3]) / 2, b[0])):
        cy, cx = (y1 + y2) / 2, (x1 + x2) / 2
        if rows and abs(cy - rows[-1][0][0]) <= tol:
            rows[-1].append((cy, cx, fid))
        else:
            rows.append([(cy, cx, fid)])
    return [fid for row in rows for _cy, _cx, fid in sorted(row, key=lambda t: (t[1], t[2]))]


def queue_order(faces: Sequence[QueueFace], cov: Coverage = Coverage()) -> list[int]:
    """Face ids in review order: photos by (started first, value desc, image id), faces of a photo
    together in reading order."""
    by_img: dict[int, list[QueueFace]] = {}
    for f in faces:
        by_img.setdefault(f.image_id, []).append(f)

    def key(iid: int):
        return (iid not in cov.started_images, -max(face_value(f, cov) for f in by_img[iid]), iid)

    return [fid for iid in sorted(by_img, key=key) for fid in reading_order([(f.face_id, *f.box) for f in by_img[iid]])]
