"""`labeler autolabel`: ingest -> detect -> crop -> propose -> route, resumable.

Each image is decoded once (during ingest) and its faces are detected right away; the faces of
``batch_images`` images are proposed by the FER model in one batch and committed together with
their routing decisions, and only then is the image marked ``detected``. A run killed at any point
redoes at most one batch and never duplicates anything (faces are unique per image and index).
Proposals and decisions are appended, never updated, so a rerun with another model re-proposes
without touching human annotations.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from labeler import store as db
from labeler.cleanup import reroute_checked
from labeler.config import TEXT_EVERY_IMAGE, Config
from labeler.faces import detect as facemod
from labeler import work
from labeler.ingest.imageio import Decoded, decode_crop
from labeler.ingest.rules import RuleSet
from labeler.fanout import PARTITION, Fanout, FanoutStats, Part
from labeler.ingest.source import is_uri
from labeler.ingest.walk import IngestReport, ingest
from labeler.routing import evidence, evidence_for, route
from labeler.store import Store
from labeler.types import Decision, DetectedImage, Detection, ImageRules, NewFace, NewProposal, text_pending
from labeler.util import progress as _progress
from labeler.work import ImageWork


@dataclass
class AutolabelReport:
    ingest: Optional[IngestReport] = None
    images_detected: int = 0
    faces: int = 0
    whole_image: int = 0
    no_face: int = 0
    reproposed: int = 0
    rerouted: int = 0
    text_checked: int = 0  # images text was looked for on before a face of theirs was auto-accepted
    routes: dict[str, int] = field(default_factory=dict)
    videos: list = field(default_factory=list)  # labeler.videolabel.VideoDone per video processed
    taken_over: int = 0  # images/videos another run had recorded but not detected, done by this one
    root: str = ""  # the folder (or file) as given
    left: list[str] = field(default_factory=list)  # paths under it still not detected at the end
    fanout: Optional[FanoutStats] = None  # a partitioned run: what the driver sent
    sent_bytes: Optional[int] = None  # ... and its tasks' pickled arguments, where the runner counts them
    seconds_storing: float = 0.0  # storing faces, proposals and decisions (flush)
    seconds_finishing: float = 0.0  # after the images: re-propose, regroup, re-route
    cpu_seconds: float = 0.0  # CPU of this process (all its threads) during the run
    cpu_finishing: float = 0.0  # ... of it after the images
    seconds: float = 0.0

    def warnings(self) -> list[str]:
        """What the run could not finish, and how to finish it (the CLI prints it on stderr)."""
        if not self.left:
            return []
        from labeler.ingest.paths import shown

        return [f"{len(self.left)} images under {shown(self.root)} are still not detected (e.g. {shown(self.left[0], 160)}): "
                "another run is working on them, or they could not be read now; run `labeler autolabel "
                f"{shown(self.root)}` again to finish them, and `labeler status` shows what is left"]

    def lines(self) -> list[str]:
        out = list(self.ingest.lines()) if self.ingest else []
        out += [
            f"images detected:   {self.images_detected}",
            f"faces:             {self.faces} ({self.whole_image} whole-image)",
            f"images, no face:   {self.no_face}",
        ]
        if self.reproposed:
            out.append(f"faces re-proposed: {self.reproposed}")
        for k, v in sorted(self.routes.items()):
            out.append(f"route {k:12s} {v}")
        if self.videos:
            from labeler.videolabel import report_lines

            out += report_lines(self.videos)
        if self.text_checked:
            out.append(f"text looked for before auto-accept: {self.text_checked} images")
        if self.rerouted:
            out.append(f"re-routed: {self.rerouted} faces (see `labeler status`)")
        if self.taken_over:
            out.append(f"finished here:     {self.taken_over} images another run had recorded but not detected")
        if self.left:
            out.append(f"not detected:      {len(self.left)} images (see the warning)")
        f = self.fanout
        if f is not None and f.files:
            sent = "" if self.sent_bytes is None else (f"; sent {self.sent_bytes / f.files:.0f} B per file, "
                                                       f"{(self.sent_bytes - f.path_bytes) / f.files:.0f} B besides the path")
            out.append(f"read by the workers: {f.files} files in {f.tasks} tasks{sent}")
            out.append(f"driver: CPU {self.cpu_seconds:.1f} s ({self.cpu_finishing:.1f} s at the end); "
                       f"waiting {f.seconds_waiting:.1f} s, recording files {f.seconds_recording:.1f} s, "
                       f"storing faces {self.seconds_storing:.1f} s, end of run {self.seconds_finishing:.1f} s")
        out.append(f"time: {self.seconds:.1f} s")
        return out


def make_runner(settings: work.WorkSettings, workers: int = 1, ray: Optional[str] = None) -> Optional[work.Runner]:
    """None (work in this process) for one local worker, else a process pool (labeler.work) or a Ray
    runner (labeler.distributed.ray_runner, imported only then: ray is an extra; it builds on
    labeler.work, so the choice lives here, above both)."""
    if ray:
        from labeler.distributed.ray_runner import RayRunner

        return RayRunner(settings, address=ray, workers=workers)
    if workers <= 1:
        return None
    return work.ProcessRunner(settings, workers)


def resolve_model(store: Store, name: Optional[str] = None):
    """The FER model to use: ``name`` if given, else the project's default (a setting in the
    database, set by `labeler models --default`), else the shipped one (labeler.fer.resolver)."""
    from labeler.fer.resolver import load_model
    from labeler.store import model_registry

    return load_model(name or None, registry=model_registry(store))


class Autolabeler:
    """``workers`` > 1 runs detect + crop + propose in that many worker processes, ``ray`` (``auto``
    or a cluster address) as Ray tasks (labeler.work); this process stays the one writer. One worker
    works in this process (with ``detector``/``model`` if given).

    A partitioned run (``fanout``; by default with ``ray``, a URI root or a ``part`` of several)
    has the workers read their own files, ``partition`` paths per task (labeler.fanout); this
    process lists and writes, and with ``part`` takes only its part of the folder (and of the faces
    to re-propose), so that several drivers can share one folder and one database."""

    def __init__(self, store: Store, cfg: Config = Config(), rules: Optional[RuleSet] = None, model=None, detector=None,
                 workers: int = 1, ray: Optional[str] = None, clean: bool = True, part: Optional[Part] = None,
                 fanout: Optional[bool] = None, partition: int = PARTITION):
        work.steady_heap()  # memory flat in the number of images
        self.store, self.cfg, self.rules = store, cfg, rules
        self.model = model if model is not None else resolve_model(store, cfg.model.name)
        d = cfg.detect
        self.detector = detector or facemod.get_detector(d.detector, min_face_size=d.min_face_size, thresholds=tuple(d.thresholds))
        self.detector_ident = f"{getattr(self.detector, 'name', d.detector)}@{getattr(self.detector, 'version', '')}"
        self.workers, self.ray = max(1, int(workers)), ray
        self.part, self.fanout, self.partition = part or Part(), fanout, max(1, int(partition))
        self._runner: Optional[work.Runner] = None  # the run's runner (videos of a partitioned run use it)
        self.clean = bool(clean)  # cleaning measurements per image (off: `labeler clean` measures later)
        self.pending: list[ImageWork] = []
        self.report = AutolabelReport()
        self.estimates = None  # (bucket -> BucketEstimate, Selection), read on first use
        self._queue: Optional[work.Ordered] = None
        self._videos = None  # labeler.videolabel.VideoLabeler, made for the first video

    def settings(self) -> work.WorkSettings:
        """What a worker needs: the settings and the FER model's sidecar (workers load it themselves)."""
        card = getattr(self.model, "card", None)
        if card is None:
            raise ValueError(f"--workers/--ray: expected a FER model loaded from a sidecar, found {self.model!r}; use one worker.")
        return work.WorkSettings(self.cfg.detect, self.cfg.crop, str(card.sidecar), self.cfg.model.flip,
                                 model_ident=f"{card.name}@{card.version}", clean=self.clean, text=self.text_every_image)

    def settings_here(self) -> work.WorkSettings:
        """The settings of work done in this process (with this Autolabeler's detector and model)."""
        return work.WorkSettings(self.cfg.detect, self.cfg.crop, "", self.cfg.model.flip, clean=self.clean,
                                 text=self.text_every_image)

    @property
    def text_every_image(self) -> bool:
        return self.cfg.clean.text == TEXT_EVERY_IMAGE

    # ---- per image
    def faces_of(self, rgb: np.ndarray) -> tuple[list[Detection], bool]:
        return work.faces_of(self.detector, rgb, self.cfg.detect)

    def on_image(self, image_id: int, decoded: Decoded) -> None:
        job = work.ImageJob(image_id, decoded.rgb, decoded.scale)
        if self._queue is None:
            self.accept(work.process_image(job, self.settings_here(), self.detector, self.model))
            return
        for res in self._queue.put(job, decoded.rgb.nbytes):
            self.accept(res)

    def on_video(self, image_id: int, path: Path) -> None:
        """Sample, detect, track and store one video, here (labeler.videolabel)."""
        from labeler.videolabel import VideoLabeler

        if self._videos is None:
            self._videos = VideoLabeler(self.store, self.cfg, self.detector, self.model, self.detector_ident)
        done = self._videos.process(image_id, path, runner=self._runner)
        self.report.videos.append(done)
        if done.stored:  # the video's own row and each sampled frame's are detected images
            self.report.images_detected += 1 + done.frames
            self.report.faces += done.faces
            self.report.routes["track"] = self.report.routes.get("track", 0) + done.faces

    def accept(self, res: ImageWork) -> None:
        """One image's work, in input order; stored with the next batch."""
        self.pending.append(res)
        if len(self.pending) >= self.cfg.model.batch_images:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        t = time.perf_counter()
        try:
            self._flush()
        finally:
            self.report.seconds_storing += time.perf_counter() - t

    def _flush(self) -> None:
        todo = db.pending_rules(self.store, [p.image_id for p in self.pending])
        out: list[DetectedImage] = []
        for p in self.pending:
            rules = todo.get(p.image_id)
            if rules is None:
                continue
            faces = []
            fcs = p.clean.faces if p.clean is not None else (None,) * len(p.faces)
            for fw, fc in zip(p.faces, fcs):
                pending = text_pending(fc and fc.text_near, p.clean and p.clean.nonphoto)
                props, d = self._propose(rules, len(p.faces), p.whole, fw.flags, np.asarray(fw.probs), add_rule=True,
                                         text_pending=pending)
                faces.append(NewFace(box=fw.det.box, score=fw.det.score, landmarks=fw.det.landmarks, whole_image=p.whole,
                                     quality=dict(fw.quality), flags=fw.flags, crop=fw.crop, proposals=props, decision=d,
                                     phash=fc and fc.phash, text_near=fc and fc.text_near))
            out.append(DetectedImage(p.image_id, tuple(faces), p.clean))
        done = set(db.save_detections(self.store, out, self.detector_ident))
        for di in out:
            if di.image_id not in done:
                continue
            self.report.images_detected += 1
            if not di.faces:
                self.report.no_face += 1
                self._count("no_face")
            for nf in di.faces:
                self.report.faces += 1
                self.report.whole_image += int(nf.whole_image)
                self._count(nf.decision.route)
        self.pending = []

    def _propose(self, rules: ImageRules, n_faces: int, whole: bool, flags: tuple[str, ...], pr: np.ndarray,
                 add_rule: bool, text_pending: bool = False) -> tuple[tuple[NewProposal, ...], Decision]:
        """The proposals for one face (the rule's, when ``add_rule``, then the model's) and its route."""
        labels = list(self.model.labels)
        probs = {lab: round(float(v), 6) for lab, v in zip(labels, pr)}
        top = labels[int(np.argmax(pr))]
        props: list[NewProposal] = []
        if add_rule and rules.state != "none":
            one = n_faces == 1 or whole
            note = "" if one else f"multi-face image ({n_faces} faces): keyword not given to faces"
            detail = json.dumps({"words": [list(w.as_pair()) for w in rules.words], "state": rules.state, "note": note})
            props.append(NewProposal("rule", rules.source, rules.label if one else None, None, None, detail))
        props.append(NewProposal("model", self.model.ident, top, float(np.max(pr)), probs, ""))
        ev = evidence(n_faces, rules.state, rules.label, rules.words, probs, self.model.ident, flags, whole,
                      text_pending=text_pending)
        if self.estimates is None:  # the buckets' precision or the selection as measured so far (labeler.audit)
            self.estimates = db.routing_inputs(self.store, self.cfg.routing)
        return tuple(props), route(ev, self.cfg.routing, *self.estimates)

    def _count(self, r: str) -> None:
        self.report.routes[r] = self.report.routes.get(r, 0) + 1

    # ---- whole runs
    def undetected_ids(self) -> set[int]:
        """Images ingested earlier whose detection never finished (a killed run): redone on rerun."""
        return db.undetected_ids(self.store)

    def run(self, root: str | Path, include_folders: bool = False, progress: Optional[bool] = None,
            repropose_all: bool = False) -> AutolabelReport:
        """Ingest, detect and propose what is new, then re-propose the faces whose newest proposal is from
        another model (``repropose_all``: every face without a human label, once), then re-route."""
        t0, c0 = time.perf_counter(), time.process_time()
        todo = self.undetected_ids()  # one query, not one per known file
        known = db.last_face_id(self.store)  # faces after it are found, and proposed, by this run
        runner = self._runner = make_runner(self.settings(), self.workers, self.ray) if self.workers > 1 or self.ray else None
        fan = self.fanout if self.fanout is not None else bool(self.ray or is_uri(root) or self.part.count > 1)
        try:
            kw = dict(needs_decode=todo.__contains__, on_video=self.on_video,
                      needs_video=db.pending_video_ids(self.store).__contains__)
            if fan:
                self.report.ingest = self._fan_out(root, runner, include_folders, progress, **kw)
            else:
                if runner is not None:
                    self._queue = work.Ordered(runner, work.label_image, window=2 * runner.workers)
                self.report.ingest = ingest(self.store, root, self.rules, include_folders=include_folders,
                                            on_image=self.on_image, progress=progress, **kw)
            self._drain()
            if not fan:  # (a partitioned run leaves the other drivers' files to them)
                self.finish_left(root)
            t1, c1 = time.perf_counter(), time.process_time()
            self.repropose(only_stale=not repropose_all, progress=progress, runner=runner, upto=known)
            self._queue = None
            with db.exclusive(self.store, "autolabel-finish"):  # several drivers at once: one after the other here
                db.regroup(self.store)  # near-duplicate groups with the new images' hashes in
                for _ in range(db.route_broken(self.store)):
                    self._count("broken")
                # on the estimates of the buckets with the new faces in; a partitioned run's workers read
                # the images to look for text on
                self.report.rerouted += self.reroute(runner if fan else None)
        finally:
            self._queue = self._runner = None
            if runner is not None:
                runner.close()
        self.report.seconds = time.perf_counter() - t0
        self.report.seconds_finishing = time.perf_counter() - t1
        self.report.cpu_seconds, self.report.cpu_finishing = time.process_time() - c0, time.process_time() - c1
        return self.report

    def _drain(self) -> None:
        for res in self._queue.drain() if self._queue else ():
            self.accept(res)
        self.flush()

    def finish_left(self, root: str | Path) -> None:
        """Detect what is still undetected under ``root`` after the walk: images and videos another
        run recorded after this one began (it skipped them as that run's), which that run has not
        stored (killed, or still at work: the first to store an image wins, the other stores
        nothing). What cannot be read now is left, and listed in the report (``left``)."""
        from labeler.ingest.imageio import DecodeError, decode
        from labeler.ingest.paths import db_path, fs_path
        from labeler.ingest.video import file_sha256

        under = db_path(str(Path(root).resolve()))
        for u in db.undetected(self.store, under):
            p = Path(fs_path(u.path))
            try:
                if u.video:
                    if file_sha256(p) != u.sha256:  # changed since: not this video any more
                        continue
                    self.on_video(u.image_id, p)
                else:
                    data = p.read_bytes()
                    if hashlib.sha256(data).hexdigest() != u.sha256:
                        continue
                    self.on_image(u.image_id, decode(data))
            except (OSError, DecodeError):
                continue
            self.report.taken_over += 1
        self._drain()
        self.report.root, self.report.left = str(root), [u.path for u in db.undetected(self.store, under)]

    def _fan_out(self, root, runner: Optional[work.Runner], include_folders: bool, progress, **kw) -> IngestReport:
        """The partitioned ingest (labeler.fanout): workers read their files, this process records."""
        if runner is None:  # one worker, here, with this Autolabeler's own detector and model
            s = self.settings_here()
            runner = work.InlineRunner(lambda _fn, job: work.process_files(job, s, self.detector, self.model))
        pool = work.Unordered(runner, work.label_files, window=2 * runner.workers)
        root = str(root) if is_uri(root) else str(Path(root).resolve())
        fan = Fanout(self.store, root, self.rules, pool, lambda iid, w: self.accept(replace(w, image_id=iid)),
                     include_folders, self.part, self.partition, **kw)
        rep = fan.run(progress)
        sent = getattr(runner, "sent", {}).get(work.label_files.__name__)
        self.report.fanout, self.report.sent_bytes = fan.stats, None if sent is None else sent[1]
        return rep

    def repropose(self, only_stale: bool = True, progress: Optional[bool] = None, batch: int = 256,
                  runner: Optional[work.Runner] = None, upto: Optional[int] = None) -> int:
        """Run the current model on faces without a human label (and on faces whose labels are all blind:
        audits and imports measure the current model's precision) and re-route them. With
        ``only_stale`` only faces whose newest model proposal is from another model (or missing); with
        ``upto`` only face ids up to it (a run leaves out the faces it found and proposed itself).
        Batches run on ``runner`` (or, with ``workers`` > 1, a pool started here), stored in order."""
        todo = db.faces_to_repropose(self.store, self.model.ident, only_stale, upto)
        if todo:  # faces of video frames keep the proposals their tracks were built on; a part takes its share
            on_frames = db.video_face_ids(self.store)
            todo = [f for f in todo if f not in on_frames and self.part.takes_id(f)]
        if not todo:
            return 0
        own = None
        if runner is None and (self.workers > 1 or self.ray) and len(todo) > batch:
            runner = own = make_runner(self.settings(), self.workers, self.ray)
        try:
            return self._repropose(todo, progress, batch, runner)
        finally:
            if own is not None:
                own.close()

    def _repropose(self, todo: list[int], progress: Optional[bool], batch: int, runner: Optional[work.Runner]) -> int:
        n = 0
        queue = work.Ordered(runner, work.propose_crops, window=2 * runner.workers) if runner is not None else None
        waiting: deque = deque()  # face batches in flight, oldest first
        for i in _progress(range(0, len(todo), batch), progress, "re-propose"):
            faces = db.stored_faces(self.store, todo[i : i + batch])
            if queue is None:
                n += self._store_proposed(faces, self.model.predict([decode_crop(f.crop) for f in faces], flip=self.cfg.model.flip))
                continue
            waiting.append(faces)
            for probs in queue.put(work.CropJob(i, tuple(f.crop for f in faces))):
                n += self._store_proposed(waiting.popleft(), probs)
        for probs in queue.drain() if queue is not None else ():
            n += self._store_proposed(waiting.popleft(), probs)
        self.report.reproposed += n
        return n

    def _store_proposed(self, faces, probs) -> int:
        items = []
        for f, pr in zip(faces, probs):
            props, d = self._propose(f.rules, f.n_faces, f.whole_image, f.flags, pr, add_rule=False,
                                     text_pending=f.text_pending)
            items.append((f.image_id, f.face_id, props, d))
        return db.add_routed(self.store, items)

    def reroute(self, runner: Optional[work.Runner] = None) -> int:
        """Re-run routing (after a policy change, new audits, new faces) from the stored proposals and
        the current bucket estimates, after looking for text on the images of faces it would
        auto-accept (labeler.cleanup.check_text, on ``runner`` if given); adds a decision only where
        the route, label, reason or bucket changes."""
        checked, n = reroute_checked(self.store, self.cfg.routing, runner=runner)
        self.report.text_checked += checked.measured
        self.estimates = None
        return n
