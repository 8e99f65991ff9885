"""Face detectors behind one interface, plus face geometry: filtering, aligned crops, quality.

No database here. A detector is anything with ``name``, ``version`` and
``detect(rgb) -> list[Detection]``; :func:`get_detector` builds the registered ones once per process.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from labeler.types import Detection


@runtime_checkable
class Detector(Protocol):
    name: str
    version: str

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces of an HxWx3 uint8 RGB image, best score first."""
        ...


def _make_mtcnn(**kw: Any) -> Detector:
    from labeler.faces.mtcnn import MTCNNDetector

    return MTCNNDetector(**kw)


#: name -> factory(**kwargs) returning a Detector
DETECTORS: dict[str, Callable[..., Detector]] = {"mtcnn": _make_mtcnn}

_CACHE: dict[tuple, Detector] = {}
_LOCK = threading.Lock()


def _freeze(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return str(v) if not isinstance(v, (int, float, str, bool, type(None))) else v


def get_detector(name: str = "mtcnn", **kw: Any) -> Detector:
    """The detector ``name`` built with ``kw``; one instance per (name, settings) per process."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; expected one of {', '.join(sorted(DETECTORS))}")
    key = (name, _freeze(kw))
    with _LOCK:
        det = _CACHE.get(key)
        if det is None:
            det = _CACHE[key] = DETECTORS[name](**kw)
        return det


# ---------------------------------------------------------------- capped detection size
#: default cap on the long side of the copy that detection sees (config ``[detect] max_side``)
MAX_SIDE = 1600


#: default smallest face of the coarse first pass (config ``[detect] coarse_face``; 0: one pass)
COARSE_FACE = 80
#: the fine pass looks for faces down to this fraction of the smallest size that can still be kept
#: (MTCNN finds a face at the scales around its size; measured in scripts/eval/eval_detect_cap.py)
NEED_MARGIN = 0.7


def detect_capped(detector: Detector, rgb: np.ndarray, max_side: int = MAX_SIDE,
                  needed: Optional[Callable[[list[Detection]], float]] = None, coarse_face: int = 0) -> list[Detection]:
    """``detector.detect`` on a copy of ``rgb`` whose long side is at most ``max_side`` px
    (cv2.INTER_AREA), boxes and landmarks mapped back to ``rgb``'s pixels. ``max_side`` 0 (or an
    image already small enough) detects on ``rgb`` itself. The detector's minimum face size then
    applies to the copy: on a photo twice the cap it becomes twice as large in the original.

    Large photos cost the P-Net pyramid time and memory in proportion to their pixels (an 11 MP
    photo took 8 of the 18 s of 40 web photos; a 44 MP one peaked at 3.2 GB); faces that small
    in the copy would be dropped as background next to the main face anyway.

    With ``coarse_face`` and ``needed`` (faces in ``rgb``'s pixels -> the smallest face size that
    can still be kept there, 0 for all; see :func:`needed_size`), a detector that has
    ``detect_coarse_to_fine`` looks for faces of ``coarse_face`` px (in the copy) and more first,
    and then only down to the size ``needed`` asks for."""
    h, w = rgb.shape[:2]
    s = 1.0
    small = np.ascontiguousarray(rgb)
    if max_side and max(h, w) > max_side:
        import cv2

        s = max_side / float(max(h, w))
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        small = cv2.resize(small, (nw, nh), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    sx, sy = w / sw, h / sh

    def back(dets: list[Detection]) -> list[Detection]:
        if (sw, sh) == (w, h):
            return dets
        out = []
        for d in dets:
            x1, y1, x2, y2 = d.box
            lm = None if d.landmarks is None else tuple((x * sx, y * sy) for x, y in d.landmarks)
            out.append(Detection(box=(x1 * sx, y1 * sy, x2 * sx, y2 * sy), score=d.score, landmarks=lm))
        return out

    two_pass = getattr(detector, "detect_coarse_to_fine", None)
    if needed is None or not coarse_face or two_pass is None:
        return back(detector.detect(small))
    return back(two_pass(small, coarse_face, lambda dets: needed(back(dets)) / max(sx, sy)))


def scaled(det: Detection, s: float) -> Detection:
    """``det`` with its box and landmarks multiplied by ``s`` (pixels of a reduced image -> full size)."""
    if s == 1.0:
        return det
    lm = None if det.landmarks is None else tuple((x * s, y * s) for x, y in det.landmarks)
    return Detection(box=tuple(v * s for v in det.box), score=det.score, landmarks=lm)


def needed_size(dets: Sequence[Detection], img_w: int, img_h: int, min_score: float = 0.9, min_rel_size: float = 0.25,
                min_size: float = 20, margin: float = NEED_MARGIN) -> float:
    """The smallest face size (px, short side of the box) that :func:`filter_detections` could
    still keep next to ``dets`` (faces of the largest sizes), times ``margin``: the fraction
    ``min_rel_size`` of the largest face that passes, or 0 (all sizes) when none passes."""
    kept, _ = filter_detections(dets, img_w, img_h, min_score=min_score, min_rel_size=min_rel_size, min_size=min_size)
    if not kept:
        return 0.0
    return margin * max(float(min_size), min_rel_size * max(box_short_side(d.box, img_w, img_h) for d in kept))


# ---------------------------------------------------------------- filtering
def _clip_box(box: Sequence[float], w: int, h: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)


def box_short_side(box: Sequence[float], w: Optional[int] = None, h: Optional[int] = None) -> float:
    """Short side of a box (clipped to the image when its size is given)."""
    if w is not None and h is not None:
        box = _clip_box(box, w, h)
    return max(0.0, min(box[2] - box[0], box[3] - box[1]))


def filter_detections(dets: Sequence[Detection], img_w: int, img_h: int, min_score: float = 0.9,
                      min_rel_size: float = 0.25, min_size: float = 20) -> tuple[list[Detection], list[tuple[Detection, str]]]:
    """Keep the faces worth labeling; return ``(kept, [(dropped, reason), ...])``.

    Reasons, checked in this order: ``low_score`` (score < min_score), ``small`` (short side of the
    box, clipped to the image, < min_size px), ``background`` (short side < min_rel_size x that of the
    largest face that passed the first two checks: people in the background, false faces in texture).
    Kept faces stay in input order (best score first for our detectors).
    """
    stage: list[Detection] = []
    dropped: list[tuple[Detection, str]] = []
    for d in dets:
        if d.score < min_score:
            dropped.append((d, "low_score"))
        elif box_short_side(d.box, img_w, img_h) < min_size:
            dropped.append((d, "small"))
        else:
            stage.append(d)
    if not stage:
        return [], dropped
    largest = max(box_short_side(d.box, img_w, img_h) for d in stage)
    kept = []
    for d in stage:
        if box_short_side(d.box, img_w, img_h) < min_rel_size * largest:
            dropped.append((d, "background"))
        else:
            kept.append(d)
    return kept, dropped


# ---------------------------------------------------------------- aligned crop
def eye_angle(det: Detection) -> float:
    """Angle of the line from the left to the right eye, degrees (image y down; 0 = horizontal)."""
    if not det.landmarks or len(det.landmarks) < 2:
        return 0.0
    (lx, ly), (rx, ry) = det.landmarks[0], det.landmarks[1]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def crop_transform(det: Detection, size: int = 112, margin: float = 0.25) -> np.ndarray:
    """The 2x3 affine that :func:`align_crop` applies (image -> crop pixel coordinates)."""
    import cv2

    x1, y1, x2, y2 = det.box
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    side = max(x2 - x1, y2 - y1, 1.0) * (1.0 + 2.0 * margin)
    m = cv2.getRotationMatrix2D((cx, cy), eye_angle(det), size / side)
    m[0, 2] += size / 2.0 - cx
    m[1, 2] += size / 2.0 - cy
    return m


def align_crop(rgb: np.ndarray, det: Detection, size: int = 112, margin: float = 0.25) -> np.ndarray:
    """A ``size`` x ``size`` RGB uint8 crop of the face, eye line made horizontal.

    One affine (cv2.warpAffine): rotate about the box center by the eye-line angle, scale so the
    square of side ``max(box w, h) * (1 + 2 * margin)`` (margin proportional to the face size, on
    every side) fills the output, and translate the box center to the crop center. Without
    landmarks the angle is 0 (axis-aligned crop). Pixels outside the image replicate the border.
    Large downscales are prefiltered with INTER_AREA to avoid aliasing.
    """
    import cv2

    m = crop_transform(det, size, margin)
    src = np.ascontiguousarray(rgb)
    scale = math.hypot(m[0, 0], m[0, 1])
    if scale < 0.5:
        # shrink a region around the face with INTER_AREA first, then warp with the adjusted affine
        x1, y1, x2, y2 = det.box
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        half = size / scale * 0.75  # > half diagonal of the (rotated) output square
        h, w = src.shape[:2]
        rx1, ry1 = max(0, int(math.floor(cx - half))), max(0, int(math.floor(cy - half)))
        rx2, ry2 = min(w, int(math.ceil(cx + half))), min(h, int(math.ceil(cy + half)))
        if rx2 - rx1 >= 2 and ry2 - ry1 >= 2:
            pre = 2.0 * scale  # leaves a factor 0.5 for warpAffine
            nw, nh = max(1, round((rx2 - rx1) * pre)), max(1, round((ry2 - ry1) * pre))
            src = cv2.resize(src[ry1:ry2, rx1:rx2], (nw, nh), interpolation=cv2.INTER_AREA)
            sx, sy = (rx2 - rx1) / nw, (ry2 - ry1) / nh  # small-image pixel -> original offset
            # original = (small + 0.5) * s - 0.5 + r0 (pixel-centre convention)
            t = np.array([[sx, 0.0, rx1 + 0.5 * sx - 0.5], [0.0, sy, ry1 + 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
            m = (np.vstack([m, [0.0, 0.0, 1.0]]) @ t)[:2]
    return cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# ---------------------------------------------------------------- quality
BLUR_SIZE = 112  # the face box is resized to this many px before the Laplacian


def estimate_yaw(det: Detection) -> float:
    """Yaw in degrees from the nose's position between the eyes: 0 frontal, +-90 when the nose is
    over an eye (positive: nose towards the right eye, image right). 0.0 without landmarks."""
    if not det.landmarks or len(det.landmarks) < 3:
        return 0.0
    le, re, no = (np.asarray(p, dtype=np.float64) for p in det.landmarks[:3])
    v = re - le
    n2 = float(v @ v)
    if n2 < 1e-9:
        return 0.0
    t = float((no - le) @ v) / n2  # 0 at the left eye, 1 at the right eye
    return math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * t - 1.0))))


def blur_variance(rgb: np.ndarray, box: Sequence[float]) -> float:
    """Variance of the Laplacian of the gray face box, resized to BLUR_SIZE px (so that the value
    does not depend on the face's size in pixels). Low = blurry."""
    import cv2

    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = _clip_box(box, w, h)
    xa, ya, xb, yb = int(math.floor(x1)), int(math.floor(y1)), int(math.ceil(x2)), int(math.ceil(y2))
    if xb - xa < 2 or yb - ya < 2:
        return 0.0
    crop = np.ascontiguousarray(rgb[ya:yb, xa:xb])
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    interp = cv2.INTER_AREA if min(gray.shape) > BLUR_SIZE else cv2.INTER_LINEAR
    gray = cv2.resize(gray, (BLUR_SIZE, BLUR_SIZE), interpolation=interp)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def quality(rgb: np.ndarray, det: Detection) -> dict[str, float]:
    """``det_score``, ``size`` (short side of the box, px), ``blur`` (variance of Laplacian) and
    ``yaw`` (degrees) of one face."""
    x1, y1, x2, y2 = det.box
    return {
        "det_score": float(det.score),
        "size": float(max(0.0, min(x2 - x1, y2 - y1))),
        "blur": blur_variance(rgb, det.box),
        "yaw": float(estimate_yaw(det)),
    }


def _get(cfg: Any, key: str, default: float) -> float:
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return float(cfg.get(key, default))
    return float(getattr(cfg, key, default))


def quality_flags(q: Mapping[str, float], cfg: Any = None) -> tuple[str, ...]:
    """Flags from :func:`quality` values; ``cfg`` is anything with (or a dict of) ``small_px``
    (40), ``blur_var`` (20.0), ``max_yaw_deg`` (45.0) and ``min_score`` (0.9), e.g. DetectConfig."""
    out = []
    if q.get("size", math.inf) < _get(cfg, "small_px", 40):
        out.append("small")
    if q.get("blur", math.inf) < _get(cfg, "blur_var", 20.0):
        out.append("blurry")
    if abs(q.get("yaw", 0.0)) > _get(cfg, "max_yaw_deg", 45.0):
        out.append("profile")
    if q.get("det_score", 1.0) < _get(cfg, "min_score", 0.9):
        out.append("low_score")
    return tuple(out)


# ---------------------------------------------------------------- pre-cropped faces
#: the whole-image rule's thresholds (config.DetectConfig takes its defaults from here): an image
#: with a short side below WHOLE_MIN_SIDE is too small to label; one up to WHOLE_SMALL_SIDE with
#: at most one face is an already-cropped face (FER2013-style 48 px crops)
WHOLE_MIN_SIDE = 24
WHOLE_SMALL_SIDE = 160


def faces_to_label(w: int, h: int, dets: Sequence[Detection], kept: Sequence[Detection], *,
                   min_side: int = WHOLE_MIN_SIDE, small_side: int = WHOLE_SMALL_SIDE) -> tuple[list[Detection], bool]:
    """The labeling units of an image and whether it is one whole-image face: the kept faces, or
    the whole image (keeping the detector's score when it did see the one face) when the image is
    small with at most one kept face, or when no face was kept and it looks like a face crop
    (:func:`is_face_crop_candidate`)."""
    small = min_side <= min(w, h) <= small_side
    if (len(kept) <= 1 and small) or (not kept and is_face_crop_candidate(w, h, dets, min_side=min_side, small_side=small_side)):
        whole = whole_image_face(w, h)
        return [Detection(box=whole.box, score=float(kept[0].score) if kept else 0.0, landmarks=None)], True
    return list(kept), False


def whole_image_face(w: int, h: int) -> Detection:
    """The whole image as one face (box = image, score 0, no landmarks)."""
    return Detection(box=(0.0, 0.0, float(w), float(h)), score=0.0, landmarks=None)


def is_face_crop_candidate(w: int, h: int, dets: Sequence[Detection], kept: Optional[Sequence[Detection]] = None, *,
                           small_side: int = WHOLE_SMALL_SIDE, min_side: int = WHOLE_MIN_SIDE, square_aspect: float = 1.2, square_side: int = 256,
                           cover_frac: float = 0.4) -> bool:
    """Whether the image should be labeled as one already-cropped face (see :func:`whole_image_face`).

    ``dets`` are the raw detections, ``kept`` those :func:`filter_detections` kept (None = not
    given, treated as none kept). The rule:

    - never when the short side is below ``min_side`` (24 px: too small to label);
    - when faces were kept: yes only if exactly one was kept, the image is face sized (short side
      <= ``square_side``, 256 px) and that face's box (clipped) covers at least ``cover_frac`` (0.4)
      of the image: a FER-style crop in which MTCNN did find the face (e.g. a 48 px crop);
    - when no face was kept: yes when the short side is at most ``small_side`` (160 px: FER-style
      crops are too tight or too small for MTCNN), or when the image is near-square
      (long/short <= ``square_aspect``, 1.2) and face sized (short side <= ``square_side``), or
      when exactly one raw detection exists and covers at least ``cover_frac`` of the image (a tight
      crop seen with a low score);
    - otherwise no (an ordinary photo, with or without faces).
    """
    short, long_ = min(w, h), max(w, h)
    if short < min_side:
        return False

    def covers(d: Detection) -> bool:
        x1, y1, x2, y2 = _clip_box(d.box, w, h)
        return max(0.0, x2 - x1) * max(0.0, y2 - y1) >= cover_frac * w * h

    if kept:
        return len(kept) == 1 and short <= square_side and covers(kept[0])
    if short <= small_side:
        return True
    if long_ <= square_aspect * short and short <= square_side:
        return True
    return len(dets) == 1 and covers(dets[0])
