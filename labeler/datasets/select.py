"""Which faces an export selects, with which class: the label filters in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from labeler.datasets.common import ExportError
from labeler.types import LABELS

#: "human": only faces people labeled; "human+auto": also labels the routing auto-accepted;
#: "human+auto+proposals": also the model's proposal of every face still in review (unverified)
INCLUDE = ("human+auto", "human", "human+auto+proposals")
#: the label source of a face exported with the model's proposal (nobody checked it)
PROPOSAL = "proposal (unverified)"
#: accepted labels that are never a class of an exported data set
NOT_A_CLASS = {"unusable", "", None}


def agreement(rec) -> Optional[float]:
    """Share of the annotators' votes for the accepted label (None for a label nobody voted)."""
    votes = rec.votes or {}
    if rec.label is None or not votes:
        return None
    return float(votes.get(rec.label, 0.0))


def selected_label(rec, include: str = "human+auto", min_agreement: float = 0.0,
                   classes: Optional[Sequence[str]] = None) -> tuple[Optional[str], str]:
    """The class a face has in the exported data set, or (None, why it is left out).

    ``include`` "human": only faces people labeled; "human+auto" also auto-accepted labels.
    ``min_agreement`` applies to human labels (vote share of the majority label); auto-accepted
    labels already passed the routing policy's thresholds. ``unusable`` is never a class.
    """
    if rec.face_id is None:
        return None, rec.route or "no_face"
    label = rec.label
    if label is None and include == "human+auto+proposals" and rec.route in ("review", "pending") and rec.model_label:
        label = rec.model_label  # the proposal: marked unverified where it is written (is_proposal)
    elif label is None:
        return None, "unlabeled"
    if label in NOT_A_CLASS:
        return None, "unusable"
    if (rec.label_source or "").startswith("human"):
        ag = agreement(rec)
        if min_agreement and (ag is None or ag + 1e-9 < min_agreement):
            return None, "low_agreement"
    elif include == "human":
        return None, "not_human"
    if classes is not None and label not in classes:
        return None, "class_filtered"
    return label, ""


def is_proposal(rec, included: bool) -> bool:
    """A face in the export with the model's proposal as its class (nobody accepted a label for it)."""
    return bool(included and rec.face_id is not None and rec.label is None and rec.model_label)


@dataclass(frozen=True)
class Selection:
    """The label filters of one export. ``fer_only``: classes outside FER2013's seven are left out
    (as ``not_a_fer2013_class``)."""

    include: str = "human+auto"
    min_agreement: float = 0.0
    classes: Optional[tuple[str, ...]] = None
    fer_only: bool = False

    @classmethod
    def parse(cls, include: str, min_agreement: float, classes, fer_only: bool = False) -> "Selection":
        """Checked filters: ``classes`` may be a comma-separated string or a sequence."""
        if include not in INCLUDE:
            raise ExportError(f"include must be one of {', '.join(INCLUDE)}, not {include!r}")
        if not 0.0 <= float(min_agreement) <= 1.0:
            raise ExportError(f"min_agreement is a share of annotators between 0 and 1, not {min_agreement}")
        if classes is not None:
            items = classes.split(",") if isinstance(classes, str) else classes
            classes = tuple(c.strip() for c in items if c and c.strip())
            bad = [c for c in classes if c not in LABELS]
            if bad or not classes:  # the store accepts only these seven: any other name would export nothing
                raise ExportError(f"--classes: expected a comma-separated list of {', '.join(LABELS)}; found "
                                  f"{', '.join(repr(c) for c in bad) if bad else 'no class'}. Check the spelling.")
        return cls(include, min_agreement, classes, fer_only)

    def label(self, rec) -> tuple[Optional[str], str]:
        """(class, "") for a selected face, else (None, why it is left out)."""
        lab, why = selected_label(rec, self.include, self.min_agreement, self.classes)
        if lab is not None and self.fer_only and lab not in LABELS:
            return None, "not_a_fer2013_class"
        return lab, why

    def as_dict(self) -> dict:
        return {"include": self.include, "min_agreement": self.min_agreement,
                "classes": list(self.classes) if self.classes is not None else None}
