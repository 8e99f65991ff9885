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
from sqlalchemy import select

from labeler.faces import detect as facemod
from labeler.config import Config
from labeler.ingest.imageio import Decoded, decode_crop, encode_jpeg
from labeler.ingest.walk import IngestReport, _progress, ingest
from labeler.routing import FaceEvidence, route
from labeler.ingest.rules import RuleSet
from labeler.store import Decision, Face, Image, Proposal, Store, current_annotations, latest_ids
from labeler.types import Detection

DEFAULT_MODEL_KEY = "default_model"


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
    database, set by `labeler models --default`), else the shipped one."""
    from labeler.fer.model import load_model

    return load_model(name or store.get_setting(DEFAULT_MODEL_KEY) or None)


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
        small = d.whole_image_min_side <= min(w, h) <= d.whole_image_max_side
        if (len(kept) <= 1 and small) or (not kept and facemod.is_face_crop_candidate(w, h, dets)):
            # an already-cropped face: the whole image is the labeling unit (keep the detector's
            # score when it did see the face)
            score = float(kept[0].score) if kept else 0.0
            whole = facemod.whole_image_face(w, h)
            return [type(whole)(box=whole.box, score=score, landmarks=None)], True
        return list(kept), False

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
        k = 0
        with self.store.session() as s:
            for p in self.pending:
                img = s.get(Image, p.image_id)
                if img is None or img.detected:
                    k += len(p.crops)
                    continue
                if not p.dets:
                    s.add(Decision(image_id=img.id, face_id=None, route="no_face", label=None, reason="no face detected", priority=0.0, source=self.detector_ident))
                    self.report.no_face += 1
                    self._count("no_face")
                for i, det in enumerate(p.dets):
                    pr = probs[k]
                    k += 1
                    face = Face(
                        image_id=img.id, idx=i, x1=float(det.box[0]), y1=float(det.box[1]), x2=float(det.box[2]), y2=float(det.box[3]),
                        det_score=float(det.score), landmarks=[list(map(float, pt)) for pt in det.landmarks] if det.landmarks else None,
                        whole_image=p.whole, quality=p.quality[i], flags=",".join(p.flags[i]), detector=self.detector_ident,
                        crop=encode_jpeg(p.crops[i]),
                    )
                    s.add(face)
                    s.flush()
                    self._propose_and_route(s, img, face, pr, n_faces=len(p.dets), add_rule=True)
                    self.report.faces += 1
                    self.report.whole_image += int(p.whole)
                img.detected = True
                img.detector = self.detector_ident
                self.report.images_detected += 1
        self.pending = []

    def _propose_and_route(self, s, img: Image, face: Face, pr: np.ndarray, n_faces: int, add_rule: bool) -> None:
        labels = list(self.model.labels)
        probs = {lab: round(float(v), 6) for lab, v in zip(labels, pr)}
        top = labels[int(np.argmax(pr))]
        words = [w for w, _c in json.loads(img.rule_words or "[]") if not w.startswith("!")]
        if add_rule and img.rule_state != "none":
            note = "" if n_faces == 1 or face.whole_image else f"multi-face image ({n_faces} faces): keyword not given to faces"
            s.add(Proposal(face_id=face.id, source_kind="rule", source=img.rule_source, label=img.rule_label if (n_faces == 1 or face.whole_image) else None,
                           prob=None, probs=None, detail=json.dumps({"words": json.loads(img.rule_words or "[]"), "state": img.rule_state, "note": note})))
        s.add(Proposal(face_id=face.id, source_kind="model", source=self.model.ident, label=top, prob=float(np.max(pr)), probs=probs, detail=""))
        ev = FaceEvidence(
            n_faces=n_faces, rule_state=img.rule_state, rule_label=img.rule_label, rule_words=tuple(words), probs=probs,
            model=self.model.ident, flags=tuple(f for f in (face.flags or "").split(",") if f), whole_image=face.whole_image,
        )
        d = route(ev, self.cfg.routing)
        s.add(Decision(image_id=img.id, face_id=face.id, route=d.route, label=d.label, reason=d.reason, priority=d.priority, source=d.source))
        self._count(d.route)

    def _count(self, r: str) -> None:
        self.report.routes[r] = self.report.routes.get(r, 0) + 1

    # ---- whole runs
    def undetected_ids(self) -> set[int]:
        """Images ingested earlier whose detection never finished (a killed run): redone on rerun."""
        with self.store.session() as s:
            return set(s.scalars(select(Image.id).where(Image.status == "ingested", Image.detected.is_(False))))

    def run(self, root: str | Path, include_folders: bool = False, progress: Optional[bool] = None) -> AutolabelReport:
        t0 = time.perf_counter()
        todo = self.undetected_ids()  # one query, not one per known file
        self.report.ingest = ingest(
            self.store, root, self.rules, include_folders=include_folders, on_image=self.on_image,
            needs_decode=todo.__contains__, progress=progress,
        )
        self.flush()
        self._route_broken()
        self.repropose(only_stale=True, progress=progress)
        self.report.seconds = time.perf_counter() - t0
        return self.report

    def _route_broken(self) -> None:
        with self.store.session() as s:
            done = set(s.scalars(select(Decision.image_id).where(Decision.face_id.is_(None), Decision.route == "broken")))
            for img in s.scalars(select(Image).where(Image.status == "broken")):
                if img.id not in done:
                    s.add(Decision(image_id=img.id, face_id=None, route="broken", label=None, reason=img.error, priority=0.0, source="ingest"))
                    self._count("broken")

    def repropose(self, only_stale: bool = True, progress: Optional[bool] = None, batch: int = 256) -> int:
        """Run the current model on faces without a human label and re-route them. With
        ``only_stale`` only faces whose newest model proposal is from another model (or missing)."""
        with self.store.session() as s:
            fids = list(s.scalars(select(Face.id).order_by(Face.id)))
            labeled = set(current_annotations(s, None).keys())
            todo = [f for f in fids if f not in labeled]
            if only_stale and todo:
                newest = latest_ids(s, Proposal, None, where=Proposal.source_kind == "model")
                src = dict(s.execute(select(Proposal.id, Proposal.source).where(Proposal.id.in_(list(newest.values())))).all()) if newest else {}
                todo = [f for f in todo if src.get(newest.get(f, -1)) != self.model.ident]
        n = 0
        for i in _progress(range(0, len(todo), batch), progress if todo else False, "re-propose"):
            chunk = todo[i : i + batch]
            with self.store.session() as s:
                faces = s.scalars(select(Face).where(Face.id.in_(chunk)).order_by(Face.id)).all()
                nfaces: dict[int, int] = {}
                for iid, in s.execute(select(Face.image_id).where(Face.image_id.in_({f.image_id for f in faces}))):
                    nfaces[iid] = nfaces.get(iid, 0) + 1
                crops = [decode_crop(f.crop) for f in faces]
                probs = self.model.predict(crops, flip=self.cfg.model.flip)
                for f, pr in zip(faces, probs):
                    img = s.get(Image, f.image_id)
                    self._propose_and_route(s, img, f, pr, n_faces=nfaces[f.image_id], add_rule=False)
                    n += 1
        self.report.reproposed += n
        return n

    def reroute(self) -> int:
        """Re-run routing (e.g. after a policy change) from the stored proposals; adds a decision
        only where the route, label or reason changes."""
        changed = 0
        with self.store.session() as s:
            prop_ids = latest_ids(s, Proposal, None, where=Proposal.source_kind == "model")
            props = {p.face_id: p for p in s.scalars(select(Proposal).where(Proposal.id.in_(list(prop_ids.values()))))}
            dec_ids = latest_ids(s, Decision, None)
            decs = {d.face_id: d for d in s.scalars(select(Decision).where(Decision.id.in_(list(dec_ids.values()))))}
            nfaces: dict[int, int] = {}
            for iid, in s.execute(select(Face.image_id)):
                nfaces[iid] = nfaces.get(iid, 0) + 1
            for f in s.scalars(select(Face)):
                img = f.image
                p = props.get(f.id)
                words = [w for w, _c in json.loads(img.rule_words or "[]") if not w.startswith("!")]
                ev = FaceEvidence(
                    n_faces=nfaces[f.image_id], rule_state=img.rule_state, rule_label=img.rule_label, rule_words=tuple(words),
                    probs=p.probs if p else None, model=p.source if p else "", flags=tuple(x for x in (f.flags or "").split(",") if x),
                    whole_image=f.whole_image,
                )
                d = route(ev, self.cfg.routing)
                old = decs.get(f.id)
                if old is None or (old.route, old.label, old.reason) != (d.route, d.label, d.reason):
                    s.add(Decision(image_id=img.id, face_id=f.id, route=d.route, label=d.label, reason=d.reason, priority=d.priority, source=d.source))
                    changed += 1
        return changed
