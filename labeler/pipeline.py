"""`labeler autolabel`: ingest -> detect -> crop -> propose -> route, resumable.

Each image is decoded once (during ingest) and its faces are detected right away; the faces of
``batch_images`` images are proposed by the FER model in one batch and committed together with
their routing decisions, and only then is the image marked ``detected``. A run killed at any point
redoes at most one batch and never duplicates anything (faces are unique per image and index).
Proposals and decisions are appended, never updated, so a rerun with another model re-proposes
without touching human annotations.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from labeler import store as db
from labeler.config import Config
from labeler.faces import detect as facemod
from labeler.ingest.imageio import Decoded, decode_crop, encode_jpeg
from labeler.ingest.rules import RuleSet
from labeler.ingest.walk import IngestReport, ingest
from labeler.routing import evidence, evidence_for, route
from labeler.store import Store
from labeler.types import Decision, DetectedImage, Detection, ImageRules, NewFace, NewProposal
from labeler.util import progress as _progress


@dataclass
class AutolabelReport:
    ingest: Optional[IngestReport] = None
    images_detected: int = 0
    faces: int = 0
    whole_image: int = 0
    no_face: int = 0
    reproposed: int = 0
    routes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

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
        out.append(f"time: {self.seconds:.1f} s")
        return out


def resolve_model(store: Store, name: Optional[str] = None):
    """The FER model to use: ``name`` if given, else the project's default (a setting in the
    database, set by `labeler models --default`), else the shipped one (labeler.fer.resolver)."""
    from labeler.fer.resolver import load_model
    from labeler.store import model_registry

    return load_model(name or None, registry=model_registry(store))


@dataclass
class _Pending:
    image_id: int
    dets: list[Detection]
    whole: bool
    crops: list[np.ndarray]
    quality: list[dict]
    flags: list[tuple[str, ...]]


class Autolabeler:
    def __init__(self, store: Store, cfg: Config = Config(), rules: Optional[RuleSet] = None, model=None, detector=None):
        self.store, self.cfg, self.rules = store, cfg, rules
        self.model = model if model is not None else resolve_model(store, cfg.model.name)
        d = cfg.detect
        self.detector = detector or facemod.get_detector(d.detector, min_face_size=d.min_face_size, thresholds=tuple(d.thresholds))
        self.detector_ident = f"{getattr(self.detector, 'name', d.detector)}@{getattr(self.detector, 'version', '')}"
        self.pending: list[_Pending] = []
        self.report = AutolabelReport()

    # ---- per image
    def faces_of(self, rgb: np.ndarray) -> tuple[list[Detection], bool]:
        d = self.cfg.detect
        h, w = rgb.shape[:2]
        dets = self.detector.detect(rgb)
        kept, _dropped = facemod.filter_detections(dets, w, h, min_score=d.min_score, min_rel_size=d.min_rel_size, min_size=d.min_size)
        return facemod.faces_to_label(w, h, dets, kept, min_side=d.whole_image_min_side, small_side=d.whole_image_max_side)

    def on_image(self, image_id: int, decoded: Decoded) -> None:
        rgb = decoded.rgb
        dets, whole = self.faces_of(rgb)
        c = self.cfg.crop
        crops, quals, flags = [], [], []
        for det in dets:
            if whole:
                import cv2

                crop = cv2.resize(rgb, (c.size, c.size), interpolation=cv2.INTER_AREA)
            else:
                crop = facemod.align_crop(rgb, det, size=c.size, margin=c.margin)
            q = facemod.quality(rgb, det)
            f = tuple(facemod.quality_flags(q, self.cfg.detect)) + (("whole_image",) if whole else ())
            if whole:
                f = tuple(x for x in f if x not in ("low_score", "small"))
            crops.append(crop)
            quals.append({k: float(v) for k, v in q.items()})
            flags.append(f)
        self.pending.append(_Pending(image_id, dets, whole, crops, quals, flags))
        if len(self.pending) >= self.cfg.model.batch_images:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        crops = [c for p in self.pending for c in p.crops]
        probs = self.model.predict(crops, flip=self.cfg.model.flip) if crops else np.zeros((0, len(self.model.labels)))
        todo = db.pending_rules(self.store, [p.image_id for p in self.pending])
        out: list[DetectedImage] = []
        k = 0
        for p in self.pending:
            pr, k = probs[k : k + len(p.crops)], k + len(p.crops)
            rules = todo.get(p.image_id)
            if rules is None:
                continue
            faces = []
            for i, det in enumerate(p.dets):
                props, d = self._propose(rules, len(p.dets), p.whole, p.flags[i], pr[i], add_rule=True)
                faces.append(NewFace(box=det.box, score=det.score, landmarks=det.landmarks, whole_image=p.whole,
                                     quality=p.quality[i], flags=p.flags[i], crop=encode_jpeg(p.crops[i]), proposals=props, decision=d))
            out.append(DetectedImage(p.image_id, tuple(faces)))
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
                 add_rule: bool) -> tuple[tuple[NewProposal, ...], Decision]:
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
        ev = evidence(n_faces, rules.state, rules.label, rules.words, probs, self.model.ident, flags, whole)
        return tuple(props), route(ev, self.cfg.routing)

    def _count(self, r: str) -> None:
        self.report.routes[r] = self.report.routes.get(r, 0) + 1

    # ---- whole runs
    def undetected_ids(self) -> set[int]:
        """Images ingested earlier whose detection never finished (a killed run): redone on rerun."""
        return db.undetected_ids(self.store)

    def run(self, root: str | Path, include_folders: bool = False, progress: Optional[bool] = None) -> AutolabelReport:
        t0 = time.perf_counter()
        todo = self.undetected_ids()  # one query, not one per known file
        self.report.ingest = ingest(
            self.store, root, self.rules, include_folders=include_folders, on_image=self.on_image,
            needs_decode=todo.__contains__, progress=progress,
        )
        self.flush()
        for _ in range(db.route_broken(self.store)):
            self._count("broken")
        self.repropose(only_stale=True, progress=progress)
        self.report.seconds = time.perf_counter() - t0
        return self.report

    def repropose(self, only_stale: bool = True, progress: Optional[bool] = None, batch: int = 256) -> int:
        """Run the current model on faces without a human label and re-route them. With
        ``only_stale`` only faces whose newest model proposal is from another model (or missing)."""
        todo = db.faces_to_repropose(self.store, self.model.ident, only_stale)
        n = 0
        for i in _progress(range(0, len(todo), batch), progress if todo else False, "re-propose"):
            faces = db.stored_faces(self.store, todo[i : i + batch])
            probs = self.model.predict([decode_crop(f.crop) for f in faces], flip=self.cfg.model.flip)
            items = []
            for f, pr in zip(faces, probs):
                props, d = self._propose(f.rules, f.n_faces, f.whole_image, f.flags, pr, add_rule=False)
                items.append((f.image_id, f.face_id, props, d))
            n += db.add_routed(self.store, items)
        self.report.reproposed += n
        return n

    def reroute(self) -> int:
        """Re-run routing (e.g. after a policy change) from the stored proposals; adds a decision
        only where the route, label or reason changes."""
        recs = [r for r in db.iter_face_records(self.store) if r.face_id is not None]
        nfaces: dict[int, int] = {}
        for r in recs:
            nfaces[r.image_id] = nfaces.get(r.image_id, 0) + 1
        items = []
        for r in recs:
            d = route(evidence_for(r, nfaces[r.image_id]), self.cfg.routing)
            if r.route == "pending" or (r.route, r.decision_label, r.reason) != (d.route, d.label, d.reason):
                items.append((r.image_id, r.face_id, (), d))
        return db.add_routed(self.store, items)
