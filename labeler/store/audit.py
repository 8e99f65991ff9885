"""Audits: which bucket every candidate face is in, what its blind human labels say, the per-bucket
precision estimates (``labeler.audit``), the seeded audit samples, and re-routing on them.

An audit answer is an ordinary human label (annotation action ``label`` or ``unusable``) whose
``source`` is ``"audit"`` (:data:`AUDIT_SOURCE`), so it counts as a human label everywhere a human
label counts (accepted label, export, training). Labels brought in by ``labeler import``
(``source`` ``import:...``) were made without seeing our proposals: they count as audits too. A
review label made in the UI is not blind (the proposal was shown) and does not count.

Buckets are computed from each face's current evidence (``labeler.routing.candidate``), so after
a re-proposal the audits count for the buckets the faces are in now, except where the face's
proposal comes from a model trained on that very label (``trained_on`` of its model_versions row): a
model agrees with the labels it learned more often than with new ones, so those answers would flatter
its buckets. Such a face is human-labeled (it is never drawn again); its bucket needs new audits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Optional

from labeler.audit import AccuracyTally, BucketState, audit_order, estimate, settle
from labeler.routing import RoutingPolicy, candidate, evidence_for, route
from labeler.store.engine import Store
from labeler.store.models import model_version_rows
from labeler.store.records import iter_face_records
from labeler.store.review import add_annotation
from labeler.types import BucketEstimate, FaceRecord

#: the annotation source of an audit answer (a blind label: the proposal hidden until answered)
AUDIT_SOURCE = "audit"
#: faces drawn per open bucket per round
BATCH = 10


def is_blind(source: str) -> bool:
    """An audit answer or an imported label: made without seeing our proposal."""
    return source == AUDIT_SOURCE or source.startswith("import")


@dataclass(frozen=True)
class Member:
    """A candidate face: its bucket, the label the bucket gives it, the model's probability of that
    label, its blind label (None: not audited) and whether anyone labeled it."""

    face_id: int
    image_id: int
    bucket: str
    label: str
    prob: float
    audit_label: Optional[str]
    human: bool


@dataclass(frozen=True)
class BucketPlan:
    """One bucket at the target: its state (``labeler.audit.BucketState``) and the faces to show."""

    state: BucketState
    sample: tuple[int, ...]

    @property
    def estimate(self) -> BucketEstimate:
        return self.state.estimate


@dataclass(frozen=True)
class AuditItem:
    """One audit card for the UI: show the face, hide ``label`` until the human answered."""

    face_id: int
    bucket: str
    label: str


def _blind_label(rec: FaceRecord) -> Optional[str]:
    said = [("unusable" if a.action == "unusable" else (a.labels or ("",))[0]) for a in rec.annotations if is_blind(a.source)]
    return Counter(said).most_common(1)[0][0] if said else None


def _records(store: Store) -> tuple[list[FaceRecord], dict[int, int]]:
    from labeler.store.video import TRACK_ROUTE

    # faces of video frames are labeled through their tracks: neither audited nor re-routed one by one
    recs = [r for r in iter_face_records(store) if r.face_id is not None and r.route != TRACK_ROUTE]
    n: dict[int, int] = {}
    for r in recs:
        n[r.image_id] = n.get(r.image_id, 0) + 1
    return recs, n


def trained_on(store: Store) -> dict[str, frozenset[int]]:
    """Model ident (``name@version``) -> the faces whose human labels it was trained on."""
    out = {}
    for row in model_version_rows(store):
        m = row["metrics"]
        ids = m.get("trained_on") if isinstance(m, dict) else None
        if ids:
            out[f"{row['name']}@{row['version']}"] = frozenset(int(f) for f in ids)
    return out


def members(store: Store, policy: RoutingPolicy = RoutingPolicy(), records=None) -> list[Member]:
    """Every candidate face with its bucket and audit label (None where the face's model learned
    that label: :func:`trained_on`)."""
    recs, n = records or _records(store)
    seen = trained_on(store)
    out = []
    for r in recs:
        c = candidate(evidence_for(r, n[r.image_id]), policy)
        if c is None:
            continue
        blind = None if r.face_id in seen.get(r.model_source, ()) else _blind_label(r)
        out.append(Member(r.face_id, r.image_id, c.bucket, c.label, float((r.model_probs or {}).get(c.label, 0.0)),
                          blind, bool(r.human_label)))
    return out


def estimates_of(ms: list[Member], method: str = "clopper-pearson") -> dict[str, BucketEstimate]:
    """Bucket -> its estimate, from the members (audits where there are any, else the prior)."""
    by: dict[str, list[Member]] = {}
    for m in ms:
        by.setdefault(m.bucket, []).append(m)
    out = {}
    for b, xs in sorted(by.items()):
        aud = [m for m in xs if m.audit_label is not None]
        agree = sum(1 for m in aud if m.audit_label == m.label)
        out[b] = estimate(b, len(xs), len(aud), agree, sum(m.prob for m in xs) / len(xs), method)
    return out


def bucket_estimates(store: Store, policy: RoutingPolicy = RoutingPolicy(), method: str = "clopper-pearson") -> dict[str, BucketEstimate]:
    """Bucket -> its current precision estimate (what routing takes)."""
    return estimates_of(members(store, policy), method)


def audit_plan(store: Store, policy: RoutingPolicy = RoutingPolicy(), seed: int = 0, batch: int = BATCH,
               ms: Optional[list[Member]] = None) -> list[BucketPlan]:
    """Per bucket (largest first): its state at the policy's target and, for an open bucket, the
    next faces of its seeded random order that nobody has labeled yet."""
    ms = members(store, policy) if ms is None else ms
    ests = estimates_of(ms)
    free: dict[str, list[int]] = {}
    for m in ms:
        if not m.human:
            free.setdefault(m.bucket, []).append(m.face_id)
    out = []
    for b, est in ests.items():
        left = free.get(b, [])
        st = settle(est, policy.target_precision, len(left), batch)
        out.append(BucketPlan(st, tuple(audit_order(left, seed)[: st.sample]) if st.state == "open" else ()))
    return sorted(out, key=lambda p: (-p.estimate.faces, p.estimate.bucket))


def pending_audits(store: Store, policy: RoutingPolicy = RoutingPolicy(), seed: int = 0) -> list[int]:
    """Face ids the tool asks a human to audit now (every open bucket's next sample)."""
    return [f for p in audit_plan(store, policy, seed) for f in p.sample]


def next_audit_faces(store: Store, annotator: str, n: int = 10, policy: RoutingPolicy = RoutingPolicy(),
                     seed: int = 0) -> list[AuditItem]:
    """The next ``n`` audit cards for ``annotator`` (faces nobody labeled yet, so never one they
    answered), buckets interleaved so that every open bucket moves forward."""
    plans = [p for p in audit_plan(store, policy, seed) if p.sample]
    out: list[AuditItem] = []
    for i in range(max((len(p.sample) for p in plans), default=0)):
        for p in plans:
            if i < len(p.sample) and len(out) < n:
                out.append(AuditItem(p.sample[i], p.estimate.bucket, p.estimate.label))
    return out


def add_audit(store: Store, face_id: int, annotator: str, action: str, labels=None) -> int:
    """Record a blind audit answer (``label`` with 1-2 classes, or ``unusable``): a human label with
    source ``audit``."""
    return add_annotation(store, face_id, annotator, action, labels, source=AUDIT_SOURCE)


def reroute(store: Store, policy: RoutingPolicy = RoutingPolicy()) -> int:
    """Route every face again from its stored evidence and the current bucket estimates (`labeler
    route`); appends a decision only where the route, label, reason or bucket changes."""
    from labeler.store.faces import add_routed

    recs, n = _records(store)
    ests = estimates_of(members(store, policy, (recs, n)))
    items = []
    for r in recs:
        d = route(evidence_for(r, n[r.image_id]), policy, ests)
        if r.route == "pending" or (r.route, r.decision_label, r.reason, r.bucket) != (d.route, d.label, d.reason, d.bucket):
            items.append((r.image_id, r.face_id, (), d))
    return add_routed(store, items)


def awaiting_text(store: Store, policy: RoutingPolicy = RoutingPolicy()) -> list[int]:
    """The images with a face that routing would auto-accept but for its text check
    (``labeler.types.text_pending``): text must be looked for on them first (labeler.cleanup.check_text)."""
    from dataclasses import replace

    recs, n = _records(store)
    pending = [(r, evidence_for(r, n[r.image_id])) for r in recs]
    pending = [(r, ev) for r, ev in pending if ev.text_pending]
    if not pending:
        return []
    ests = estimates_of(members(store, policy, (recs, n)))
    return sorted({r.image_id for r, ev in pending if route(replace(ev, text_pending=False), policy, ests).route == "auto"})


def label_accuracy(recs) -> dict:
    """The estimated accuracy of the accepted labels of ``recs`` (``labeler.audit.AccuracyTally``):
    what export states, from the decisions stored in the database."""
    tally = AccuracyTally()
    for r in recs:
        if r.human_label:
            tally.add(True)
        elif r.route == "auto" and r.label:
            tally.add(False, r.bucket, r.est_precision, r.est_lower, r.est_upper)
    return tally.result()


def auto_precision_estimate(store: Store, policy: RoutingPolicy = RoutingPolicy()) -> Optional[float]:
    """The tool's estimate of the precision of the labels auto-accepted now (None: none are)."""
    recs = [r for r in iter_face_records(store) if r.face_id is not None and r.route == "auto" and not r.human_label]
    return label_accuracy(recs)["precision"]


def face_names(store: Store, face_ids) -> dict[int, str]:
    """face_id -> "relative path #index" of its image (for `labeler audit`)."""
    from sqlalchemy import select

    from labeler.store.engine import chunks
    from labeler.store.schema import Face, ImagePath

    out: dict[int, str] = {}
    with store.session() as s:
        for ids in chunks(list(face_ids)):
            rows = s.execute(select(Face.id, Face.idx, Face.image_id).where(Face.id.in_(ids))).all()
            paths: dict[int, str] = {}
            for iid, rel, path in s.execute(select(ImagePath.image_id, ImagePath.relpath, ImagePath.path)
                                            .where(ImagePath.image_id.in_({r[2] for r in rows})).order_by(ImagePath.id)):
                paths.setdefault(iid, rel or path)
            out.update({fid: f"{paths.get(iid, '?')} #{idx}" for fid, idx, iid in rows})
    return out


def bucket_overview(store: Store, policy: RoutingPolicy = RoutingPolicy()) -> list[BucketState]:
    """For the UI overview and `labeler status`: per bucket (largest first) its estimate (faces,
    audited, agreeing, precision with its 95% interval, audit or prior) and state (auto / review / open)."""
    return [p.state for p in audit_plan(store, policy)]
