"""What the quality stage (``labeler.quality``) reads: every labeled face's given label with
out-of-sample model probabilities, the annotators' current ratings and imported vote
distributions; the project's assessment; the "suspicious labels first" order and the
second-opinion queue. Nothing is written here: an answer is an ordinary annotation
(``add_annotation``), appended as always.

Out-of-sample probabilities: a face's newest model proposal is used unless its model learned that
face's label (``trained_on`` of its model_versions row, or of a model it was trained from); then
the newest proposal of a model that did not (in practice the base model's, stored before the head
was trained) is used and the face is marked ``fallback``. No cross-fitting: the heads are not
retrained per fold. A face with no such proposal is left unscored.
"""

from __future__ import annotations

import math
import os
from typing import Iterable, Mapping, Optional

from sqlalchemy import select

from labeler.quality import DEFAULT_METHOD, Assessment, FaceIssue, GivenLabel, QualityInputs, Rating, assess, require
from labeler.quality.assessment import find_issues
from labeler.store.engine import Store, StoreError, chunks, latest_ids
from labeler.store.models import model_version_rows
from labeler.store.records import current_annotations, vote
from labeler.store.schema import Annotation, DecisionRow, Proposal
from labeler.types import LABELS

#: how many annotators a face needs before the second-opinion queue leaves it alone
ANNOTATORS_ENV = "LABELER_ANNOTATORS_PER_FACE"
#: proposals of imported vote columns (``labeler import`` of a FER+ style file)
VOTES_SOURCE = "votes:"


def annotators_per_face(n: Optional[int] = None) -> int:
    """``n`` if given, else ``LABELER_ANNOTATORS_PER_FACE``, else 1 (no second opinions)."""
    raw = n if n is not None else os.environ.get(ANNOTATORS_ENV, "1")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise StoreError(f"annotators per face must be a whole number of 1 or more, found {raw!r}: set {ANNOTATORS_ENV} to e.g. 2")
    return int(value)


def learned(store: Store) -> dict[str, frozenset[int]]:
    """Model ident -> the faces whose labels it learned, itself or through the models it was
    trained from (``metrics.trained_on`` and ``metrics.base`` of model_versions)."""
    own, base = {}, {}
    for row in model_version_rows(store):
        m = row["metrics"] if isinstance(row["metrics"], dict) else {}
        ident = f"{row['name']}@{row['version']}"
        own[ident] = frozenset(int(f) for f in m.get("trained_on") or ())
        base[ident] = m.get("base")
    out: dict[str, frozenset[int]] = {}
    for ident in own:
        seen, acc, cur = set(), set(), ident
        while cur in own and cur not in seen:
            seen.add(cur)
            acc |= own[cur]
            cur = base.get(cur)
        out[ident] = frozenset(acc)
    return out


def _probs(p: Proposal) -> Optional[tuple[float, ...]]:
    if not isinstance(p.probs, dict):
        return None
    return tuple(float(p.probs.get(c, 0.0) or 0.0) for c in LABELS)


def _model_probs(s, face_ids: list[int], seen: dict[str, frozenset[int]]) -> dict[int, tuple[Optional[tuple], str, bool]]:
    """face -> (out-of-sample probabilities or None, model ident, fallback)."""
    newest = latest_ids(s, Proposal, None, where=Proposal.source_kind == "model")
    out: dict[int, tuple[Optional[tuple], str, bool]] = {}
    stale: list[int] = []
    want = set(face_ids)
    for ids in chunks([i for f, i in newest.items() if f in want]):
        for p in s.scalars(select(Proposal).where(Proposal.id.in_(ids))):
            if p.face_id in seen.get(p.source, ()):
                stale.append(p.face_id)
            else:
                out[p.face_id] = (_probs(p), p.source, False)
    for ids in chunks(stale):  # the newest proposal of a model that did not learn the face's label
        q = select(Proposal).where(Proposal.face_id.in_(ids), Proposal.source_kind == "model").order_by(Proposal.id.desc())
        for p in s.scalars(q):
            if p.face_id not in out and p.face_id not in seen.get(p.source, ()):
                out[p.face_id] = (_probs(p), p.source, True)
    return out


def _newest_labels(s, kind: str) -> dict[int, Proposal]:
    ids = latest_ids(s, Proposal, None, where=Proposal.source_kind == kind)
    out = {}
    for part in chunks(list(ids.values())):
        out.update({p.face_id: p for p in s.scalars(select(Proposal).where(Proposal.id.in_(part)))})
    return out


def _decisions(s) -> dict[int, tuple[str, Optional[str]]]:
    ids = latest_ids(s, DecisionRow)
    out = {}
    for part in chunks(list(ids.values())):
        out.update({f: (r, lab) for f, r, lab in s.execute(
            select(DecisionRow.face_id, DecisionRow.route, DecisionRow.label).where(DecisionRow.id.in_(part)))})
    return out


def quality_inputs(store: Store) -> QualityInputs:
    """Every face's given label (the human majority, else an auto-accepted label, else its
    filename keyword's label; ``unusable`` is not a label) with its out-of-sample probabilities,
    every current rating, and the imported vote distributions."""
    seen = learned(store)
    with store.session() as s:
        anns = current_annotations(s)
        decs = _decisions(s)
        rules = {f: p.label for f, p in _newest_labels(s, "rule").items() if p.label}
        votes = {f: dict(p.probs) for f, p in _newest_labels(s, "import").items()
                 if p.source.startswith(VOTES_SOURCE) and isinstance(p.probs, dict)}
        given: list[tuple[int, str, str]] = []
        ratings: list[Rating] = []
        for fid in sorted(set(anns) | set(decs) | set(rules)):
            a = anns.get(fid, {})
            for name, x in sorted(a.items()):
                if x.action in ("label", "verify") and x.labels and x.labels[0] in LABELS:
                    ratings.append(Rating(fid, name, x.labels[0], x.id))
            human = vote(a)[0] if a else None
            route, dlab = decs.get(fid, ("pending", None))
            if human:
                kind = "import" if all((x.source or "").startswith("import") for x in a.values()) else "human"
                given.append((fid, human, kind))
            elif route == "auto" and dlab:
                given.append((fid, dlab, "auto"))
            elif fid in rules:
                given.append((fid, rules[fid], "keyword"))
        given = [g for g in given if g[1] in LABELS]
        probs = _model_probs(s, [g[0] for g in given], seen)
    out = []
    for fid, lab, kind in given:
        p, src, fb = probs.get(fid, (None, "", False))
        out.append(GivenLabel(fid, lab, kind, p, src, fb))
    return QualityInputs(LABELS, tuple(out), tuple(ratings), votes)


def assess_project(store: Store, method: str = DEFAULT_METHOD, reps: int = 1000) -> Assessment:
    """The assessment of the project's labels now (``labeler.quality.assess``; needs the quality extra)."""
    return assess(quality_inputs(store), method=method, reps=reps)


def issue_map(store: Store, method: str = DEFAULT_METHOD) -> dict[int, FaceIssue]:
    """face -> its label issue (scores only: no agreement, no consensus; needs cleanlab)."""
    require()
    return find_issues(quality_inputs(store), method)[0]


def suspicious_order(assessment: Assessment, kinds: Optional[Iterable[str]] = None) -> list[int]:
    """Face ids, the most suspicious label first (the "suspicious labels first" queue)."""
    return [x.face_id for x in assessment.ranked(tuple(kinds) if kinds is not None else None)]


def doubt(assessment: Assessment, face_id: int, share: float = 1.0) -> float:
    """How likely a face's current label is wrong, the largest of three signs: the annotators'
    disagreement (1 - ``share``, the majority's share of their votes), 1 - the crowd model's
    posterior (where it has one) and the model's label-issue score (where it has one)."""
    c, i = assessment.consensus.get(face_id), assessment.issues.get(face_id)
    return max(1.0 - share, 1.0 - c.posterior if c and c.posterior is not None else 0.0, i.score if i else 0.0)


def second_opinion_queue(store: Store, annotator: str, need: Optional[int] = None, limit: int = 20,
                         assessment: Optional[Assessment] = None) -> list[int]:
    """Faces that fewer than ``need`` (:func:`annotators_per_face`) people answered, none of them
    ``annotator``, most in doubt first (:func:`doubt`; ties by face id). Empty when one annotator a
    face is enough. The Review page serves them to a second annotator (``lease_order`` leases them)."""
    need = annotators_per_face(need)
    if need <= 1:
        return []
    with store.session() as s:
        anns = current_annotations(s)
    todo = [f for f, a in anns.items() if 0 < len(a) < need and annotator not in a]
    if not todo:
        return []
    assessment = assessment or assess_project(store, reps=0)
    share = {}
    for f in todo:
        lab, dist = vote(anns[f])
        share[f] = dist.get(lab, 1.0)
    return sorted(todo, key=lambda f: (-doubt(assessment, f, share[f]), f))[:limit]


# ---- the Review page's "suspicious labels first" queue

#: a label joins the queue when confident learning counts it among the label errors
#: (``FaceIssue.flagged``, cleanlab's ``find_label_issues`` defaults) or when its score is at least
#: this: the model gives the label less than even odds (score = 1 - p(given label))
SUSPICIOUS_MIN = 0.5


def is_suspicious(issue: FaceIssue, min_score: float = SUSPICIOUS_MIN) -> bool:
    """Whether a label issue belongs in the "suspicious labels first" queue (see :data:`SUSPICIOUS_MIN`)."""
    return bool(issue.flagged) or issue.score >= min_score


def _unanswered(s, face_ids: list[int], annotator: str, issues: Mapping[int, FaceIssue],
                include_skipped: bool) -> set[int]:
    """Those of ``face_ids`` that ``annotator`` has not answered (no current label/unusable/verify of
    theirs, no skip of theirs not undone unless ``include_skipped``) and whose human label, where
    people gave one, is still the label that was scored (another's answer changed it: it is rescored
    when the queue is built again)."""
    out: set[int] = set()
    for part in chunks(face_ids):
        cur = current_annotations(s, part)
        skips = set()
        if not include_skipped:
            rows = s.execute(select(Annotation.id, Annotation.face_id, Annotation.action, Annotation.undoes_id)
                             .where(Annotation.face_id.in_(part), Annotation.annotator == annotator,
                                    Annotation.action.in_(("skip", "undo")))).all()
            undone = {u for _i, _f, act, u in rows if act == "undo" and u}
            skips = {f for i, f, act, _u in rows if act == "skip" and i not in undone}
        for f in part:
            a = cur.get(f, {})
            human = vote(a)[0] if a else None
            if annotator not in a and f not in skips and (human is None or human == issues[f].label):
                out.add(f)
    return out


def suspicious_queue(store: Store, annotator: str, issues: Mapping[int, FaceIssue], include_skipped: bool = False,
                     min_score: float = SUSPICIOUS_MIN) -> list[int]:
    """The Review page's "suspicious labels first" queue: the faces of ``issues`` (face -> its label
    issue, :func:`issue_map`) whose label is suspicious (:func:`is_suspicious`) and that
    ``annotator`` has still to check (:func:`_unanswered`: their own answer, or a skip, takes a face
    out), highest score first (ties by face id). An answer is an ordinary annotation
    (``add_annotation``), appended as always."""
    ids = [x.face_id for x in sorted(issues.values(), key=lambda x: (-x.score, x.face_id)) if is_suspicious(x, min_score)]
    with store.session() as s:
        keep = _unanswered(s, ids, annotator, issues, include_skipped)
    return [f for f in ids if f in keep]


def still_suspicious(store: Store, face_ids: list[int], annotator: str, issues: Mapping[int, FaceIssue],
                     include_skipped: bool = False) -> list[int]:
    """Those of ``face_ids`` (in their order) still in ``annotator``'s suspicious queue: indexed
    look-ups of these faces only, the check of a prefetched queue's head."""
    ids = [f for f in dict.fromkeys(face_ids) if f in issues]
    if not ids:
        return []
    with store.session() as s:
        keep = _unanswered(s, ids, annotator, issues, include_skipped)
    return [f for f in ids if f in keep]
