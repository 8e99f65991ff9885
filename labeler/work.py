"""The per-image work of `autolabel` (detect, crop, propose) as plain top-level functions over typed
records, and the runners that execute them (labeler.inflight has their interface): in this process, in worker processes
(:class:`ProcessRunner`), or as Ray tasks (:mod:`labeler.distributed.ray_runner`, the same
functions). No database here: the caller (labeler.pipeline) is the one writer and stores the
results in input order.

A worker builds its detector and FER model once (per settings) and runs onnxruntime and OpenCV on
one thread, so that N workers use N cores without their thread pools fighting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from labeler.config import CropConfig, DetectConfig
from labeler.faces import cleaning
from labeler.faces import detect as facemod
from labeler.inflight import InlineRunner, Ordered, Runner, Unordered  # noqa: F401 (work.Ordered, ... as before)
from labeler.types import Box, Detection, ImageClean


@dataclass(frozen=True)
class WorkSettings:
    """Everything a worker needs besides the image; picklable, small."""

    detect: DetectConfig
    crop: CropConfig
    model: str  # the FER model's sidecar path (resolved by the driver, verified on load)
    flip: bool = True
    threads: int = 1  # onnxruntime intra-op threads per worker
    #: the model's name@version: found by name where ``model`` is not on this machine (a Ray node
    #: with labeler installed elsewhere); it must be that very version (checksum verified on load)
    model_ident: str = ""
    #: measure text, hashes and non-photo score beside detection (labeler.faces.cleaning)
    clean: bool = True
    #: with ``clean``: look for text on every image too (config ``[clean] text = "every_image"``);
    #: off, text is looked for only before a face is auto-accepted (labeler.cleanup.check_text)
    text: bool = True


@dataclass(frozen=True)
class ImageJob:
    image_id: int
    rgb: np.ndarray  # H x W x 3 uint8, EXIF orientation applied; a large photo reduced (labeler.ingest.imageio)
    scale: float = 1.0  # full-size pixels per pixel of ``rgb``: stored boxes and sizes are in full-size pixels


@dataclass(frozen=True)
class FaceWork:
    det: Detection
    crop: bytes  # the aligned crop, JPEG
    quality: Mapping[str, float]
    flags: tuple[str, ...]
    probs: tuple[float, ...]  # the FER model's probabilities, in the model's label order


@dataclass(frozen=True)
class ImageWork:
    image_id: int
    whole: bool  # one whole-image face
    faces: tuple[FaceWork, ...]
    clean: Optional[ImageClean] = None  # None when settings.clean is off


@dataclass(frozen=True)
class FilesJob:
    """A partition of files that a worker reads itself (a partitioned run, labeler.fanout): only their
    paths or URIs travel from the driver."""

    key: int
    paths: tuple[str, ...]


@dataclass(frozen=True)
class FileWork:
    """One file of a :class:`FilesJob` as the worker found it: ``kind``, ``sha``, ``size`` and
    ``reason`` of :class:`labeler.ingest.source.FileRead`, the decoded image's facts, and an image's
    :class:`ImageWork` (its ``image_id`` 0: the driver records the file and knows the id)."""

    kind: str
    sha: str = ""
    size: int = 0
    width: int = 0
    height: int = 0
    format: str = ""
    reason: str = ""
    work: Optional[ImageWork] = None


@dataclass(frozen=True)
class FilesWork:
    key: int
    files: tuple[FileWork, ...]


@dataclass(frozen=True)
class MeasureJob:
    """A stored image whose cleaning measurements (text included) a worker takes, reading it itself
    from the first of its paths that reads (the text check at the end of a partitioned run)."""

    image_id: int
    paths: tuple[str, ...]
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class CropJob:
    """Stored crops (JPEG) to run the FER model on again (`--repropose`)."""

    key: int
    crops: tuple[bytes, ...]


# ---------------------------------------------------------------- the work itself
def faces_of(detector, rgb: np.ndarray, d: DetectConfig, scale: float = 1.0) -> tuple[list[Detection], bool]:
    """The labeling units of an image (detection on a copy capped at ``d.max_side``, coarse to
    fine where ``d.coarse_face`` is set, filtered, or the whole image) and whether it is one
    whole-image face. ``scale``: full-size pixels per pixel of ``rgb`` (a reduced large photo): the
    smallest kept face, ``d.min_size``, stays in full-size pixels."""
    h, w = rgb.shape[:2]
    if scale != 1.0:
        d = replace(d, min_size=max(1, round(d.min_size / scale)))
    dets = facemod.detect_capped(detector, rgb, d.max_side, coarse_face=d.coarse_face, needed=lambda found: facemod.needed_size(
        found, w, h, min_score=d.min_score, min_rel_size=d.min_rel_size, min_size=d.min_size))
    kept, _dropped = facemod.filter_detections(dets, w, h, min_score=d.min_score, min_rel_size=d.min_rel_size, min_size=d.min_size)
    return facemod.faces_to_label(w, h, dets, kept, min_side=d.whole_image_min_side, small_side=d.whole_image_max_side)


def process_image(job: ImageJob, settings: WorkSettings, detector, model) -> ImageWork:
    """Detect, crop (from the full-resolution image), score quality and propose, for one image."""
    import cv2

    from labeler.ingest.imageio import encode_jpeg

    rgb, c = job.rgb, settings.crop
    dets, whole = faces_of(detector, rgb, settings.detect, job.scale)
    crops, quals, flags = [], [], []
    for det in dets:
        if whole:
            crop = cv2.resize(rgb, (c.size, c.size), interpolation=cv2.INTER_AREA)
        else:
            crop = facemod.align_crop(rgb, det, size=c.size, margin=c.margin)
        q = facemod.quality(rgb, det)
        q["size"] *= job.scale  # in full-size pixels, as the `small` flag's threshold
        f = tuple(facemod.quality_flags(q, settings.detect)) + (("whole_image",) if whole else ())
        if whole:
            f = tuple(x for x in f if x not in ("low_score", "small"))
        crops.append(crop)
        quals.append({k: float(v) for k, v in q.items()})
        flags.append(f)
    probs = model.predict(crops, flip=settings.flip) if crops else np.zeros((0, len(model.labels)))
    clean = cleaning.measure(rgb, [d.box for d in dets], settings.threads, text=settings.text) if settings.clean else None
    if clean is not None:
        flags = [cleaning.with_text_flag(f, fc.text_near) for f, fc in zip(flags, clean.faces)]
    faces = tuple(FaceWork(facemod.scaled(det, job.scale), encode_jpeg(cr), q, f, tuple(float(x) for x in pr))
                  for det, cr, q, f, pr in zip(dets, crops, quals, flags, probs))
    return ImageWork(job.image_id, whole, faces, clean)


#: the whole-image rule (a face-sized photo is one face) never applies to a video frame
NO_WHOLE_IMAGE = 1 << 30


def frame_settings(settings: WorkSettings) -> WorkSettings:
    """A sampled video frame's work (labeler.videolabel): a photo's, without the whole-image rule and
    without the cleaning measurements (a shot's frames are near-copies by nature; text detection
    took half of a frame's time)."""
    d = replace(settings.detect, whole_image_min_side=NO_WHOLE_IMAGE, whole_image_max_side=NO_WHOLE_IMAGE)
    return replace(settings, detect=d, clean=False)


def process_files(job: FilesJob, settings: WorkSettings, detector, model) -> FilesWork:
    """Read, hash and decode each file of ``job`` here (labeler.ingest.source.read_file), then
    detect, crop and propose each image (:func:`process_image`); the pixels never leave."""
    from labeler.ingest.source import read_file

    out = []
    for path in job.paths:
        got = read_file(path)
        d = got.decoded
        w = process_image(ImageJob(0, d.rgb, d.scale), settings, detector, model) if d is not None else None
        out.append(FileWork(got.kind, got.sha, got.size, d.width if d else 0, d.height if d else 0, d.format if d else "",
                            got.reason, w))
    return FilesWork(job.key, tuple(out))


def process_crops(job: CropJob, settings: WorkSettings, model) -> np.ndarray:
    from labeler.ingest.imageio import decode_crop

    return model.predict([decode_crop(b) for b in job.crops], flip=settings.flip)


_TOOLS: dict[WorkSettings, tuple[Any, Any]] = {}


def tools(settings: WorkSettings):
    """(detector, FER model) for ``settings``, built once per process."""
    got = _TOOLS.get(settings)
    if got is None:
        from labeler.fer.resolver import load_model

        d = settings.detect
        det = facemod.get_detector(d.detector, min_face_size=d.min_face_size, thresholds=tuple(d.thresholds), threads=settings.threads)
        want = settings.model if not settings.model_ident or Path(settings.model).is_file() else settings.model_ident
        got = _TOOLS[settings] = (det, load_model(want, intra_op_num_threads=settings.threads))
    return got


def label_image(job: ImageJob, settings: WorkSettings) -> ImageWork:
    """THE worker function: one image in, its faces with crops and proposals out (no database)."""
    det, model = tools(settings)
    return process_image(job, settings, det, model)


def label_frame(job: ImageJob, settings: WorkSettings) -> ImageWork:
    """The worker function of a sampled video frame: :func:`label_image` under :func:`frame_settings`."""
    det, model = tools(settings)
    return process_image(job, frame_settings(settings), det, model)


def label_files(job: FilesJob, settings: WorkSettings) -> FilesWork:
    """The worker function of a partitioned run: a partition of paths in, each file's facts and
    faces out (no database)."""
    det, model = tools(settings)
    return process_files(job, settings, det, model)


def measure_stored(job: MeasureJob, settings: WorkSettings) -> tuple[int, Optional[ImageClean]]:
    """The worker function of the text check: (image id, its measurements, or None when none of its
    paths reads any more)."""
    from labeler.ingest.paths import fs_path
    from labeler.ingest.source import is_uri, read_file

    for path in job.paths:
        got = read_file(path if is_uri(path) else fs_path(path))  # a stored local path: non-UTF-8 names escaped
        d = got.decoded
        if d is not None:  # the stored boxes are in full-size pixels; a large photo decodes reduced
            return job.image_id, cleaning.measure(d.rgb, [tuple(v / d.scale for v in b) for b in job.boxes], settings.threads)
    return job.image_id, None


def propose_crops(job: CropJob, settings: WorkSettings) -> np.ndarray:
    """The worker function of `--repropose`: N x K probabilities for stored crops."""
    return process_crops(job, settings, tools(settings)[1])


# ---------------------------------------------------------------- runners
def _init_worker(settings: WorkSettings, parent: int) -> None:
    import threading

    import cv2

    cv2.setNumThreads(1)
    steady_heap()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    tools(settings)  # load the models before the first image


def _exit_with_parent(parent: int) -> None:
    """A worker whose main process died (kill -9) exits instead of waiting for work forever."""
    import time

    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def steady_heap() -> None:
    """Have glibc's malloc give every block of 32 MB or more its own mapping, returned on free.

    By default the threshold moves up to 32 MB with the largest block freed so far, and the blocks
    under it come from a heap that fragments (one process grew to 1.8 GB over the 307 dev images
    once). A fixed threshold keeps the very large temporaries (a large photo's pyramid level, a full
    resolution decode) out of the heap. It was 1 MB until 2 Dec: every R-/O-Net batch and pyramid
    level was then mapped and unmapped again, and the kernel's page zeroing took 40% of autolabel's
    CPU (dev + web_pool, 922 photos, --workers 2 --no-clean: 93 s wall, 74 s system CPU; with 32 MB
    55 s and 10 s, largest process 0.56 GB against 0.49 GB, flat over the run). No effect where
    malloc is not glibc's."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


#: glibc's mmap threshold set by :func:`steady_heap` (its own default ceiling, fixed)
MMAP_THRESHOLD = 32 << 20


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ProcessRunner:
    """``workers`` local processes, spawned (never forked, which would copy onnxruntime's threads and
    the database connection); each exits when the main process dies."""

    def __init__(self, settings: WorkSettings, workers: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.workers = int(workers)
        self.settings = settings
        self.pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                        initargs=(settings, os.getpid()))

    def submit(self, fn: Callable, job: Any):
        return self.pool.submit(fn, job, self.settings)

    def result(self, handle) -> Any:
        return handle.result()

    def first_done(self, handles: list) -> list[int]:
        from concurrent.futures import FIRST_COMPLETED, wait

        wait(handles, return_when=FIRST_COMPLETED)
        return [i for i, h in enumerate(handles) if h.done()]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
