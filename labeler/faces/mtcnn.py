"""MTCNN face detector: a numpy + onnxruntime port of facenet-pytorch 2.6.0's ``detect_face``.

The three networks are the ONNX files made by ``scripts/convert/convert_mtcnn.py`` (``models/mtcnn_*.onnx``),
each loaded through its sidecar with the checksum verified; a missing or damaged file raises
:class:`labeler.modelfiles.ModelFileError`, there is no fallback.

The port follows facenet-pytorch step by step so that boxes agree within a pixel:

- every resize is torch ``interpolate(mode="area")``, i.e. adaptive average pooling (window
  ``[floor(i*n/o), ceil((i+1)*n/o))``), done here exactly from an integral image (cv2.INTER_AREA is a
  different filter and would move boxes by many pixels);
- all box arithmetic is float32 in the same operation order (rerec, bbreg with its ``+1``, the
  ``trunc`` and 1-based ``(y-1):ey`` crop of ``pad()``, which crops the in-image part only and
  stretches it, without zero padding);
- NMS: torchvision's (IoU, no ``+1``, stable order) for the P-Net and R-Net stages, facenet's own
  numpy NMS with the ``Min`` overlap and ``+1`` areas for the final stage.

Boxes are returned as found, not clipped to the image; landmarks are (x, y) in image pixels in the
order left eye, right eye, nose, mouth left, mouth right.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from labeler.fer.cards import ModelCard, default_models_dir, read_card
from labeler.types import Detection

F32 = np.float32


def _window(n: int, o: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive-average-pool windows for resizing length n to o: (start, end) index arrays."""
    i = np.arange(o, dtype=np.int64)
    return (i * n) // o, ((i + 1) * n + o - 1) // o


def integral_image(rgb: np.ndarray) -> np.ndarray:
    """(H+1, W+1, C) uint32 summed-area table. It may wrap around 2**32, but every rectangle sum
    used here is below that (255 * area), so differences in uint32 arithmetic stay exact."""
    h, w, c = rgb.shape
    if h * w * 255 < 2**31 and c <= 4:
        import cv2

        s = cv2.integral(np.ascontiguousarray(rgb), sdepth=cv2.CV_32S)
        return s.reshape(h + 1, w + 1, c).view(np.uint32)
    s = np.zeros((h + 1, w + 1, c), dtype=np.uint32)
    np.cumsum(rgb, axis=0, dtype=np.uint32, out=s[1:, 1:])
    np.cumsum(s[1:, 1:], axis=1, dtype=np.uint32, out=s[1:, 1:])
    return s


def area_resize(s: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """torch ``interpolate(mode='area')`` of the whole image whose integral image is ``s``, to
    (oh, ow): returns (oh, ow, C) float32. Separable gathers: whole rows first, then columns."""
    ys, ye = _window(s.shape[0] - 1, oh)
    xs, xe = _window(s.shape[1] - 1, ow)
    d = np.take(s, ye, axis=0) - np.take(s, ys, axis=0)  # (oh, W+1, C) uint32, exact
    tot = np.take(d, xe, axis=1) - np.take(d, xs, axis=1)
    kh = (ye - ys).astype(F32)[:, None, None]
    kw = (xe - xs).astype(F32)[None, :, None]
    return tot.astype(F32) / kh / kw


def _crops(s: np.ndarray, y: np.ndarray, ey: np.ndarray, x: np.ndarray, ex: np.ndarray, size: int) -> np.ndarray:
    """Area-resized crops rows [y-1, ey), cols [x-1, ex) (facenet's pad() convention) -> (N, 3, size, size).

    Each output pixel is the mean of its window like torch's: the exact integer sum from the four
    corners of the integral image (gathered by flat index from the (H+1)*(W+1) x C table, a third
    of the time of 2-D fancy indexing), then float32 divided by the window height, then its width."""
    i = np.arange(size, dtype=np.int64)[None, :]
    lh = (ey - y + 1).astype(np.int64)[:, None]
    lw = (ex - x + 1).astype(np.int64)[:, None]
    y0 = (y - 1).astype(np.int64)[:, None]
    x0 = (x - 1).astype(np.int64)[:, None]
    ys, ye = y0 + (i * lh) // size, y0 + ((i + 1) * lh + size - 1) // size
    xs, xe = x0 + (i * lw) // size, x0 + ((i + 1) * lw + size - 1) // size
    row = s.shape[1]
    flat = s.reshape(-1, s.shape[2])
    ys_, ye_ = (ys * row)[:, :, None], (ye * row)[:, :, None]
    xs_, xe_ = xs[:, None, :], xe[:, None, :]
    tot = np.take(flat, ye_ + xe_, axis=0)  # N,size,size,C uint32, exact (wraps cancel)
    tot -= np.take(flat, ys_ + xe_, axis=0)
    tot -= np.take(flat, ye_ + xs_, axis=0)
    tot += np.take(flat, ys_ + xs_, axis=0)
    kh = (ye - ys).astype(F32)[:, :, None, None]
    kw = (xe - xs).astype(F32)[:, None, :, None]
    out = tot.astype(F32) / kh / kw
    return out.transpose(0, 3, 1, 2)


def _norm(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((x - F32(127.5)) * F32(0.0078125), dtype=F32)


def _suppressors(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray, areas: np.ndarray, thr: float,
                 max_pairs: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """The box pairs (a, b), a != b, whose IoU (torchvision's formula, float32) is above ``thr``, as
    CSR arrays (indptr, indices), both directions. Only pairs whose x-ranges overlap are looked at
    (boxes sorted by x1: box b overlaps a in x iff x1[a] <= x1[b] < x2[a]); others have IoU 0."""
    n = len(x1)
    by_x = np.argsort(x1, kind="stable")
    xs1 = x1[by_x]
    ends = np.searchsorted(xs1, x2[by_x], side="left")  # sorted positions with x1 < x2[a]
    cnt = np.maximum(ends - np.arange(1, n + 1), 0)  # partners after position a
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    start = 0
    while start < n:  # rows in chunks of at most max_pairs pairs (one row may exceed it alone)
        csum = np.cumsum(cnt[start:])
        stop = start + max(1, int(np.searchsorted(csum, max_pairs, side="right")))
        c = cnt[start:stop]
        tot = int(c.sum())
        if tot:
            pa = np.repeat(np.arange(start, stop), c)
            pb = pa + 1 + (np.arange(tot) - np.repeat(np.cumsum(c) - c, c))
            a, b = by_x[pa], by_x[pb]
            w = np.maximum(F32(0), np.minimum(x2[a], x2[b]) - np.maximum(x1[a], x1[b]))
            h = np.maximum(F32(0), np.minimum(y2[a], y2[b]) - np.maximum(y1[a], y1[b]))
            inter = w * h
            hit = inter / (areas[a] + areas[b] - inter) > thr
            src += [a[hit], b[hit]]
            dst += [b[hit], a[hit]]
        start = stop
    s = np.concatenate(src) if src else np.zeros(0, np.int64)
    d = np.concatenate(dst) if dst else np.zeros(0, np.int64)
    o = np.argsort(s, kind="stable")
    return np.concatenate([[0], np.cumsum(np.bincount(s, minlength=n))]), d[o]


def nms_torchvision(boxes: np.ndarray, scores: np.ndarray, thr: float) -> np.ndarray:
    """torchvision.ops.nms: IoU without +1, stable descending score order; indices by score.

    Greedy as torchvision: each box, best first, is kept unless a kept box overlaps it by more
    than ``thr``. The overlapping pairs are found at once (:func:`_suppressors`), so the loop does
    no arithmetic (a group photo's P-Net stage has thousands of boxes: quadratic in numpy before)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, k], dtype=F32) for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    ptr, nb = _suppressors(x1, y1, x2, y2, areas, thr)
    removed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for i in np.argsort(-scores, kind="stable").tolist():
        if removed[i]:
            continue
        keep.append(i)
        removed[nb[ptr[i] : ptr[i + 1]]] = True
    return np.asarray(keep, dtype=np.int64)


def nms_min(boxes: np.ndarray, scores: np.ndarray, thr: float) -> np.ndarray:
    """facenet-pytorch's ``nms_numpy(..., 'Min')``: +1 areas, overlap = inter / min(area)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, k].copy() for k in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    keep = []
    while order.size > 0:
        i = order[-1]
        keep.append(i)
        idx = order[0:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[idx]) - np.maximum(x1[i], x1[idx]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[idx]) - np.maximum(y1[i], y1[idx]) + 1)
        inter = w * h
        o = inter / np.minimum(area[i], area[idx])
        order = order[np.where(o <= thr)]
    return np.asarray(keep, dtype=np.int64)


def _rerec(b: np.ndarray) -> np.ndarray:
    b = b.copy()
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    l = np.maximum(w, h)
    b[:, 0] = b[:, 0] + w * F32(0.5) - l * F32(0.5)
    b[:, 1] = b[:, 1] + h * F32(0.5) - l * F32(0.5)
    b[:, 2] = b[:, 0] + l
    b[:, 3] = b[:, 1] + l
    return b


def _bbreg(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    b = b.copy()
    w = b[:, 2] - b[:, 0] + F32(1)
    h = b[:, 3] - b[:, 1] + F32(1)
    b1 = b[:, 0] + reg[:, 0] * w
    b2 = b[:, 1] + reg[:, 1] * h
    b3 = b[:, 2] + reg[:, 2] * w
    b4 = b[:, 3] + reg[:, 3] * h
    b[:, 0], b[:, 1], b[:, 2], b[:, 3] = b1, b2, b3, b4
    return b


def _pad(b: np.ndarray, w: int, h: int):
    t = np.trunc(b[:, :4]).astype(np.int32)
    x, y, ex, ey = (np.ascontiguousarray(t[:, k]) for k in range(4))
    x[x < 1] = 1
    y[y < 1] = 1
    ex[ex > w] = w
    ey[ey > h] = h
    return y, ey, x, ex


class MTCNNDetector:
    """Three-stage MTCNN (facenet-pytorch 2.6.0 weights) on onnxruntime."""

    name = "mtcnn"
    KINDS = ("pnet", "rnet", "onet")

    def __init__(self, models_dir: Optional[Path | str] = None, min_face_size: int = 20,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709, threads: int = 2):
        import onnxruntime as ort

        d = Path(models_dir) if models_dir is not None else default_models_dir()
        self.cards: dict[str, ModelCard] = {}
        self.sessions = {}
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # every image has its own input shapes: onnxruntime's arena would keep the largest of each
        # and grow (1.5 GB after 52 group photos); plain allocations stay flat
        so.enable_cpu_mem_arena = False
        so.enable_mem_pattern = False  # a cached allocation plan per input shape, likewise
        for k in self.KINDS:
            card = read_card(d / f"mtcnn_{k}.json")  # verifies sha256, raises ModelFileError
            self.cards[k] = card
            self.sessions[k] = ort.InferenceSession(str(card.file), sess_options=so, providers=["CPUExecutionProvider"])
        self.version = self.cards["pnet"].version
        self.min_face_size = int(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        if len(self.thresholds) != 3:
            raise ValueError(f"thresholds: expected 3 values (P-, R-, O-Net), found {len(self.thresholds)}")
        self.factor = float(factor)

    def __repr__(self) -> str:
        return f"MTCNNDetector(min_face_size={self.min_face_size}, thresholds={self.thresholds}, factor={self.factor})"

    def _run(self, k: str, x: np.ndarray) -> list[np.ndarray]:
        return self.sessions[k].run(None, {"input": x})

    #: R-Net/O-Net candidates cropped and run at a time: a crowd photo has thousands after P-Net,
    #: and one batch of them took hundreds of MB (the networks work face by face: same results)
    CHUNK = 256

    def _run_crops(self, k: str, s: np.ndarray, y, ey, x, ex, size: int) -> list[np.ndarray]:
        parts = [self._run(k, _norm(_crops(s, y[i : i + self.CHUNK], ey[i : i + self.CHUNK], x[i : i + self.CHUNK],
                                           ex[i : i + self.CHUNK], size)))
                 for i in range(0, len(y), self.CHUNK)]
        return [np.concatenate(out, axis=0) for out in zip(*parts)]

    def scales(self, h: int, w: int) -> list[float]:
        m = 12.0 / self.min_face_size
        minl = min(h, w) * m
        out, s = [], m
        while minl >= 12:
            out.append(s)
            s = s * self.factor
            minl = minl * self.factor
        return out

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces of an HxWx3 uint8 RGB image, best score first."""
        rgb = _as_rgb(rgb)
        s = integral_image(rgb)
        h, w = rgb.shape[:2]
        return _detections(*self._refine([self._pnet(s, sc) for sc in self.scales(h, w)], s))

    def detect_coarse_to_fine(self, rgb: np.ndarray, first_face: float, needed: Callable[[list[Detection]], float]) -> list[Detection]:
        """:meth:`detect` over the part of the pyramid that can still find faces that matter.

        First the scales that see faces of ``first_face`` px and more (a sixteenth of the P-Net
        pixels for 80 px, and few R-Net candidates); ``needed(those faces)`` then says the smallest
        face size that could still be kept (0: all), and the scales for faces down to that size are
        added (each scale's P-Net result is computed once). When it asks for every scale the result
        is exactly :meth:`detect`'s; otherwise it is :meth:`detect` without the candidates of the
        finer scales, which find faces too small to be kept."""
        rgb = _as_rgb(rgb)
        h, w = rgb.shape[:2]
        scales = self.scales(h, w)
        s = integral_image(rgb)
        done: dict[float, Optional[np.ndarray]] = {}

        def upto(face: float) -> list[Detection]:
            sub = [sc for sc in scales if face <= self.min_face_size or 12.0 / sc >= face * (1 - 1e-9)]
            for sc in sub:
                if sc not in done:
                    done[sc] = self._pnet(s, sc)
            return _detections(*self._refine([done[sc] for sc in sub], s))

        if first_face <= self.min_face_size:
            return upto(0)
        dets = upto(first_face)
        need = float(needed(dets))
        return dets if need >= first_face else upto(need)

    def _pnet(self, s: np.ndarray, scale: float) -> Optional[np.ndarray]:
        """P-Net on the image (integral image ``s``) resized by ``scale``: its candidates after NMS."""
        h, w = s.shape[0] - 1, s.shape[1] - 1
        oh, ow = int(h * scale + 1), int(w * scale + 1)
        im = _norm(area_resize(s, oh, ow).transpose(2, 0, 1)[None])
        reg, prob = self._run("pnet", im)
        p = prob[0, 1]
        yy, xx = np.nonzero(p >= F32(self.thresholds[0]))
        if yy.size == 0:
            return None
        sc = F32(scale)
        bb = np.stack([xx, yy], axis=1).astype(F32)
        q1 = np.floor((F32(2) * bb + F32(1)) / sc)
        q2 = np.floor((F32(2) * bb + F32(12)) / sc)
        r = reg[0][:, yy, xx].T
        bs = np.concatenate([q1, q2, p[yy, xx][:, None], r], axis=1).astype(F32)
        return bs[nms_torchvision(bs[:, :4], bs[:, 4], 0.5)]

    def _refine(self, per_scale: list[Optional[np.ndarray]], s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """R-Net and O-Net on the P-Net candidates of the scales given: (N x 5 boxes, N x 5 x 2 points)."""
        h, w = s.shape[0] - 1, s.shape[1] - 1
        _, t2, t3 = self.thresholds
        empty = (np.zeros((0, 5), F32), np.zeros((0, 5, 2), F32))
        per_scale = [b for b in per_scale if b is not None]
        if not per_scale:
            return empty
        b = np.concatenate(per_scale, axis=0)
        b = b[nms_torchvision(b[:, :4], b[:, 4], 0.7)]
        regw = b[:, 2] - b[:, 0]
        regh = b[:, 3] - b[:, 1]
        b = np.stack([b[:, 0] + b[:, 5] * regw, b[:, 1] + b[:, 6] * regh,
                      b[:, 2] + b[:, 7] * regw, b[:, 3] + b[:, 8] * regh, b[:, 4]], axis=1)
        b = _rerec(b)

        # ---- stage 2: R-Net on 24x24 crops
        y, ey, x, ex = _pad(b, w, h)
        ok = (ey > y - 1) & (ex > x - 1)  # facenet skips empty crops (it would then misalign; we drop them)
        b, y, ey, x, ex = b[ok], y[ok], ey[ok], x[ok], ex[ok]
        if len(b) == 0:
            return empty
        reg, prob = self._run_crops("rnet", s, y, ey, x, ex, 24)
        score = prob[:, 1]
        ip = score > F32(t2)
        b = np.concatenate([b[ip, :4], score[ip, None]], axis=1).astype(F32)
        mv = reg[ip]
        keep = nms_torchvision(b[:, :4], b[:, 4], 0.7)
        b, mv = b[keep], mv[keep]
        if len(b) == 0:
            return empty
        b = _rerec(_bbreg(b, mv))

        # ---- stage 3: O-Net on 48x48 crops, landmarks
        y, ey, x, ex = _pad(b, w, h)
        ok = (ey > y - 1) & (ex > x - 1)
        b, y, ey, x, ex = b[ok], y[ok], ey[ok], x[ok], ex[ok]
        if len(b) == 0:
            return empty
        reg, lm, prob = self._run_crops("onet", s, y, ey, x, ex, 48)
        score = prob[:, 1]
        ip = score > F32(t3)
        lm, mv = lm[ip], reg[ip]
        b = np.concatenate([b[ip, :4], score[ip, None]], axis=1).astype(F32)
        wi = b[:, 2] - b[:, 0] + F32(1)
        hi = b[:, 3] - b[:, 1] + F32(1)
        px = wi[:, None] * lm[:, :5] + b[:, 0:1] - F32(1)
        py = hi[:, None] * lm[:, 5:10] + b[:, 1:2] - F32(1)
        pts = np.stack([px, py], axis=2)  # N,5,2
        b = _bbreg(b, mv)
        keep = nms_min(b[:, :4], b[:, 4], 0.7)
        return b[keep], pts[keep]


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
        raise ValueError(f"detect: expected an HxWx3 uint8 RGB array, found shape {rgb.shape} dtype {rgb.dtype}")
    return rgb[:, :, :3]


def _detections(boxes: np.ndarray, points: np.ndarray) -> list[Detection]:
    """Detections, best score first."""
    out = []
    for i in np.argsort(-boxes[:, 4], kind="stable"):
        b = boxes[i]
        lm = tuple((float(points[i, j, 0]), float(points[i, j, 1])) for j in range(5))
        out.append(Detection(box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])), score=float(b[4]), landmarks=lm))
    return out
