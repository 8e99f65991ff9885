"""Images and their paths: what ingest writes, the filename-rule fields, and the counts of `status`."""

from __future__ import annotations

import json
from typing import Callable, Iterable, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labeler.store.engine import Store, chunks, latest_ids
from labeler.store.schema import DecisionRow, Face, Image, ImagePath
from labeler.types import ImageRules, RuleWord

#: computes an image's rule fields from the relative paths of all its paths
RulesFor = Callable[[list[str]], ImageRules]


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def encode_rule_words(words: Iterable[RuleWord]) -> str:
    """The stored form of rule words: a JSON list of ``[word, class]``, negated as ``["!" + word, ""]``."""
    return dumps([list(w.as_pair()) for w in words])


def decode_rule_words(text: Optional[str]) -> tuple[RuleWord, ...]:
    """The one reader of ``Image.rule_words``."""
    return tuple(RuleWord.from_pair(p) for p in json.loads(text or "[]"))


def encode_flags(flags: Iterable[str]) -> str:
    return ",".join(flags)


def decode_flags(text: Optional[str]) -> tuple[str, ...]:
    """The one reader of ``Face.flags`` (comma-separated)."""
    return tuple(f for f in (text or "").split(",") if f)


def image_rules(img: Image) -> ImageRules:
    return ImageRules(img.rule_state, img.rule_label, decode_rule_words(img.rule_words), img.rule_source)


def known_paths(store: Store) -> dict[str, tuple[float, int, int]]:
    """path -> (mtime, size, image_id) for every path already ingested."""
    with store.session() as s:
        rows = s.execute(select(ImagePath.path, ImagePath.mtime, ImagePath.size_bytes, ImagePath.image_id))
        return {p: (m, sz, iid) for p, m, sz, iid in rows}


def record_path(store: Store, sha: str, size: int, facts: dict, path: str, root: str, relpath: str, mtime: float,
                path_size: int, rules_for: Optional[RulesFor] = None) -> tuple[int, bool]:
    """Record one file in one transaction: its content (a new Image unless the sha256 is known),
    its path (moved over when the file at this path changed content), and, with ``rules_for``, the
    image's rule fields from the names of all its paths. ``facts``: width, height, format, status,
    error. Returns (image_id, created)."""
    with store.session() as s:
        img = s.scalar(select(Image).where(Image.sha256 == sha))
        created = img is None
        if img is None:
            img = Image(sha256=sha, size_bytes=size, rule_state="none", rule_label=None, rule_words="[]", rule_source="",
                        detected=False, detector="", **facts)
            s.add(img)
            s.flush()
        old = s.scalar(select(ImagePath).where(ImagePath.path == path))
        if old is not None:  # the file at this path changed content, or it is the same file touched
            if old.image_id != img.id:
                s.delete(old)
                s.flush()
                old = None
            else:
                old.mtime, old.size_bytes = mtime, path_size
        if old is None:
            s.add(ImagePath(image_id=img.id, path=path, root=root, relpath=relpath, mtime=mtime, size_bytes=path_size))
            s.flush()
        if rules_for is not None:
            _apply_rules(s, img, rules_for)
        return img.id, created


def _apply_rules(s: Session, img: Image, rules_for: RulesFor) -> None:
    r = rules_for(list(s.scalars(select(ImagePath.relpath).where(ImagePath.image_id == img.id))))
    img.rule_state, img.rule_label, img.rule_words, img.rule_source = r.state, r.label, encode_rule_words(r.words), r.source


def reapply_rules(store: Store, rules_for: RulesFor) -> None:
    """Recompute the rule fields of every image (`labeler rules report --reapply`)."""
    with store.session() as s:
        for img in s.scalars(select(Image)):
            _apply_rules(s, img, rules_for)


def rule_rows(store: Store) -> list[tuple[int, ImageRules]]:
    """(image_id, its rules) for every ingested (not broken) image."""
    with store.session() as s:
        return [(img.id, image_rules(img)) for img in s.scalars(select(Image).where(Image.status == "ingested").order_by(Image.id))]


def path_images(store: Store) -> list[tuple[int, str]]:
    """(image_id, absolute path) for every path."""
    with store.session() as s:
        return [(iid, p) for iid, p in s.execute(select(ImagePath.image_id, ImagePath.path))]


def counts(store: Store) -> dict[str, int]:
    """Counts by state for `labeler status`."""
    from labeler.store.records import current_annotations

    with store.session() as s:
        out: dict[str, int] = {}
        out["images"] = s.scalar(select(func.count(Image.id))) or 0
        out["paths"] = s.scalar(select(func.count(ImagePath.id))) or 0
        for st, n in s.execute(select(Image.status, func.count()).group_by(Image.status)):
            out[st] = n
        for st, n in s.execute(
            select(Image.rule_state, func.count()).where(Image.status == "ingested").group_by(Image.rule_state)
        ):
            out[f"rule_{st}"] = n
        out["detected_images"] = s.scalar(select(func.count(Image.id)).where(Image.detected.is_(True))) or 0
        out["faces"] = s.scalar(select(func.count(Face.id))) or 0
        # the newest decision per face (or per image without faces), then its route: portable SQL
        # (PostgreSQL refuses a bare column beside max() that SQLite would accept)
        latest = select(func.max(DecisionRow.id).label("mid")).group_by(DecisionRow.image_id, DecisionRow.face_id).subquery()
        q = select(DecisionRow.route, func.count()).join(latest, DecisionRow.id == latest.c.mid).group_by(DecisionRow.route)
        for route, n in s.execute(q):
            out[f"route_{route}"] = n
        labeled = set(current_annotations(s, None))
        out["human_labeled_faces"] = len(labeled)
        newest = latest_ids(s, DecisionRow, None)
        review: list[int] = []
        for ids in chunks(newest.values()):
            review += s.scalars(select(DecisionRow.face_id).where(DecisionRow.id.in_(ids), DecisionRow.route == "review")).all()
        out["review_remaining"] = sum(1 for f in review if f not in labeled)
        return out
