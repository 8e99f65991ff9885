"""Plain dataclasses shared by every module. No I/O, no third-party imports beyond numpy typing."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional

#: The seven canonical expression classes, in FER2013's index order.
LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the EXIF-oriented image
Point = tuple[float, float]


@dataclass(frozen=True)
class Detection:
    """One face reported by a detector on an RGB image."""

    box: Box
    score: float
    #: five points: left eye, right eye, nose, left mouth corner, right mouth corner (image left/right)
    landmarks: Optional[tuple[Point, ...]] = None


@dataclass(frozen=True)
class RuleMatch:
    """What the filename rules say about one name."""

    label: Optional[str]  # the single class proposed, None when no keyword or ambiguous
    state: str  # "labeled" | "ambiguous" | "none"
    matches: tuple[tuple[str, str], ...] = ()  # (word as found, class) pairs that fired
    negated: tuple[str, ...] = ()  # words that were seen but negated


@dataclass(frozen=True)
class Decision:
    """The routing result for one face (``labeler.routing.route``); stored as a ``DecisionRow``."""

    route: str  # auto | review | no_face | broken
    label: Optional[str]
    reason: str  # prose for people; machines read ``kind``
    priority: float = 0.0  # higher = more useful to review first
    source: str = ""
    #: why, as a closed set: REVIEW_KINDS for route review, AUTO_KINDS for auto, else the route
    kind: str = ""
    #: the auto-accept bucket of a candidate face (``labeler.routing.candidate``), None otherwise
    bucket: Optional[str] = None
    #: the bucket's estimated precision and 95% interval the route was decided on (``BucketEstimate``)
    precision: Optional[float] = None
    lower: Optional[float] = None
    upper: Optional[float] = None


@dataclass(frozen=True)
class BucketEstimate:
    """How right the labels of one auto-accept bucket are (``labeler.audit.estimate``).

    ``source`` is ``"audit"`` (blind human labels of a random sample, and imported labels) or
    ``"prior: <how>"`` (no audit yet: a stated, conservative guess). A bucket auto-accepts only when
    ``lower`` >= the target precision (:meth:`certifies`)."""

    bucket: str
    faces: int  # candidate faces in the bucket (labeled ones included)
    audited: int  # faces with a blind human label (audit answers, imports)
    agreeing: int  # of those, how many agree with the bucket's class
    precision: Optional[float]  # point estimate (None: nothing known)
    lower: float  # 95% lower bound
    upper: float  # 95% upper bound
    source: str
    method: str = "clopper-pearson"

    @property
    def label(self) -> str:
        """The class the bucket accepts (the part after the last ``:``)."""
        return self.bucket.rsplit(":", 1)[-1]

    def certifies(self, target: float) -> bool:
        """THE auto-accept rule: the lower confidence bound reaches the target precision."""
        return self.lower >= target


#: the kinds of a ``review`` decision (the review queue filters on them; routing weights them)
REVIEW_KINDS: tuple[str, ...] = ("disagree", "ambiguous", "multi_face", "low_confidence", "agree_low", "quality")
#: the kinds of an ``auto`` decision
AUTO_KINDS: tuple[str, ...] = ("agree", "multi_face_agree", "model_confident")


@dataclass(frozen=True)
class RuleWord:
    """One filename word the rules saw: a class word, or a negated one (which names no class)."""

    word: str  # as found ("happy"), or the negation and the word ("not happy")
    label: str  # the class it names; "" when negated
    negated: bool = False

    def as_pair(self) -> tuple[str, str]:
        """The stored form: ``(word, class)``, a negated word as ``("!" + word, "")``."""
        return ("!" + self.word, "") if self.negated else (self.word, self.label)

    @classmethod
    def from_pair(cls, pair) -> "RuleWord":
        word, label = pair[0], pair[1]
        if word.startswith("!"):
            return cls(word[1:], "", True)
        return cls(word, label, False)


@dataclass(frozen=True)
class ImageRules:
    """What the filename rules say about an image (from the names of all its paths)."""

    state: str = "none"  # labeled | ambiguous | none
    label: Optional[str] = None
    words: tuple[RuleWord, ...] = ()
    source: str = ""  # the rules file

    @property
    def class_words(self) -> tuple[str, ...]:
        """The class words that fired (negated words left out)."""
        return tuple(w.word for w in self.words if not w.negated)


@dataclass(frozen=True)
class AnnotationRecord:
    """One annotator's current (not undone) action on a face."""

    annotator: str
    action: str  # label | unusable
    labels: Optional[tuple[str, ...]]
    at: str  # ISO timestamp
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"annotator": self.annotator, "action": self.action,
                "labels": list(self.labels) if self.labels is not None else None, "at": self.at, "source": self.source}


@dataclass(frozen=True)
class FaceRecord:
    """One face with everything known about it (or one image without faces: ``face_id`` None).

    ``label`` is the accepted label (``labeler.store.accepted_label``): the human majority where
    people labeled the face, else the auto-accepted label; ``label_source`` says which
    (``human:<names>`` or ``auto:<reason>``).
    """

    image_id: int
    sha256: str
    path: str  # first path seen
    root: str
    relpath: str
    paths: tuple[str, ...]
    status: str  # ingested | broken
    error: str
    width: int
    height: int
    rule_state: str  # labeled | ambiguous | none
    rule_label: Optional[str]
    rule_words: tuple[RuleWord, ...]
    face_id: Optional[int] = None
    face: Optional[int] = None  # index within the image
    x1: Optional[float] = None
    y1: Optional[float] = None
    x2: Optional[float] = None
    y2: Optional[float] = None
    det_score: Optional[float] = None
    landmarks: Optional[Any] = None  # [[x, y] * 5]
    whole_image: bool = False
    quality: Optional[Mapping[str, float]] = None
    flags: tuple[str, ...] = ()
    model_label: Optional[str] = None
    model_prob: Optional[float] = None
    model_probs: Optional[Mapping[str, float]] = None
    model_source: str = ""
    route: str = "pending"  # auto | review | no_face | broken | pending
    kind: str = ""  # Decision.kind
    reason: str = ""
    priority: float = 0.0
    decision_label: Optional[str] = None
    decision_source: str = ""
    human_label: Optional[str] = None
    votes: Mapping[str, float] = field(default_factory=dict)
    annotations: tuple[AnnotationRecord, ...] = ()
    rejected: tuple[str, ...] = ()  # classes a human rejected for this face (Verify grid), not undone
    label: Optional[str] = None
    label_source: str = ""
    #: the newest decision's bucket and precision estimate (``Decision``); None where it had none
    bucket: Optional[str] = None
    est_precision: Optional[float] = None
    est_lower: Optional[float] = None
    est_upper: Optional[float] = None
    #: cleaning measurements (labeler.faces.cleaning); None = not measured yet (`labeler clean`)
    text_share: Optional[float] = None  # of the image
    nonphoto: Optional[float] = None  # of the image
    dup_group: Optional[int] = None  # near-duplicate group of the image (smallest image id)
    text_near: Optional[bool] = None  # text on or beside this face

    @property
    def words(self) -> tuple[str, ...]:
        """The class words that fired (negated words left out)."""
        return tuple(w.word for w in self.rule_words if not w.negated)


@dataclass(frozen=True)
class NewProposal:
    """A label proposed for a face, to be appended (``labeler.store`` stores it as a Proposal row)."""

    source_kind: str  # rule | model | import
    source: str  # rules file / model name@version
    label: Optional[str]
    prob: Optional[float] = None
    probs: Optional[Mapping[str, float]] = None
    detail: str = ""


@dataclass(frozen=True)
class NewFace:
    """One detected face of an image with its crop, its proposals and its routing decision."""

    box: Box
    score: float
    landmarks: Optional[tuple[Point, ...]]
    whole_image: bool
    quality: Mapping[str, float]
    flags: tuple[str, ...]
    crop: bytes  # encoded JPEG
    proposals: tuple[NewProposal, ...]
    decision: Decision
    phash: Optional[int] = None  # perceptual hash of the face box (unsigned 64-bit), None = not measured
    text_near: Optional[bool] = None  # text on or beside the face, None = not measured


@dataclass(frozen=True)
class DetectedImage:
    """The detection result of one image: its faces (none: ``no_face`` decided)."""

    image_id: int
    faces: tuple[NewFace, ...]
    clean: Optional["ImageClean"] = None  # cleaning measurements (labeler.faces.cleaning), None = not measured


#: the face flag of a face with text on or beside it (routing never auto-accepts such a face)
TEXT_FLAG = "text"


@dataclass(frozen=True)
class FaceClean:
    """Cleaning measurements of one face (labeler.faces.cleaning)."""

    phash: int  # 64-bit DCT hash of the detector box (unsigned)
    text_near: Optional[bool]  # text overlaps or borders the face; None: text not looked for (yet)


@dataclass(frozen=True)
class ImageClean:
    """Cleaning measurements of one image (labeler.faces.cleaning)."""

    phash: int  # 64-bit DCT hash of the whole image (unsigned)
    #: share of the image covered by text boxes, 0..1; None: text not looked for yet (it is looked
    #: for before any face of the image is auto-accepted: labeler.cleanup.check_text)
    text_share: Optional[float]
    nonphoto: float  # non-photo score, 0..1 (labeler.faces.nonphoto)
    faces: tuple[FaceClean, ...]  # in face order

    @property
    def has_text(self) -> bool:
        return bool(self.text_share)


def text_pending(text_near: Optional[bool], image_nonphoto: Optional[float]) -> bool:
    """THE rule for "this face's text check is still to do": its image was measured (non-photo
    score stored) but text was not looked for on it. Such a face is auto-accepted only after the
    check (``labeler.cleanup.check_text``). A face of an image never measured (``autolabel
    --no-clean``, or stored before cleaning existed) is not held back: `labeler clean` measures it."""
    return text_near is None and image_nonphoto is not None


@dataclass(frozen=True)
class StoredFace:
    """A stored face, with what re-proposing and re-routing it needs."""

    face_id: int
    image_id: int
    n_faces: int  # faces of its image
    whole_image: bool
    flags: tuple[str, ...]
    crop: Optional[bytes]
    rules: ImageRules
    text_pending: bool = False  # its text check is still to do (:func:`text_pending`)


@dataclass(frozen=True)
class Estimate:
    """The estimated precision of a set of accepted labels: point and one-sided 95% bounds, and how."""

    precision: Optional[float]
    lower: float
    upper: float
    how: str


#: the pooled conformal method's key in ``Selection.thresholds``
ALL_CLASSES = "*"


@dataclass(frozen=True)
class Selection:
    """The result of conformal selection (``labeler.selection.select``): which candidate faces
    auto-accept (:meth:`accepts`), under what guarantee, with what estimate. ``thresholds``: class ->
    lowest accepted trust score (``ALL_CLASSES`` for the pooled method); a class missing accepts
    nothing. ``ready`` is False until the planned audits are in (nothing is accepted then)."""

    method: str  # conformal | conformal-class
    target: float
    audit_size: int  # audits planned
    calibration: int  # audited faces used
    wrong: int  # of those, how many proposals were wrong
    test: int  # candidate faces neither audited nor labeled by a person
    thresholds: Mapping[str, float] = field(default_factory=dict)
    accepted: int = 0
    estimate: Estimate = Estimate(None, 0.0, 1.0, "nothing accepted")
    ready: bool = True
    why: str = ""
    #: class -> (audited, wrong) among the calibration faces
    per_class: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: audits still to answer before the selection can run (the next faces of the seeded order)
    asked: int = 0

    @property
    def q(self) -> float:
        return 1.0 - self.target

    def threshold_for(self, label: str) -> Optional[float]:
        return self.thresholds.get(ALL_CLASSES if ALL_CLASSES in self.thresholds else label)

    def accepts(self, label: str, score: float) -> bool:
        """THE conformal auto-accept rule for one face that is neither audited nor labeled."""
        t = self.threshold_for(label)
        return self.ready and t is not None and score >= t

    def guarantee(self) -> str:
        scope = "each class's auto-accepted set" if self.method == "conformal-class" else "the auto-accepted set"
        return (f"false discovery rate of {scope} <= {self.q:.3g} (the expected share of wrong labels in it), "
                f"assuming only that the {self.calibration} audited faces are a random sample of the candidates "
                f"(the seeded audit order) and that the model never trained on them")


@dataclass(frozen=True)
class Undetected:
    """An image (or video) ingested whose faces are not stored yet, by one of its paths."""

    image_id: int
    video: bool
    path: str  # as stored (labeler.ingest.paths.db_path)
    sha256: str  # of its content when it was recorded: a file changed since is not this image
