"""The typed inputs and outputs of the quality stage. The store builds the inputs
(``labeler.store.quality_inputs``); :func:`labeler.quality.assess` turns them into an
:class:`Assessment`. Plain dataclasses, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

#: where a face's given label comes from: people (``human``: at least one answer made in the app;
#: ``import``: only imported annotations), the routing (``auto``), the filename keyword (``keyword``)
LABEL_KINDS = ("human", "import", "auto", "keyword")


@dataclass(frozen=True)
class GivenLabel:
    """The label a face carries now, and the model probabilities it is judged by.

    ``probs`` are in ``QualityInputs.classes`` order and out of sample: from the newest model
    proposal whose model (or a model it was trained from) did not learn this face's label; None
    where no such proposal is stored. ``fallback``: the newest proposal's model had learned the
    label, so an earlier model's probabilities are used (no cross-fitting)."""

    face_id: int
    label: str
    kind: str  # one of LABEL_KINDS
    probs: Optional[tuple[float, ...]] = None
    prob_source: str = ""
    fallback: bool = False


@dataclass(frozen=True)
class Rating:
    """One annotator's current class for a face (the first of their labels; ``unusable`` answers
    are not ratings). ``order``: the annotation id (larger = newer)."""

    face_id: int
    annotator: str
    label: str
    order: int = 0


@dataclass(frozen=True)
class QualityInputs:
    classes: tuple[str, ...]
    given: tuple[GivenLabel, ...] = ()
    ratings: tuple[Rating, ...] = ()
    #: face -> imported vote distribution (FER+ style vote columns), shares summing to 1
    votes: Mapping[int, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class FaceIssue:
    """How likely a face's given label is wrong (``score``, 0..1, larger = more suspicious),
    whether confident learning counts it among the label issues (``flagged``; None where it could
    not run: fewer than two classes given), and the class the model prefers."""

    face_id: int
    label: str
    kind: str
    score: float
    flagged: Optional[bool]
    suggested: str
    suggested_prob: float
    prob_source: str = ""
    fallback: bool = False


@dataclass(frozen=True)
class FaceConsensus:
    """The crowd model's class for a face with its posterior probability (None: majority only)."""

    face_id: int
    label: str
    posterior: Optional[float]
    annotators: int
    method: str  # dawid-skene | majority


@dataclass(frozen=True)
class AlphaEstimate:
    """Krippendorff's alpha with its bootstrap interval (``level``, resampling faces)."""

    alpha: Optional[float]
    lower: Optional[float]
    upper: Optional[float]
    faces: int  # faces with two or more ratings (the pairable units)
    ratings: int  # ratings on them
    distance: str  # nominal | the name of the label distance
    level: float = 0.95


@dataclass(frozen=True)
class PairKappa:
    a: str
    b: str
    kappa: Optional[float]  # None: undefined (both gave one class only)
    faces: int  # faces both rated


@dataclass(frozen=True)
class ClassKappa:
    label: str
    kappa: Optional[float]
    pairs: int  # pairs of ratings of one face (each unordered pair once)


@dataclass(frozen=True)
class AnnotatorSkill:
    """An annotator's estimated accuracy (Dawid-Skene: the prior-weighted diagonal of their
    confusion matrix) and how many faces they rated."""

    annotator: str
    accuracy: Optional[float]
    faces: int


@dataclass(frozen=True)
class Agreement:
    faces: int  # faces with two or more ratings
    annotators: int
    nominal: AlphaEstimate
    weighted: AlphaEstimate
    pairs: tuple[PairKappa, ...]
    per_class: tuple[ClassKappa, ...]


@dataclass(frozen=True)
class Assessment:
    """Everything the quality stage says about a project's labels, as of one read."""

    classes: tuple[str, ...]
    issues: Mapping[int, FaceIssue]
    consensus: Mapping[int, FaceConsensus]
    agreement: Optional[Agreement]  # None: no face has two ratings
    skills: tuple[AnnotatorSkill, ...]
    votes: Mapping[int, Mapping[str, float]]
    method: str  # the label-issue score's method
    unscored: int = 0  # labeled faces without out-of-sample probabilities
    #: faces whose consensus differs from their human majority (the label they carry)
    consensus_changes: int = 0
    scored: bool = True  # False: label issues were not asked for (``assess(..., issues=False)``)

    def ranked(self, kinds: Optional[tuple[str, ...]] = None) -> list[FaceIssue]:
        """The scored faces, most suspicious first (ties by face id)."""
        xs = [x for x in self.issues.values() if kinds is None or x.kind in kinds]
        return sorted(xs, key=lambda x: (-x.score, x.face_id))

    @property
    def flagged(self) -> int:
        return sum(1 for x in self.issues.values() if x.flagged)
