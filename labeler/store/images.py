"""Images and their paths: what ingest writes, the filename-rule fields, and the counts of `status`."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Optional

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from labeler.store.engine import Store
from labeler.store.locks import dialect_insert, insert_ignore
from labeler.store.schema import DecisionRow, Image, ImagePath, path_key
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
    """path -> (mtime, size, image_id) for every path already ingested whose image is not broken
    (a broken file is read again on every run: a fixed permission or a completed upload counts)."""
    with store.session() as s:
        rows = s.execute(
            select(ImagePath.path, ImagePath.mtime, ImagePath.size_bytes, ImagePath.image_id)
            .join(Image, Image.id == ImagePath.image_id)
            .where(Image.status != "broken")
        )
        return {p: (m, sz, iid) for p, m, sz, iid in rows}


@dataclass(frozen=True)
class Recorded:
    """What :func:`record_path` did: the image id, whether this call created the image, what
    happened to the path: ``new`` (first seen), ``moved`` (it had other content), ``same``; and
    ``fixed``: the image was broken and its content decodes now."""

    image_id: int
    created: bool
    path: str
    fixed: bool = False

    def __iter__(self):  # (image_id, created), as callers unpacked it before
        return iter((self.image_id, self.created))


def record_path(store: Store, sha: str, size: int, facts: dict, path: str, root: str, relpath: str, mtime: float,
                path_size: int, rules_for: Optional[RulesFor] = None) -> Recorded:
    """Record one file in one transaction: its content (a new Image unless the sha256 is known),
    its path (moved over when the file at this path changed content), and, with ``rules_for``, the
    image's rule fields from the names of all its paths. ``facts``: width, height, format, status,
    error. Safe when another process records the same file at the same time (upserts: neither
    fails, nothing is stored twice). A broken image left without a path (the file at its path was
    completed or fixed since) is deleted; a broken image whose content now decodes takes ``facts``."""
    with store.session() as s:
        return _record(s, PathRecord(sha, size, facts, path, root, relpath, mtime, path_size), rules_for)


@dataclass(frozen=True)
class PathRecord:
    """One file to record (the arguments of :func:`record_path`)."""

    sha: str
    size: int
    facts: dict
    path: str
    root: str
    relpath: str
    mtime: float
    path_size: int


def record_paths(store: Store, items: list[PathRecord], rules_for: Optional[RulesFor] = None) -> list[Recorded]:
    """:func:`record_path` for many files in one transaction (results in the order of ``items``), in
    a few statements for the whole batch where a path is new (the common case): one multi-row upsert
    of the contents and one of the paths, one read of each, one update of the rule fields. A path
    that was there before (its file changed) or a broken image whose content decodes now goes
    through :func:`record_path`'s steps, one file at a time. Rows are written in (sha256, path)
    order, so that two processes recording overlapping batches take their row locks in the same
    order (PostgreSQL would otherwise abort one of them as a deadlock)."""
    order = sorted(range(len(items)), key=lambda i: (items[i].sha, path_key(items[i].path)))
    out: list[Optional[Recorded]] = [None] * len(items)
    with store.session() as s:
        for part in range(0, len(order), BATCH):
            _record_batch(s, items, order[part: part + BATCH], rules_for, out)
    return out  # type: ignore[return-value]


#: files per multi-row statement of :func:`record_paths` (13 values a row: within SQLite's limit)
BATCH = 64


def _record_batch(s: Session, items: list[PathRecord], order: list[int], rules_for: Optional[RulesFor],
                  out: list[Optional[Recorded]]) -> None:
    it, pt = Image.__table__, ImagePath.__table__
    first: dict[str, int] = {}
    for i in order:
        first.setdefault(items[i].sha, i)
    rows = [dict(sha256=items[i].sha, size_bytes=items[i].size, rule_state="none", rule_label=None, rule_words="[]",
                 rule_source="", detected=False, detector="", **items[i].facts) for i in first.values()]
    created = set(s.scalars(dialect_insert(s, it).values(rows).on_conflict_do_nothing(index_elements=["sha256"])
                            .returning(it.c.sha256)))
    ids = {sha: (iid, st) for iid, sha, st in s.execute(select(it.c.id, it.c.sha256, it.c.status).where(it.c.sha256.in_(list(first))))}
    simple, keys = [], set()
    for i in order:
        r, k = items[i], path_key(items[i].path)
        creator = r.sha in created and first[r.sha] == i
        fixed = ids[r.sha][1] == "broken" and r.facts.get("status") == "ingested" and not creator
        if not fixed and k not in keys:
            simple.append(i)
            keys.add(k)
    prows = [dict(image_id=ids[items[i].sha][0], path=items[i].path, path_key=path_key(items[i].path), root=items[i].root,
                  relpath=items[i].relpath, mtime=items[i].mtime, size_bytes=items[i].path_size) for i in simple]
    new = set(s.scalars(dialect_insert(s, pt).values(prows).on_conflict_do_nothing(index_elements=["path_key"])
                        .returning(pt.c.path_key))) if prows else set()
    done = [i for i in simple if path_key(items[i].path) in new]
    for i in done:
        iid = ids[items[i].sha][0]
        out[i] = Recorded(iid, items[i].sha in created and first[items[i].sha] == i, "new")
    for i in order:  # the rest: a path that was there, a fixed image, the same path twice
        if out[i] is None:
            rec = _record(s, items[i], rules_for)
            creator = items[i].sha in created and first[items[i].sha] == i
            out[i] = replace(rec, created=True) if creator else rec
    if rules_for is not None and done:  # after the rest: a path may have moved off one of these images
        touched = sorted({ids[items[i].sha][0] for i in done})
        rel: dict[int, list[str]] = {}
        for iid, relpath in s.execute(select(pt.c.image_id, pt.c.relpath).where(pt.c.image_id.in_(touched)).order_by(pt.c.id)):
            rel.setdefault(iid, []).append(relpath)
        params = []
        for iid in touched:
            r = rules_for(rel.get(iid, []))
            params.append(dict(b_id=iid, b_state=r.state, b_label=r.label, b_words=encode_rule_words(r.words), b_source=r.source))
        s.execute(update(it).where(it.c.id == bindparam("b_id")).values(
            rule_state=bindparam("b_state"), rule_label=bindparam("b_label"), rule_words=bindparam("b_words"),
            rule_source=bindparam("b_source")), params)


def _record(s: Session, r: PathRecord, rules_for: Optional[RulesFor]) -> Recorded:
    sha, facts, path, root, relpath = r.sha, r.facts, r.path, r.root, r.relpath
    values = dict(sha256=sha, size_bytes=r.size, rule_state="none", rule_label=None, rule_words="[]", rule_source="",
                  detected=False, detector="", **facts)
    created = insert_ignore(s, Image.__table__, values, ["sha256"])
    img = s.scalar(select(Image).where(Image.sha256 == sha))
    fixed = not created and img.status == "broken" and facts.get("status") == "ingested"
    if fixed:
        for k, v in facts.items():
            setattr(img, k, v)
    key = path_key(path)
    pvalues = dict(image_id=img.id, path=path, path_key=key, root=root, relpath=relpath, mtime=r.mtime,
                   size_bytes=r.path_size)
    state = "new" if insert_ignore(s, ImagePath.__table__, pvalues, ["path_key"]) else "same"
    old = s.scalar(select(ImagePath).where(ImagePath.path_key == key))
    if old.image_id != img.id:  # the file at this path changed content: the path moves over
        state, before = "moved", old.image_id
        old.image_id, old.root, old.relpath = img.id, root, relpath
        s.flush()
        _drop_orphan_broken(s, before)
        left = s.get(Image, before)
        if rules_for is not None and left is not None:  # the image the path left: its rules without that name
            _apply_rules(s, left, rules_for)
    old.mtime, old.size_bytes = r.mtime, r.path_size
    s.flush()
    if rules_for is not None:
        _apply_rules(s, img, rules_for)
    return Recorded(img.id, created, state, fixed)


def _drop_orphan_broken(s: Session, image_id: int) -> None:
    """Delete a broken image that no path has any more (its decisions go with it)."""
    if s.scalar(select(func.count(ImagePath.id)).where(ImagePath.image_id == image_id)):
        return
    if s.scalar(select(Image.status).where(Image.id == image_id)) == "broken":
        s.execute(DecisionRow.__table__.delete().where(DecisionRow.image_id == image_id))
        s.execute(Image.__table__.delete().where(Image.id == image_id))


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
