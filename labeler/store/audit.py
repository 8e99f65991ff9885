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
from dataclasses import dataclass, replace
from typing import Optional

from sqlalchemy import select as sql_select  # labeler.selection.select is the conformal selection

from labeler.audit import AccuracyTally, BucketState, audit_order, estimate, settle
from labeler.routing import RoutingPolicy, candidate, evidence_for, label_trust, route, trust_score
from labeler.flow import Waiting, audit_pays
from labeler.selection import Calibrated, not_ready, ppi_accuracy, select
from labeler.store.engine import Store, chunks
from labeler.store.faces import add_routed
from labeler.store.models import model_version_rows
from labeler.store.records import is_blind, iter_face_records
from labeler.store.review import add_annotation
from labeler.store.schema import AUDIT_SOURCE, TRACK_ROUTE, Face, ImagePath
from labeler.types import BucketEstimate, Estimate, FaceRecord, Selection

#: faces drawn per open bucket per round
BATCH = 10



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
    score: float = 0.0  # the trust score conformal selection orders by (labeler.routing.trust_score)

    @property
    def blind(self) -> bool:
        """Has a blind label that measures its current model (an audit or an import it was not trained on)."""
        return self.audit_label is not None


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
        ev = evidence_for(r, n[r.image_id])
        out.append(Member(r.face_id, r.image_id, c.bucket, c.label, float((r.model_probs or {}).get(c.label, 0.0)),
                          blind, bool(r.human_label), trust_score(ev, c)))
    return out


@dataclass(frozen=True)
class CalibrationPlan:
    """Conformal auto-accept's audit sample: the candidates in their seeded random order, people's
    non-blind labels left out (a face reviewed with its proposal shown measures nothing). The
    *calibration* faces are the longest run from the start of that order whose faces all have a blind
    label; the selection runs once it holds ``audit_size`` faces (the policy's, at most half the
    candidates: a small project is not asked to audit most of itself). ``asked``: the faces to audit now
    (the unanswered ones among the first ``audit_size`` places). ``test``: the candidates nobody
    labeled, which the selection may accept."""

    calibration: tuple[Member, ...]
    asked: tuple[int, ...]
    test: tuple[Member, ...]
    audit_size: int  # 0: audits would not pay for themselves here (``labeler.flow.audit_pays``)

    @property
    def ready(self) -> bool:
        return self.audit_size > 0 and len(self.calibration) >= self.audit_size


def plan_of(ms: list[Member], policy: RoutingPolicy) -> CalibrationPlan:
    """The calibration plan under ``policy`` (its audit size and seed; audits only where they pay)."""
    return calibration_plan(ms, policy.audit_size, policy.audit_seed,
                            None if policy.audit_always else 1.0 - policy.target_precision)


def calibration_plan(ms: list[Member], audit_size: int, seed: int = 0, q: Optional[float] = None) -> CalibrationPlan:
    """Split the candidates ``ms`` into calibration, faces to audit and test faces (see :class:`CalibrationPlan`).

    Why a run from the start of one seeded order: the order is random and fixed by each face's id (a
    face's place does not depend on the others'), so the calibration faces are a uniform random sample
    of the candidates without a non-blind label, whatever the answers, and a face added later that
    falls inside the run is asked for before the run counts again. With ``q`` (the selection's level),
    no audit is asked where the audits are not expected to pay for themselves (a decision on the
    scores alone, never on answers; once one audit is answered the sample goes on)."""
    by = {m.face_id: m for m in ms}
    order = audit_order([m.face_id for m in ms if m.blind or not m.human], seed)
    audit_size = min(audit_size, max(1, len(order) // 2))  # a small project audits at most half its candidates
    test = tuple(m for m in ms if not m.human)
    if q is not None and not any(by[f].blind for f in order) and not audit_pays([by[f].score for f in order], audit_size, q):
        return CalibrationPlan((), (), test, 0)  # not worth it: review them (grids first)
    cal: list[Member] = []
    i = 0
    while i < len(order) and by[order[i]].blind:
        cal.append(by[order[i]])
        i += 1
    asked: list[int] = []
    if len(cal) < audit_size:
        count = len(cal)
        for f in order[i:]:
            if count >= audit_size:
                break
            count += 1
            if not by[f].blind:
                asked.append(f)
    return CalibrationPlan(tuple(cal), tuple(asked), test, audit_size)


def selection_of(store: Store, policy: RoutingPolicy = RoutingPolicy(), ms: Optional[list[Member]] = None) -> Selection:
    """The current conformal selection (``policy.method`` conformal or conformal-class): who auto-accepts."""
    plan = plan_of(members(store, policy) if ms is None else ms, policy)
    return select_plan(plan, policy)


def select_plan(plan: CalibrationPlan, policy: RoutingPolicy) -> Selection:
    method = policy.method if policy.method != "bucket" else "conformal"
    if plan.audit_size == 0:
        why = (f"auto-accept is off here: {len(plan.test)} candidate faces are too few for blind audits to pay for "
               f"themselves in review time; review them (grids first), or ask for audits anyway (--audit-always)")
        return replace(not_ready(method, policy.target_precision, 0, 0, len(plan.test), 0), why=why,
                       estimate=Estimate(None, 0.0, 1.0, why))
    if not plan.ready:
        return not_ready(method, policy.target_precision, plan.audit_size, len(plan.calibration), len(plan.test),
                         len(plan.asked))
    cal = [Calibrated(m.label, m.score, m.audit_label == m.label) for m in plan.calibration]
    return select(cal, [(m.label, m.score) for m in plan.test], policy.target_precision, method, plan.audit_size)


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
    """Face ids the tool asks a human to audit now: the calibration faces still to answer (conformal),
    or every open bucket's next sample (bucket)."""
    if policy.method != "bucket":
        return list(plan_of(members(store, policy), policy).asked)
    return [f for p in audit_plan(store, policy, seed) for f in p.sample]


def next_audit_faces(store: Store, annotator: str, n: int = 10, policy: RoutingPolicy = RoutingPolicy(),
                     seed: int = 0) -> list[AuditItem]:
    """The next ``n`` audit cards for ``annotator`` (faces nobody labeled yet, so never one they
    answered), in the seeded order (conformal) or buckets interleaved so that every open bucket moves
    forward (bucket)."""
    if policy.method != "bucket":
        ms = members(store, policy)
        by = {m.face_id: m for m in ms}
        asked = plan_of(ms, policy).asked[:n]
        return [AuditItem(f, f"selection:{by[f].label}", by[f].label) for f in asked]
    plans = [p for p in audit_plan(store, policy, seed) if p.sample]
    out: list[AuditItem] = []
    for i in range(max((len(p.sample) for p in plans), default=0)):
        for p in plans:
            if i < len(p.sample) and len(out) < n:
                out.append(AuditItem(p.sample[i], p.estimate.bucket, p.estimate.label))
    return out


def add_audit(store: Store, face_id: int, annotator: str, action: str, labels=None, seconds: Optional[float] = None) -> int:
    """Record a blind audit answer (``label`` with 1-2 classes, or ``unusable``): a human label with
    source ``audit`` (effort ``audit``, ``seconds`` as it took)."""
    return add_annotation(store, face_id, annotator, action, labels, source=AUDIT_SOURCE, seconds=seconds, effort="audit")


def routing_inputs(store: Store, policy: RoutingPolicy = RoutingPolicy()) -> tuple[Optional[dict], Optional[Selection]]:
    """What route() takes besides a face's evidence: the bucket estimates (method bucket) or the
    conformal selection (the other methods)."""
    return _routing_inputs(store, policy, None)


def _routing_inputs(store: Store, policy: RoutingPolicy, records) -> tuple[Optional[dict], Optional[Selection]]:
    ms = members(store, policy, records)
    if policy.method == "bucket":
        return estimates_of(ms), None
    return None, selection_of(store, policy, ms)


def reroute(store: Store, policy: RoutingPolicy = RoutingPolicy()) -> int:
    """Route every face again from its stored evidence and the current bucket estimates (`labeler
    route`); appends a decision only where the route, label, reason or bucket changes."""
    recs, n = _records(store)
    ests, sel = _routing_inputs(store, policy, (recs, n))
    items = []
    for r in recs:
        d = route(evidence_for(r, n[r.image_id]), policy, ests, sel)
        if r.route == "pending" or (r.route, r.decision_label, r.reason, r.bucket) != (d.route, d.label, d.reason, d.bucket):
            items.append((r.image_id, r.face_id, (), d))
    return add_routed(store, items)


def awaiting_text(store: Store, policy: RoutingPolicy = RoutingPolicy()) -> list[int]:
    """The images with a face that routing would auto-accept but for its text check
    (``labeler.types.text_pending``): text must be looked for on them first (labeler.cleanup.check_text)."""
    recs, n = _records(store)
    pending = [(r, evidence_for(r, n[r.image_id])) for r in recs]
    pending = [(r, ev) for r, ev in pending if ev.text_pending]
    if not pending:
        return []
    ms = members(store, policy, (recs, n))
    ests, sel = (estimates_of(ms), None) if policy.method == "bucket" else (None, selection_of(store, policy, ms))
    out = {r.image_id for r, ev in pending if route(replace(ev, text_pending=False), policy, ests, sel).route == "auto"}
    if policy.method != "bucket":
        # and the faces about to be audited: an audited face found with text later leaves the sample
        asked = set(plan_of(ms, policy).asked)
        out |= {r.image_id for r, _ in pending if r.face_id in asked}
    return sorted(out)


def waiting_faces(store: Store, policy: RoutingPolicy = RoutingPolicy()) -> list:
    """The faces waiting for a person (route review, no human label) as the review flow sees them
    (``labeler.flow.Waiting``): the class their decision proposes and its trust score."""
    recs, n = _records(store)
    out = []
    for r in recs:
        if r.route != "review" or r.human_label:
            continue
        lab = r.decision_label
        p = label_trust(evidence_for(r, n[r.image_id]), lab) if lab else 0.0
        out.append(Waiting(r.face_id, lab, p))
    return out


def proposal_estimate(store: Store, policy: RoutingPolicy = RoutingPolicy()) -> Estimate:
    """How right the model's proposals of the faces nobody labeled are (what ``export
    --include-proposals`` writes, unverified): the candidates' part by prediction-powered inference
    on the audit sample (a random sample of the candidates) once it is complete, the rest (faces
    that are no candidates: never audited) at the model's mean calibrated probability, said so."""
    recs, n = _records(store)
    ms = members(store, policy, (recs, n))
    cand = {m.face_id for m in ms}
    rest = [max((r.model_probs or {}).values(), default=0.0) for r in recs
            if not r.human_label and r.route in ("review", "pending") and r.model_label and r.face_id not in cand]
    plan = plan_of(ms, policy)
    open_ = [m.score for m in plan.test]
    parts: list[tuple[int, Estimate]] = []
    if open_ and plan.ready:
        parts.append((len(open_), ppi_accuracy(open_, [m.score for m in plan.calibration],
                                                [m.audit_label == m.label for m in plan.calibration])))
    elif open_:
        rest += open_
    if rest:
        mp = sum(rest) / len(rest)
        parts.append((len(rest), Estimate(mp, 0.0, 1.0, f"the model's mean calibrated probability {mp:.3f} (not measured)")))
    tot = sum(k for k, _ in parts)
    if not tot:
        return Estimate(None, 0.0, 1.0, "no unverified proposals")
    return Estimate(sum(k * (e.precision or 0.0) for k, e in parts) / tot, sum(k * e.lower for k, e in parts) / tot,
                    sum(k * e.upper for k, e in parts) / tot, "; ".join(f"{k} faces: {e.how}" for k, e in parts))


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
    out: dict[int, str] = {}
    with store.session() as s:
        for ids in chunks(list(face_ids)):
            rows = s.execute(sql_select(Face.id, Face.idx, Face.image_id).where(Face.id.in_(ids))).all()
            paths: dict[int, str] = {}
            for iid, rel, path in s.execute(sql_select(ImagePath.image_id, ImagePath.relpath, ImagePath.path)
                                            .where(ImagePath.image_id.in_({r[2] for r in rows})).order_by(ImagePath.id)):
                paths.setdefault(iid, rel or path)
            out.update({fid: f"{paths.get(iid, '?')} #{idx}" for fid, idx, iid in rows})
    return out


def bucket_overview(store: Store, policy: RoutingPolicy = RoutingPolicy()) -> list[BucketState]:
    """For the UI overview and `labeler status`: per bucket (largest first) its estimate (faces,
    audited, agreeing, precision with its 95% interval, audit or prior) and state (auto / review / open)."""
    return [p.state for p in audit_plan(store, policy)]
