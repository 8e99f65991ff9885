"""Face tracks: faces of sampled video frames linked into one track per person per shot, their
per-frame class probabilities aggregated (statistics and attention), and expression segments.

Everything here is pure (numpy only) except :func:`frame_faces`, the glue that turns one sampled
frame into :class:`FrameFace` records with a detector and a FER model passed in.

Linking (:class:`Tracker`): between a track's last face and a new face the affinity is
``iou_weight * IoU + (1 - iou_weight) * cosine(embeddings)`` (IoU alone when either embedding is
missing). A pair may link only when its IoU reaches ``min_iou`` or, for a fast move, when the
appearance alone is very similar (``cosine >= strong_sim``) and the centres are within
``max_jump`` face sizes; pairs are taken greedily, best affinity first, each track and face once.
A track that has not been seen for more than ``max_gap_ms`` ends; a cut ends every track.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from labeler.types import LABELS, Box


@dataclass(frozen=True, eq=False)
class FrameFace:
    """One face on one sampled frame."""

    frame_index: int
    t_ms: float
    box: Box
    score: float  # detector score
    probs: Optional[np.ndarray] = None  # K class probabilities (model's order)
    embedding: Optional[np.ndarray] = None  # appearance vector (e.g. the FER model's embedding)
    quality: float = 1.0  # 0..1, see quality_weight()


@dataclass(eq=False)
class Track:
    track_id: int
    shot: int
    faces: list[FrameFace] = field(default_factory=list)

    @property
    def start_ms(self) -> float:
        return self.faces[0].t_ms

    @property
    def end_ms(self) -> float:
        return self.faces[-1].t_ms

    @property
    def frames(self) -> list[int]:
        return [f.frame_index for f in self.faces]

    def probs(self) -> np.ndarray:
        """N x K probabilities of the faces (faces without probabilities are skipped)."""
        rows = [f.probs for f in self.faces if f.probs is not None]
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


@dataclass(frozen=True)
class TrackConfig:
    iou_weight: float = 0.5
    min_iou: float = 0.2
    min_affinity: float = 0.3
    strong_sim: float = 0.9  # appearance-only links (no overlap) need this cosine similarity
    max_jump: float = 1.5  # ... and centres within this many face sizes
    max_gap_ms: float = 1500.0  # a track unseen for longer ends


# ---------------------------------------------------------------- geometry / similarity
def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_match(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], min_iou: float = 0.3
                 ) -> tuple[list[tuple[int, int, float]], list[int], list[int]]:
    """Boxes of two detections of one image paired by best IoU first (each box at most once, IoU >=
    ``min_iou``): ``([(i, j, iou), ...], unmatched of a, unmatched of b)``."""
    pairs = sorted(((iou(x, y), i, j) for i, x in enumerate(a) for j, y in enumerate(b)), reverse=True)
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for v, i, j in pairs:
        if v >= min_iou and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((i, j, v))
    return out, [i for i in range(len(a)) if i not in used_a], [j for j in range(len(b)) if j not in used_b]


def cosine(a: Optional[np.ndarray], b: Optional[np.ndarray]) -> Optional[float]:
    if a is None or b is None:
        return None
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def _centre_jump(a: Box, b: Box) -> float:
    """Distance of the box centres in units of the larger box's short side."""
    side = max(min(a[2] - a[0], a[3] - a[1]), min(b[2] - b[0], b[3] - b[1]), 1e-9)
    return math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2) / side


def affinity(prev: FrameFace, cur: FrameFace, cfg: TrackConfig = TrackConfig()) -> float:
    """How well ``cur`` continues a track that last saw ``prev``; -1 when they may not link."""
    ov = iou(prev.box, cur.box)
    sim = cosine(prev.embedding, cur.embedding)
    if sim is None:
        score = ov
    else:
        score = cfg.iou_weight * ov + (1 - cfg.iou_weight) * max(0.0, sim)
    allowed = ov >= cfg.min_iou or (sim is not None and sim >= cfg.strong_sim and _centre_jump(prev.box, cur.box) <= cfg.max_jump)
    return score if allowed and score >= cfg.min_affinity else -1.0


# ---------------------------------------------------------------- linking
class Tracker:
    """Streaming linker: ``update()`` once per sampled frame (in time order), ``finish()`` at the end.
    Both return the tracks that ended, so finished tracks need not be held."""

    def __init__(self, cfg: TrackConfig = TrackConfig(), first_id: int = 1):
        self.cfg = cfg
        self.active: list[Track] = []
        self.next_id = first_id
        self.shot = 0

    def update(self, t_ms: float, faces: Sequence[FrameFace], cut: bool = False) -> list[Track]:
        ended: list[Track] = []
        if cut:
            ended, self.active = self.active, []
            self.shot += 1
        keep = []
        for tr in self.active:
            (ended if t_ms - tr.end_ms > self.cfg.max_gap_ms else keep).append(tr)
        self.active = keep
        pairs = []
        for ti, tr in enumerate(self.active):
            for fi, f in enumerate(faces):
                a = affinity(tr.faces[-1], f, self.cfg)
                if a >= 0:
                    pairs.append((-a, ti, fi))
        used_t, used_f = set(), set()
        for _, ti, fi in sorted(pairs):
            if ti in used_t or fi in used_f:
                continue
            used_t.add(ti)
            used_f.add(fi)
            self.active[ti].faces.append(faces[fi])
        for fi, f in enumerate(faces):
            if fi not in used_f:
                self.active.append(Track(self.next_id, self.shot, [f]))
                self.next_id += 1
        return sorted(ended, key=lambda t: t.track_id)

    def finish(self) -> list[Track]:
        ended, self.active = sorted(self.active, key=lambda t: t.track_id), []
        return ended


def link_tracks(frames: Iterable[tuple[float, Sequence[FrameFace], bool]], cfg: TrackConfig = TrackConfig()) -> list[Track]:
    """Tracks of ``(t_ms, faces, starts_new_shot)`` per sampled frame, in time order; by track id."""
    tr, out = Tracker(cfg), []
    for t_ms, faces, cut in frames:
        out += tr.update(t_ms, faces, cut)
    out += tr.finish()
    return sorted(out, key=lambda t: t.track_id)


# ---------------------------------------------------------------- aggregation
@dataclass(frozen=True)
class TrackStats:
    """Statistics of a track's per-frame probabilities (HSEmotion-style): per class."""

    n: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    min: tuple[float, ...]
    max: tuple[float, ...]
    label: Optional[str]  # argmax of the mean (None without frames)


@dataclass(frozen=True)
class AttentionPool:
    """Frames weighted by detector score x quality x model confidence (normalised to sum 1)."""

    weights: tuple[float, ...]
    probs: tuple[float, ...]
    label: Optional[str]


def aggregate_stats(probs: np.ndarray, labels: Sequence[str] = LABELS) -> TrackStats:
    p = np.asarray(probs, dtype=np.float64).reshape(-1, len(labels))
    if not len(p):
        z = tuple(0.0 for _ in labels)
        return TrackStats(0, z, z, z, z, None)
    mean = p.mean(axis=0)
    t = lambda a: tuple(float(x) for x in a)  # noqa: E731
    return TrackStats(len(p), t(mean), t(p.std(axis=0)), t(p.min(axis=0)), t(p.max(axis=0)), labels[int(np.argmax(mean))])


def attention_weights(probs: np.ndarray, det_scores: Sequence[float], qualities: Sequence[float]) -> np.ndarray:
    """w_i = score_i x quality_i x max_k p_ik, normalised; uniform when every product is 0."""
    p = np.asarray(probs, dtype=np.float64).reshape(len(det_scores), -1)
    w = np.clip(np.asarray(det_scores, np.float64), 0, None) * np.clip(np.asarray(qualities, np.float64), 0, None)
    w = w * (p.max(axis=1) if p.shape[1] else 1.0)
    s = float(w.sum())
    if not len(w):
        return w
    return w / s if s > 0 else np.full(len(w), 1.0 / len(w))


def aggregate_attention(probs: np.ndarray, det_scores: Sequence[float], qualities: Sequence[float],
                        labels: Sequence[str] = LABELS) -> AttentionPool:
    p = np.asarray(probs, dtype=np.float64).reshape(-1, len(labels))
    if not len(p):
        return AttentionPool((), tuple(0.0 for _ in labels), None)
    w = attention_weights(p, det_scores, qualities)
    pooled = w @ p
    return AttentionPool(tuple(float(x) for x in w), tuple(float(x) for x in pooled), labels[int(np.argmax(pooled))])


def track_aggregates(track: Track, labels: Sequence[str] = LABELS) -> tuple[TrackStats, AttentionPool]:
    """Both aggregates of a track's faces that carry probabilities."""
    faces = [f for f in track.faces if f.probs is not None]
    p = np.asarray([f.probs for f in faces], dtype=np.float64).reshape(len(faces), len(labels))
    return aggregate_stats(p, labels), aggregate_attention(p, [f.score for f in faces], [f.quality for f in faces], labels)


# ---------------------------------------------------------------- segments
@dataclass(frozen=True)
class Segment:
    """A run of a track's faces with one (smoothed) proposed class; ``first``/``last`` are positions
    in the sequence given (inclusive), the frame numbers and times are those of these faces."""

    first: int
    last: int
    start_frame: int
    end_frame: int
    start_ms: float
    end_ms: float
    label: str
    mean: tuple[float, ...]  # mean probabilities over the run (unsmoothed)


def smooth_argmax(probs: np.ndarray, window: int = 3) -> np.ndarray:
    """Per-frame class after a centred majority vote over ``window`` frames (shrinking at the
    ends). A tie keeps the frame's own argmax when it is among the tied classes, else the tied
    class with the higher mean probability in the window. Keeps boundaries where a moving average
    of probabilities would shift them towards the more confident side; window <= 1: plain argmax."""
    p = np.asarray(probs, dtype=np.float64)
    arg = np.argmax(p, axis=1) if len(p) else np.zeros(0, dtype=int)
    if window <= 1 or len(p) < 2:
        return arg
    half, out = window // 2, arg.copy()
    for i in range(len(p)):
        lo, hi = max(0, i - half), min(len(p), i + half + 1)
        counts = np.bincount(arg[lo:hi], minlength=p.shape[1])
        tied = np.flatnonzero(counts == counts.max())
        if arg[i] not in tied:
            out[i] = tied[int(np.argmax(p[lo:hi, tied].mean(axis=0)))]
    return out


def _runs(arg: Sequence[int]) -> list[list[int]]:
    runs: list[list[int]] = []  # [first, last, class]
    for i, k in enumerate(arg):
        if runs and runs[-1][2] == k:
            runs[-1][1] = i
        else:
            runs.append([i, i, int(k)])
    return runs


def segment_runs(probs: np.ndarray, window: int = 3, min_len: int = 2) -> list[tuple[int, int, int]]:
    """``(first, last, class)`` runs of :func:`smooth_argmax`; a run shorter than ``min_len`` frames
    (flicker) joins the neighbour whose class it scores higher (the shortest run first)."""
    p = np.asarray(probs, dtype=np.float64)
    if not len(p):
        return []
    runs = _runs(smooth_argmax(p, window))
    while len(runs) > 1:
        short = [r for r in runs if r[1] - r[0] + 1 < min_len]
        if not short:
            break
        r = min(short, key=lambda x: (x[1] - x[0], x[0]))
        i = runs.index(r)
        seg = p[r[0] : r[1] + 1].mean(axis=0)
        nbrs = [j for j in (i - 1, i + 1) if 0 <= j < len(runs)]
        j = max(nbrs, key=lambda j: (seg[runs[j][2]], -j))
        a, b = sorted((i, j))
        runs[a:b + 1] = [[runs[a][0], runs[b][1], runs[j][2]]]
        runs = _runs([k for x in runs for k in [x[2]] * (x[1] - x[0] + 1)])  # merge equal neighbours
    return [(a, b, k) for a, b, k in runs]


def segments(faces: Sequence[FrameFace], labels: Sequence[str] = LABELS, window: int = 3, min_len: int = 2) -> list[Segment]:
    """Segments of a track's faces (those without probabilities are skipped)."""
    faces = [f for f in faces if f.probs is not None]
    p = np.asarray([f.probs for f in faces], dtype=np.float64).reshape(len(faces), len(labels))
    out = []
    for a, b, k in segment_runs(p, window, min_len):
        out.append(Segment(a, b, faces[a].frame_index, faces[b].frame_index, faces[a].t_ms, faces[b].t_ms, labels[k],
                           tuple(float(x) for x in p[a : b + 1].mean(axis=0))))
    return out


# ---------------------------------------------------------------- glue: one sampled frame
def quality_weight(q: dict[str, float], small_px: float = 32.0, blur_var: float = 20.0, max_yaw_deg: float = 45.0) -> float:
    """0..1 from :func:`labeler.faces.detect.quality` values: each of size, sharpness and yaw scales
    the weight down linearly below twice its flag threshold (0 at the threshold's half)."""
    def ramp(x: float, thr: float) -> float:
        return min(1.0, max(0.0, (x - thr / 2) / (1.5 * thr)))

    yaw = 1.0 - min(1.0, abs(q.get("yaw", 0.0)) / (2 * max_yaw_deg))
    return ramp(q.get("size", 1e9), small_px) * ramp(q.get("blur", 1e9), blur_var) * yaw


def frame_faces(rgb: np.ndarray, frame_index: int, t_ms: float, detector: Any, model: Any = None, *,
                min_score: float = 0.9, min_rel_size: float = 0.25, min_size: float = 20,
                crop_size: int = 112, margin: float = -0.10) -> list[FrameFace]:
    """Detect, filter, crop and (with a FER ``model``: anything with ``predict(crops)`` and, when
    it has an embedding, ``embed(crops)``) score the faces of one sampled frame."""
    from labeler.faces import detect as fd

    h, w = rgb.shape[:2]
    kept, _ = fd.filter_detections(detector.detect(rgb), w, h, min_score, min_rel_size, min_size)
    if not kept:
        return []
    crops = [fd.align_crop(rgb, d, size=crop_size, margin=margin) for d in kept]
    probs = emb = None
    if model is not None:
        probs = np.asarray(model.predict(crops))
        if getattr(model, "embedding_name", None):
            emb = np.asarray(model.embed(crops))
    return [FrameFace(frame_index, t_ms, tuple(float(x) for x in d.box), float(d.score),
                      None if probs is None else probs[i], None if emb is None else emb[i],
                      quality_weight(fd.quality(rgb, d)))
            for i, d in enumerate(kept)]
