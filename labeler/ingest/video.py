"""Videos: recognised by content, decoded with OpenCV's FFmpeg backend, sampled into frames.

Decoder: ``cv2.VideoCapture(path, cv2.CAP_FFMPEG)`` (opencv-python-headless is already a runtime
dependency and its wheel bundles FFmpeg). It gives presentation timestamps (``CAP_PROP_POS_MSEC``)
and the container's frame count; truncation is found by reading the container's own size fields
(:func:`container_problem`) and by comparing the frames decoded with the frames announced, so PyAV
is not needed.

Sampling streams: one decoded frame (plus one small histogram) is held at a time. A frame is
sampled when it is the first at or after each ``1 / fps`` step, and when it starts a new shot (a
scene cut: the HSV histogram of a decoded frame differs from the previous decoded frame's by more
than ``cut_threshold``, Bhattacharyya distance 0..1).

Failures never raise out of :class:`VideoSampler`: the outcome carries ``status`` (``ok``,
``truncated`` (frames before the damage are still yielded) or ``broken``) and a one-line ``reason``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from labeler.ingest.imageio import DecodeError

#: extensions looked at during a folder walk; the content decides whether a file is a video
VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".qt", ".avi", ".mkv", ".webm", ".3gp"}

_QT_BRANDS = (b"qt  ",)
NO_INDEX = "no 'moov' index"


def sniff_video(head: bytes) -> Optional[str]:
    """Container of a video by its first bytes (>= 64 recommended): ``mp4``, ``mov``, ``avi``,
    ``mkv``, ``webm``; None when the bytes are no video we read. Image formats that use the
    ISO box layout (AVIF, HEIC) are not videos."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
            return None
        return "mov" if brand in _QT_BRANDS else "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip") and head[:4] != b"RIFF":
        return "mov"  # old QuickTime files start without ftyp
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in head[:64] else "mkv"
    return None


def looks_like_video(head: bytes) -> bool:
    return sniff_video(head) is not None


# ---------------------------------------------------------------- container checks
def _mp4_problem(path: Path, size: int) -> str:
    """Walk the top-level ISO boxes: a box running past the end of the file, or no ``moov``."""
    pos, seen = 0, []
    with open(path, "rb") as fh:
        while pos + 8 <= size:
            fh.seek(pos)
            hdr = fh.read(16)
            n, kind = int.from_bytes(hdr[:4], "big"), hdr[4:8].decode("latin-1")
            if n == 1 and len(hdr) >= 16:
                n = int.from_bytes(hdr[8:16], "big")
            elif n == 0:
                n = size - pos  # box runs to the end of the file
            if n < 8:
                return f"truncated or corrupt MP4: box {kind!r} at byte {pos:,} declares {n} bytes"
            if pos + n > size:
                return (f"truncated MP4: box {kind!r} at byte {pos:,} declares {n:,} bytes, the file ends "
                        f"after {size - pos:,} (file size {size:,})" + ("" if "moov" in seen or kind == "moov" else f"; {NO_INDEX}"))
            seen.append(kind)
            pos += n
    if "moov" not in seen:
        return f"truncated MP4: {NO_INDEX} box in {size:,} bytes (top-level boxes: {', '.join(seen) or 'none'})"
    return ""


def _riff_problem(path: Path, size: int) -> str:
    with open(path, "rb") as fh:
        declared = int.from_bytes(fh.read(8)[4:8], "little") + 8
    if declared > size:
        return f"truncated AVI: the RIFF header declares {declared:,} bytes, the file has {size:,}"
    return ""


def _ebml_size(buf: bytes, i: int) -> tuple[Optional[int], int]:
    """An EBML variable-size integer at ``buf[i]``: (value or None for 'unknown size', length)."""
    first = buf[i]
    n = 8 - first.bit_length() + 1 if first else 9
    if n > 8 or i + n > len(buf):
        return None, 1
    v = first & (0xFF >> n)
    for b in buf[i + 1 : i + n]:
        v = (v << 8) | b
    return (None if v == (1 << (7 * n)) - 1 else v), n


def _ebml_problem(path: Path, size: int) -> str:
    """The Segment element's declared size against the file's (live streams declare 'unknown')."""
    with open(path, "rb") as fh:
        buf = fh.read(4096)
    hsize, n = _ebml_size(buf, 4)
    if hsize is None:
        return ""
    seg = 4 + n + hsize
    if buf[seg : seg + 4] != b"\x18\x53\x80\x67" or seg + 4 >= len(buf):
        return ""
    ssize, m = _ebml_size(buf, seg + 4)
    if ssize is not None and seg + 4 + m + ssize > size:
        return f"truncated Matroska: the Segment declares {seg + 4 + m + ssize:,} bytes, the file has {size:,}"
    return ""


def container_problem(path: Union[str, Path], container: str) -> str:
    """A one-line reason when the container's own size fields say the file is cut short; ''."""
    path = Path(path)
    size = path.stat().st_size
    check = {"mp4": _mp4_problem, "mov": _mp4_problem, "avi": _riff_problem, "mkv": _ebml_problem, "webm": _ebml_problem}
    try:
        return check[container](path, size)
    except (OSError, IndexError, UnicodeDecodeError) as e:
        return f"cannot read the {container} header: {e}"


# ---------------------------------------------------------------- records
@dataclass(frozen=True)
class VideoInfo:
    container: str  # by content: mp4 | mov | avi | mkv | webm
    codec: str  # FourCC as FFmpeg reports it, e.g. 'mp4v', 'MJPG'
    width: int
    height: int
    fps: float  # nominal frame rate from the container (0.0 when unknown)
    frame_count: int  # announced by the container (0 when unknown)
    duration_ms: float  # frame_count / fps (0.0 when unknown)


@dataclass(frozen=True)
class SampleConfig:
    fps: float = 2.0  # sampled frames per second of video
    cut_threshold: float = 0.5  # Bhattacharyya distance of consecutive HSV histograms that is a cut
    sample_cuts: bool = True  # also sample the first frame of every new shot
    max_side: int = 0  # downscale sampled frames so the long side is at most this (0 = as decoded)


@dataclass(frozen=True, eq=False)
class SampledFrame:
    index: int  # decoded frame number, 0-based
    t_ms: float  # presentation time in ms from the first frame
    rgb: np.ndarray  # H x W x 3 uint8
    shot: int  # 0-based shot number (incremented at each cut)
    why: str  # "rate" | "cut" ("cut" also when a cut frame falls on the rate grid)
    cut_distance: float  # histogram distance to the previous decoded frame (0 for the first)


@dataclass(frozen=True)
class SampleOutcome:
    status: str  # ok | truncated | broken
    reason: str  # '' when ok
    info: Optional[VideoInfo]
    decoded: int = 0  # frames decoded
    sampled: int = 0  # frames yielded
    cuts: tuple[tuple[int, float], ...] = ()  # (frame index, t_ms) where a new shot starts
    last_ms: float = 0.0  # timestamp of the last decoded frame


def probe(path: Union[str, Path]) -> VideoInfo:
    """Open a video and read its facts; raises :class:`DecodeError` with a reason."""
    info, cap = _open(Path(path))
    cap.release()
    return info


def _open(path: Path):
    import cv2

    try:
        size = path.stat().st_size
    except OSError as e:
        raise DecodeError(f"cannot read: {e.strerror or e}") from None
    if size == 0:
        raise DecodeError("empty file (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(64)
    container = sniff_video(head)
    if container is None:
        raise DecodeError("not a video (unknown format: expected an mp4/mov, avi, mkv or webm signature)")
    problem = container_problem(path, container)
    if NO_INDEX in problem:  # FFmpeg cannot open an MP4/MOV without its index: say why, quietly
        raise DecodeError(problem)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise DecodeError(problem or f"cannot decode {container}: FFmpeg found no readable video stream")
    fcc = int(cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    codec = "".join(chr((fcc >> (8 * k)) & 0xFF) for k in range(4)).strip("\x00 ") if fcc else ""
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if math.isfinite(fps) and 0 < fps < 1000 else 0.0
    count = int(max(0.0, cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    info = VideoInfo(container, codec, w, h, fps, count, 1000.0 * count / fps if fps and count else 0.0)
    return info, cap


# ---------------------------------------------------------------- sampling
def frame_histogram(bgr: np.ndarray) -> np.ndarray:
    """Normalised 16x8 H-S histogram of a (downscaled) frame, for cut detection."""
    import cv2

    h, w = bgr.shape[:2]
    s = 96.0 / max(h, w)
    small = cv2.resize(bgr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else bgr
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    return cv2.normalize(hist, hist, 1.0, 0.0, cv2.NORM_L1)


def hist_distance(a: np.ndarray, b: np.ndarray) -> float:
    import cv2

    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


class VideoSampler:
    """Iterate the sampled frames of one video; afterwards ``outcome`` says how it went.

    >>> s = VideoSampler("clip.mp4", SampleConfig(fps=2))
    >>> for f in s: ...          # SampledFrame, one at a time
    >>> s.outcome.status, s.outcome.reason
    """

    def __init__(self, path: Union[str, Path], cfg: SampleConfig = SampleConfig()):
        self.path = Path(path)
        self.cfg = cfg
        self.outcome = SampleOutcome("broken", "not read yet", None)

    def __iter__(self) -> Iterator[SampledFrame]:
        try:
            info, cap = _open(self.path)
        except DecodeError as e:
            self.outcome = SampleOutcome("broken", e.reason, None)
            return
        try:
            yield from self._frames(info, cap)
        finally:
            cap.release()

    def _frames(self, info: VideoInfo, cap) -> Iterator[SampledFrame]:
        import cv2

        step = 1000.0 / self.cfg.fps if self.cfg.fps > 0 else math.inf
        next_t, prev_hist, shot, decoded, sampled, cuts = 0.0, None, 0, 0, 0, []
        t0: Optional[float] = None
        t = 0.0
        error = ""
        while True:
            try:
                ok, bgr = cap.read()
            except cv2.error as e:  # pragma: no cover - FFmpeg errors surface as a failed read
                error = f"decoder error after frame {decoded}: {e}"
                break
            if not ok or bgr is None:
                break
            pos = cap.get(cv2.CAP_PROP_POS_MSEC)
            if t0 is None:
                t0 = pos if math.isfinite(pos) else 0.0
            # FFmpeg's timestamp; a frame-rate estimate when the container gives none
            t = (pos - t0) if math.isfinite(pos) and (pos > t0 or decoded == 0) else (1000.0 * decoded / info.fps if info.fps else t + 1.0)
            hist = frame_histogram(bgr)
            dist = 0.0 if prev_hist is None else hist_distance(prev_hist, hist)
            prev_hist = hist
            is_cut = decoded > 0 and dist > self.cfg.cut_threshold
            if is_cut:
                shot += 1
                cuts.append((decoded, t))
            on_grid = t + 1e-6 >= next_t
            if on_grid:
                next_t = (math.floor((t + 1e-6) / step) + 1) * step
            if on_grid or (is_cut and self.cfg.sample_cuts):
                sampled += 1
                yield SampledFrame(decoded, t, self._rgb(bgr), shot, "cut" if is_cut else "rate", dist)
            decoded += 1
        problem = error or container_problem(self.path, info.container)
        if not problem and info.frame_count and decoded < info.frame_count - max(1, info.frame_count // 100):
            problem = f"truncated: decoded {decoded} of the {info.frame_count} frames the container announces"
        if decoded == 0:
            status, problem = "broken", problem or "no frame could be decoded"
        else:
            status = "truncated" if problem else "ok"
            if problem and "decoded" not in problem:
                problem += f"; decoded {decoded} frames up to {t / 1000:.2f} s"
        self.outcome = SampleOutcome(status, problem, info, decoded, sampled, tuple(cuts), t)

    def _rgb(self, bgr: np.ndarray) -> np.ndarray:
        import cv2

        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        if self.cfg.max_side and max(h, w) > self.cfg.max_side:
            s = self.cfg.max_side / max(h, w)
            rgb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(rgb)


def sample_video(path: Union[str, Path], cfg: SampleConfig = SampleConfig()) -> tuple[list[SampledFrame], SampleOutcome]:
    """All sampled frames in a list (short clips, tests); stream with :class:`VideoSampler` otherwise."""
    s = VideoSampler(path, cfg)
    frames = list(s)
    return frames, s.outcome


def is_video_file(path: Union[str, Path]) -> bool:
    """True when the file's first bytes carry a video signature (whatever its extension)."""
    try:
        with open(os.fspath(path), "rb") as fh:
            return looks_like_video(fh.read(64))
    except OSError:
        return False


def video_facts(path: Union[str, Path]) -> tuple[str, int, dict]:
    """(sha256, size, facts for ``record_path``) of a file that looks like a video, hashed in
    chunks (never read whole). ``format`` is the container when FFmpeg can open it (it is then
    sampled by autolabel), '' when it cannot (broken with the reason, nothing more to do); a file
    the container's size fields say is cut short is ``broken`` with that reason but keeps its
    container: the frames before the damage are still used."""
    path = Path(path)
    sha, size = file_sha256(path, with_size=True)
    facts = {"width": 0, "height": 0, "format": "", "status": "broken", "error": ""}
    try:
        info = probe(path)
    except DecodeError as e:
        facts["error"] = e.reason
        return sha, size, facts
    problem = container_problem(path, info.container)
    facts.update(width=info.width, height=info.height, format=info.container,
                 status="broken" if problem else "ingested", error=problem)
    return sha, size, facts


def file_sha256(path: Union[str, Path], with_size: bool = False):
    """The sha256 (hex) of a file, read in 1 MB chunks (never whole); with ``with_size``, (sha, size)."""
    import hashlib

    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return (h.hexdigest(), size) if with_size else h.hexdigest()
