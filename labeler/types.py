"""Plain dataclasses shared by every module. No I/O, no third-party imports beyond numpy typing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

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
class SourceImage:
    sha256: str
    path: str  # as found on disk (first path seen)
    width: int = 0
    height: int = 0
    format: str = ""
    status: str = "ingested"  # ingested | broken
    error: str = ""


@dataclass
class Face:
    """A labeling unit: one face of an image (or the whole image for pre-cropped faces)."""

    index: int
    box: Box
    score: float
    landmarks: Optional[tuple[Point, ...]] = None
    whole_image: bool = False
    #: quality values: det_score, size (short side px), blur (variance of Laplacian), yaw (degrees)
    quality: dict[str, float] = field(default_factory=dict)
    #: flags such as "small", "blurry", "profile", "whole_image", "background"
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleMatch:
    """What the filename rules say about one name."""

    label: Optional[str]  # the single class proposed, None when no keyword or ambiguous
    state: str  # "labeled" | "ambiguous" | "none"
    matches: tuple[tuple[str, str], ...] = ()  # (word as found, class) pairs that fired
    negated: tuple[str, ...] = ()  # words that were seen but negated


@dataclass(frozen=True)
class Proposal:
    source_kind: str  # "rule" | "model" | "import"
    source: str  # rule file / model name@version
    label: Optional[str]
    probs: Optional[dict[str, float]] = None
    detail: str = ""  # e.g. the words that fired


@dataclass(frozen=True)
class Decision:
    route: str  # auto | review | no_face | broken | skip
    label: Optional[str]
    reason: str
    priority: float = 0.0  # higher = more useful to review first
    source: str = ""
