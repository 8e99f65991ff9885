"""What the gallery reads of the cleaning columns: faces filtered by flag (text, non-photo, near
copy) and sorted by non-photo score, and the near-duplicate groups of faces (one decision may be
applied to a whole group: an annotation appended per face, :func:`labeler.store.add_annotations`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from sqlalchemy import select

from labeler.faces.nonphoto import THRESHOLD as NONPHOTO_THRESHOLD
from labeler.faces.tracks import iou
from labeler.store.cleaning import dup_groups
from labeler.store.engine import Store, chunks
from labeler.store.quality import issue_map
from labeler.store.review import accepted_labels
from labeler.store.schema import Face, Image

#: gallery filters: every face, faces with text on or beside them, faces of non-photo images
#: (score >= the non-photo threshold), faces of images with a near copy
FLAGS = ("none", "text", "nonphoto", "near_dup")
#: orders: face id, non-photo score, the label most likely wrong first (``labeler.quality`` scores)
SORTS = ("face", "nonphoto", "suspicious")
ANY = "any"  # the gallery's "class" that takes every face, with or without an accepted label


@dataclass(frozen=True)
class GalleryFace:
    face_id: int
    image_id: int
    label: Optional[str]  # accepted label, None where there is none yet
    kind: str  # human | auto | "" (no accepted label)
    crop: Optional[bytes]
    text_near: Optional[bool] = None
    nonphoto: Optional[float] = None
    dup_group: Optional[int] = None
    #: the label-issue score of the face's label and the class the model prefers (``suspicious`` order)
    issue: Optional[float] = None
    suggested: Optional[str] = None


def _facts(store: Store) -> dict[int, tuple[int, Optional[bool], Optional[float], Optional[int]]]:
    """face id -> (image id, text_near, image non-photo score, image dup group)."""
    with store.session() as s:
        rows = s.execute(select(Face.id, Face.image_id, Face.text_near, Image.nonphoto, Image.dup_group)
                         .join(Image, Image.id == Face.image_id)).all()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def gallery_page(store: Store, label: str, kind: str = "all", flag: str = "none", sort: str = "face",
                 limit: int = 48, offset: int = 0, issues: Optional[Mapping[int, tuple[float, str]]] = None
                 ) -> tuple[int, list[GalleryFace]]:
    """One page of faces accepted as ``label`` (or every face: :data:`ANY`) by ``kind`` (all | auto |
    human), kept by ``flag`` (:data:`FLAGS`), ordered by face id, by non-photo score (highest
    first, unmeasured last) or ``suspicious``: the label most likely wrong first (``issues``: face ->
    (label-issue score, class the model prefers), computed here when not given; unscored faces
    last): (total, faces)."""
    if flag not in FLAGS or sort not in SORTS:
        raise ValueError(f"gallery: flag must be one of {FLAGS} and sort one of {SORTS}, found {flag!r}, {sort!r}")
    acc = accepted_labels(store)
    facts = _facts(store)
    multi = set(dup_groups(store).groups) if flag == "near_dup" else set()

    def keep(fid: int) -> bool:
        lab, k = acc.get(fid, (None, ""))
        if label != ANY and (lab != label or kind not in ("all", k)):
            return False
        _iid, text, np_, grp = facts[fid]
        return (flag == "none" or (flag == "text" and bool(text))
                or (flag == "nonphoto" and np_ is not None and np_ >= NONPHOTO_THRESHOLD)
                or (flag == "near_dup" and grp in multi))

    ids = [fid for fid in sorted(facts) if keep(fid)]
    if sort == "suspicious" and issues is None:
        issues = {f: (x.score, x.suggested) for f, x in issue_map(store).items()}
    issues = issues or {}
    if sort == "suspicious":
        ids.sort(key=lambda f: (f not in issues, -issues.get(f, (0.0, ""))[0], f))
    elif sort == "nonphoto":
        ids.sort(key=lambda f: (facts[f][2] is None, -(facts[f][2] or 0.0), f))
    elif flag == "near_dup":
        ids.sort(key=lambda f: (facts[f][3], f))  # copies side by side
    page = ids[offset: offset + limit]
    crops = _crops(store, page)
    return len(ids), [GalleryFace(f, facts[f][0], acc.get(f, (None, ""))[0], acc.get(f, (None, ""))[1], crops.get(f),
                                  *facts[f][1:], *issues.get(f, (None, None))) for f in page]


def _crops(store: Store, face_ids) -> dict[int, Optional[bytes]]:
    out: dict[int, Optional[bytes]] = {}
    with store.session() as s:
        for part in chunks(list(face_ids)):
            out.update(dict(s.execute(select(Face.id, Face.crop).where(Face.id.in_(part))).all()))
    return out


@dataclass(frozen=True)
class FaceGroup:
    """The faces that are one face seen in near-copies of one image."""

    dup_group: int
    face_ids: tuple[int, ...]
    image_ids: tuple[int, ...]


def face_groups(store: Store, min_iou: float = 0.5) -> list[FaceGroup]:
    """Within each near-duplicate group of images, the faces at the same place (boxes in image-relative
    coordinates overlapping by ``min_iou``), one per copy, as groups of two or more; largest first.

    Faces are matched by place, not by their crop hashes: at 8x8 DCT frequencies every face looks
    alike (three people of one team photo were 2 bits apart, the same face at two sizes 10)."""
    groups = dup_groups(store).groups
    members = [i for m in groups.values() for i in m]
    rows = []
    with store.session() as s:
        for part in chunks(members):
            rows += s.execute(select(Face.id, Face.image_id, Image.dup_group, Face.x1, Face.y1, Face.x2, Face.y2,
                                     Image.width, Image.height).join(Image, Image.id == Face.image_id)
                              .where(Face.image_id.in_(part)).order_by(Face.id)).all()
    by: dict[int, list[list]] = {}  # dup group -> clusters of (face id, image id, relative box)
    for fid, iid, g, x1, y1, x2, y2, w, h in rows:
        box = (x1 / max(w, 1), y1 / max(h, 1), x2 / max(w, 1), y2 / max(h, 1))
        for c in by.setdefault(g, []):
            if iid not in {m[1] for m in c} and iou(c[0][2], box) >= min_iou:
                c.append((fid, iid, box))
                break
        else:
            by[g].append([(fid, iid, box)])
    out = [FaceGroup(g, tuple(m[0] for m in c), tuple(m[1] for m in c))
           for g, cs in by.items() for c in cs if len(c) > 1]
    return sorted(out, key=lambda fg: (-len(fg.face_ids), fg.face_ids[0]))
