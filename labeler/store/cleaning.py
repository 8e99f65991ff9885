"""The cleaning columns (migration 0007): what `autolabel` and `labeler clean` write, and the
near-duplicate groups.

``images.phash`` NULL means "not measured yet" (stored before the cleaning step existed, or measured
with it off): :func:`images_to_clean` lists those for the backfill. ``images.dup_group`` is derived
from all the hashes at once (:func:`regroup`), so it is recomputed after every run that adds hashes;
it is the id of the smallest image of the group (an image with no near copy is its own group).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from sqlalchemy import or_, select, update

from labeler.faces.neardup import MAX_DISTANCE, from_signed, group_ids, to_signed
from labeler.store.engine import Store, chunks
from labeler.store.images import decode_flags, encode_flags
from labeler.store.schema import Face, Image, ImagePath
from labeler.types import TEXT_FLAG, Box, ImageClean

__all__ = ["to_signed", "from_signed", "CLEAN_COLUMNS", "clean_values", "CleanJob", "images_to_clean", "clean_jobs", "save_clean", "regroup",
           "DupGroups", "dup_groups"]

#: the Image columns :func:`clean_values` sets
CLEAN_COLUMNS = ("phash", "text_share", "nonphoto")


def clean_values(clean: Optional[ImageClean]) -> dict:
    """The Image column values of ``clean`` (nothing when not measured)."""
    if clean is None:
        return {}
    return {"phash": to_signed(clean.phash), "text_share": None if clean.text_share is None else float(clean.text_share),
            "nonphoto": float(clean.nonphoto)}


@dataclass(frozen=True)
class CleanJob:
    """A stored image to measure: where its bytes may be, and its faces (id, box) in face order."""

    image_id: int
    paths: tuple[str, ...]
    faces: tuple[tuple[int, Box], ...]


def images_to_clean(store: Store, text: bool = False) -> list[CleanJob]:
    """Detected images without cleaning measurements (with ``text``: or without text looked for),
    in id order (those with a path: a sampled video frame has none, and is not measured)."""
    with store.session() as s:
        q = select(Image.id).where(Image.status == "ingested", Image.detected.is_(True))
        q = q.where(or_(Image.phash.is_(None), Image.text_share.is_(None)) if text else Image.phash.is_(None))
        ids = list(s.scalars(q.order_by(Image.id)))
    return clean_jobs(store, ids)


def clean_jobs(store: Store, image_ids: Iterable[int]) -> list[CleanJob]:
    """What measuring these images needs: their paths and face boxes (in id order; an image without
    a path, a sampled video frame, is left out)."""
    ids = sorted(set(image_ids))
    out = []
    with store.session() as s:
        for part in chunks(ids):
            paths: dict[int, list[str]] = {}
            for iid, p in s.execute(select(ImagePath.image_id, ImagePath.path).where(ImagePath.image_id.in_(part))
                                    .order_by(ImagePath.id)):
                paths.setdefault(iid, []).append(p)
            faces: dict[int, list[tuple[int, Box]]] = {}
            for f in s.execute(select(Face.image_id, Face.id, Face.x1, Face.y1, Face.x2, Face.y2)
                               .where(Face.image_id.in_(part)).order_by(Face.image_id, Face.idx)):
                faces.setdefault(f[0], []).append((f[1], (f[2], f[3], f[4], f[5])))
            out += [CleanJob(i, tuple(paths[i]), tuple(faces.get(i, ()))) for i in part if i in paths]
    return out


def save_clean(store: Store, image_id: int, clean: ImageClean, face_ids: Iterable[int]) -> int:
    """Store the measurements of one image and its faces (``face_ids`` in the order of
    ``clean.faces``); a face with text near it gets the text flag. Returns its faces with text."""
    n = 0
    with store.session() as s:
        s.execute(update(Image).where(Image.id == image_id).values(**clean_values(clean))
                  .execution_options(synchronize_session=False))
        for fid, fc in zip(face_ids, clean.faces):
            face = s.get(Face, fid)
            if face is None:
                continue
            flags = tuple(f for f in decode_flags(face.flags) if f != TEXT_FLAG) + ((TEXT_FLAG,) if fc.text_near else ())
            near = None if fc.text_near is None else bool(fc.text_near)
            face.flags, face.phash, face.text_near = encode_flags(flags), to_signed(fc.phash), near
            n += int(fc.text_near)
    return n


def regroup(store: Store, max_distance: int = MAX_DISTANCE) -> int:
    """Recompute ``dup_group`` of every measured image from all the hashes; returns rows changed."""
    with store.session() as s:
        rows = s.execute(select(Image.id, Image.phash, Image.dup_group).where(Image.phash.is_not(None))
                         .order_by(Image.id)).all()
        ids = [r[0] for r in rows]
        groups = group_ids([from_signed(r[1]) for r in rows], max_distance)
        changed: dict[int, list[int]] = {}
        for (iid, _, old), g in zip(rows, groups):
            if old != ids[g]:
                changed.setdefault(ids[g], []).append(iid)
        for gid, members in changed.items():
            for part in chunks(members):
                s.execute(update(Image).where(Image.id.in_(part)).values(dup_group=gid)
                          .execution_options(synchronize_session=False))
    return sum(len(m) for m in changed.values())


@dataclass(frozen=True)
class DupGroups:
    """Near-duplicate groups with two or more images: group id -> member image ids (sorted)."""

    groups: dict[int, tuple[int, ...]]

    def of(self, image_id: int) -> Optional[int]:
        for g, members in self.groups.items():
            if image_id in members:
                return g
        return None


def dup_groups(store: Store) -> DupGroups:
    with store.session() as s:
        rows = s.execute(select(Image.dup_group, Image.id).where(Image.dup_group.is_not(None))
                         .order_by(Image.dup_group, Image.id)).all()
    by: dict[int, list[int]] = {}
    for g, i in rows:
        by.setdefault(g, []).append(i)
    return DupGroups({g: tuple(m) for g, m in by.items() if len(m) > 1})
