"""Ingest a folder: hash, dedupe, decode robustly, apply the filename rules.

Each file is read once: its bytes are hashed and decoded from memory, and the decoded image is
handed to the caller (``on_image``) so that detection never decodes twice. Every file ends either
ingested or recorded as broken with a reason; a killed run resumes where it stopped because paths
already in the database (same size and mtime) are skipped and every image is committed on its own.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from labeler.errors import LabelerError
from labeler.ingest.imageio import IMAGE_EXTS, Decoded, DecodeError, decode, looks_like_image
from labeler.ingest.paths import db_path, shown
from labeler.ingest.rules import RuleSet
from labeler.ingest.source import HEAD, FileRead, head_kind, read_file
from labeler.ingest.video import video_facts
from labeler.store import PathRecord, Store, known_paths, record_path
from labeler.types import ImageRules, RuleWord
from labeler.util import progress as _progress


#: how many paths of each kind of "not stored" the report prints
EXAMPLES = 3


@dataclass
class IngestReport:
    """What one run met. Every walked entry is counted once: stored (``new_images``, ``new_paths``,
    ``unchanged``, ``retried``; ``broken`` counts the distinct broken contents among them, as
    `labeler status` does) or listed in ``not_stored`` with why (not an image, hidden, a folder that
    could not be read or a link to a folder, which is not followed)."""

    seen: int = 0
    new_images: int = 0
    new_paths: int = 0  # a known content found at a new path (or a path whose content changed)
    unchanged: int = 0  # path already ingested with the same content
    retried: int = 0  # path recorded as broken before, read again
    broken: int = 0
    skipped_other: int = 0  # files that are neither named nor shaped like images
    reasons: dict[str, int] = field(default_factory=dict)
    not_stored: list[tuple[str, str]] = field(default_factory=list)  # (path, why), in walk order
    _broken_ids: set[int] = field(default_factory=set, repr=False)

    def skip(self, path: str, why: str) -> None:
        self.not_stored.append((path, why))

    def walk_errors(self) -> list[tuple[str, str]]:
        """Folders (or paths) the walk could not read: nothing under them was seen."""
        return [(p, w) for p, w in self.not_stored if w.startswith("cannot list")]

    def add_broken(self, image_id: int, reason: str) -> None:
        if image_id not in self._broken_ids:
            self._broken_ids.add(image_id)
            self.broken += 1
            short = _short_reason(reason)
            self.reasons[short] = self.reasons.get(short, 0) + 1

    def lines(self) -> list[str]:
        out = [
            f"files seen:        {self.seen}",
            f"new images:        {self.new_images}",
            f"new paths (dupes): {self.new_paths}",
            f"unchanged:         {self.unchanged}",
        ]
        if self.retried:
            out.append(f"broken, retried:   {self.retried}")
        out += [f"broken:            {self.broken}", f"not images:        {self.skipped_other}"]
        for r, n in sorted(self.reasons.items(), key=lambda t: -t[1]):
            out.append(f"  broken: {n:4d}  {r}")
        by_why: dict[str, list[str]] = {}
        for p, why in self.not_stored:
            by_why.setdefault(_short_reason(why), []).append(p)
        for why, paths in sorted(by_why.items()):
            more = f" (+{len(paths) - EXAMPLES} more)" if len(paths) > EXAMPLES else ""
            out.append(f"  not stored: {len(paths):4d}  {why}: {'; '.join(shown(p, 120) for p in paths[:EXAMPLES])}{more}")
        return out


def iter_files(root: Path, report: Optional[IngestReport] = None) -> Iterator[Path]:
    """Files under root (or root itself), sorted, folders depth first. Hidden files and folders,
    links to folders (not followed) and folders that cannot be listed are not walked; each goes to
    ``report.not_stored`` with why (never dropped silently). Links to files, dangling links, link
    loops, FIFOs and the like are yielded: ingest stores them (as broken when they are)."""
    root = Path(root)
    if root.is_file() or root.is_symlink() and not root.is_dir():
        yield root
        return
    stack = [str(root)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            if report is not None:
                why = f"path too long for the system, {len(d)} characters" if e.errno == errno.ENAMETOOLONG else e.strerror or e
                report.skip(d, f"cannot list folder: {why} (nothing under it was walked)")
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                if report is not None:
                    report.skip(e.path, "hidden " + ("folder" if _is_dir(e, False) else "file"))
                continue
            if _is_dir(e, False):
                subdirs.append(e.path)
            elif e.is_symlink() and _is_dir(e, True):
                if report is not None:
                    report.skip(e.path, "link to a folder (not followed)")
            else:
                yield Path(e.path)
        stack.extend(reversed(subdirs))


def check_source(path: str | Path) -> Optional[str]:
    """What to warn about before ingesting ``path``, or None. A file that is neither named nor shaped
    like an image or a video is a one-line :class:`LabelerError` (nothing would be stored); a folder
    in which the walk finds no file gives a warning (hidden files and links to folders are not walked)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError:
        return None  # stored as broken, with the reason, by ingest
    if stat.S_ISDIR(mode):
        if next(iter_files(p), None) is None:
            return (f"{shown(str(p))}: no file found in this folder (hidden files and links to folders are not walked); "
                    "nothing to ingest: pass the folder that holds your images")
        return None
    if stat.S_ISREG(mode):
        try:
            with open(p, "rb") as fh:
                head = fh.read(HEAD)
        except OSError:
            return None
        if head_kind(p, head) == "other":
            raise LabelerError(f"{shown(str(p))}: not an image or a video (neither its name nor its first bytes); expected a "
                               "folder of images, or one image or video file: pass the folder that holds your images")
    return None


def _is_dir(e: os.DirEntry, follow: bool) -> bool:
    try:
        return e.is_dir(follow_symlinks=follow)
    except OSError:
        return False


def _short_reason(reason: str) -> str:
    return reason.split(" (")[0]


OnImage = Callable[[int, Decoded], None]
#: called with (image id, path) for a video file to sample (labeler.videolabel)
OnVideo = Callable[[int, Path], None]


def ingest(
    store: Store,
    root: str | Path,
    rules: Optional[RuleSet] = None,
    include_folders: bool = False,
    on_image: Optional[OnImage] = None,
    needs_decode: Optional[Callable[[int], bool]] = None,
    progress: Optional[bool] = None,
    on_video: Optional[OnVideo] = None,
    needs_video: Optional[Callable[[int], bool]] = None,
) -> IngestReport:
    """Ingest every file under ``root``.

    ``on_image(image_id, decoded)`` is called for each decodable image that is new, or known but
    for which ``needs_decode(image_id)`` says more work is pending (resume after a crash).
    Paths recorded as broken are read again on every run (the file may have been fixed).
    Videos (by content) are hashed in chunks and probed, never decoded here: ``on_video(image_id,
    path)`` is called for one that can be opened and is new, or for which ``needs_video`` says
    it was not processed to the end.
    """
    root = Path(root).resolve()
    report = IngestReport()
    files = list(iter_files(root, report))
    known = known_paths(store)
    handed: set[int] = set()  # images given to on_image in this run (a content at two paths: once)
    bar = _progress(files, progress, "ingest")
    for path in bar:
        got = triage(store, report, root, path, rules, include_folders)
        if got is None:
            continue
        apath, rel, st = got
        prev = known.get(db_path(apath))
        if prev and prev[0] == st.st_mtime and prev[1] == st.st_size:
            report.unchanged += 1
            if needs_video and needs_video(prev[2]):  # a video a killed run did not finish
                if on_video and prev[2] not in handed:
                    handed.add(prev[2])
                    on_video(prev[2], path)
                continue
            if on_image and needs_decode and prev[2] not in handed and needs_decode(prev[2]):
                got = read_file(path)
                if got.decoded is None:
                    continue
                handed.add(prev[2])
                on_image(prev[2], got.decoded)
            continue
        got = read_file(path)
        rec = record_read(store, report, got, path, apath, str(root), rel, st, rules, include_folders, on_video, needs_video,
                          handed)
        if got.decoded is not None and on_image and rec.image_id not in handed and (
                rec.created or rec.fixed or (needs_decode and needs_decode(rec.image_id))):
            handed.add(rec.image_id)
            on_image(rec.image_id, got.decoded)
    return report


def triage(store: Store, report: IngestReport, root: Path, path: Path, rules: Optional[RuleSet],
           include_folders: bool) -> Optional[tuple[str, str, os.stat_result]]:
    """The checks before a walked file is read: counted as seen; one that cannot be stat'ed, or is
    not a regular file, is stored as broken (named like an image) or listed as not stored, and None
    comes back; else (its path as stored, its path relative to ``root``, its stat)."""
    report.seen += 1
    apath = _absolute(path)
    rel = os.path.relpath(apath, root) if root.is_dir() else path.name
    try:
        st = path.stat()
    except OSError as e:
        _record_unreadable(store, report, path, apath, str(root), rel, _stat_failure(path, e), rules, include_folders)
        return None
    if not stat.S_ISREG(st.st_mode):
        kind = _file_kind(st.st_mode)
        if path.suffix.lower() in IMAGE_EXTS:
            _record_unreadable(store, report, path, apath, str(root), rel, f"not a regular file ({kind})", rules,
                               include_folders, st)
        else:
            report.skipped_other += 1
            report.skip(apath, f"not a regular file ({kind})")
        return None
    return apath, rel, st


def record_read(store, report, got: FileRead, path, apath: str, root: str, rel: str, st, rules, include_folders,
                on_video=None, needs_video=None, handed=None):
    """Store what :func:`labeler.ingest.source.read_file` found at a new (or changed) path: a video
    is hashed and probed here (and handed to ``on_video``), a file that is not an image is listed as
    not stored (None comes back), anything else is recorded, broken or not; returns the
    :class:`labeler.store.Recorded` of the path."""
    if got.kind == "video":
        _video(store, report, path, apath, root, rel, st, rules, include_folders, on_video, needs_video,
               set() if handed is None else handed)
        return None
    if got.kind == "other":
        report.skipped_other += 1
        report.skip(apath, "not an image (neither named nor shaped like one)")
        return None
    sha, size = read_key(got, apath)
    rec = _record(store, sha, size, got.decoded, got.reason, apath, root, rel, st, rules, include_folders)
    count_stored(report, rec, got.decoded is None, got.reason)
    return rec


def read_key(got: FileRead, apath: str) -> tuple[str, int]:
    """(sha256, size) an image is stored under: its content's, or its path's for an unreadable file
    (recorded once as broken)."""
    if got.kind == "unreadable":
        return hashlib.sha256(db_path(apath).encode()).hexdigest(), 0
    return got.sha, got.size


def _video(store, report, path, apath, root, rel, st, rules, include_folders, on_video, needs_video, handed) -> None:
    try:
        sha, size, facts = video_facts(path)
    except OSError as e:
        _record_unreadable(store, report, path, apath, root, rel, f"cannot read: {e.strerror or e}", rules, include_folders, st)
        return
    rules_for = None if rules is None else (lambda relpaths: rules_for_paths(rules, relpaths, include_folders))
    rec = record_path(store, sha, size, facts, db_path(apath), db_path(root), db_path(rel), st.st_mtime, st.st_size, rules_for)
    count_stored(report, rec, facts["status"] == "broken", facts["error"])
    if on_video and facts["format"] and rec.image_id not in handed and (rec.created or (needs_video and needs_video(rec.image_id))):
        handed.add(rec.image_id)
        on_video(rec.image_id, path)


def count_stored(report: IngestReport, rec, broken: bool, reason: str) -> None:
    """Count one stored file; ``rec``: what ``record_path`` did (labeler.store.images.Recorded)."""
    if rec.created:
        report.new_images += 1
    elif rec.path != "same":
        report.new_paths += 1
    elif broken or rec.fixed:
        report.retried += 1
    else:
        report.unchanged += 1  # the same content at the same path (touched, or stored by another run meanwhile)
    if broken:
        report.add_broken(rec.image_id, reason)


def _absolute(path: Path) -> str:
    """The path as stored: links resolved, except a link itself (kept as the link's own path)."""
    try:
        return str(path.absolute()) if path.is_symlink() else str(path.resolve())
    except (OSError, RuntimeError):  # a path too long for the system, a loop above it
        return os.path.abspath(path)


def _is_link(path: Path) -> bool:
    try:
        return path.is_symlink()
    except OSError:
        return False


def _stat_failure(path: Path, e: OSError) -> str:
    if _is_link(path):
        if e.errno == errno.ELOOP:
            return "symbolic link loop (the link points back at itself)"
        if e.errno == errno.ENOENT:
            return f"dangling symbolic link (target missing: {db_path(os.readlink(path))})"
    if e.errno == errno.ENAMETOOLONG:
        return f"path too long for the system ({len(str(path))} characters; the limit is {_path_max()})"
    return f"cannot stat: {e.strerror or e}"


def _path_max() -> int:
    try:
        return os.pathconf("/", "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        return 4096


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder")):
        if test(mode):
            return name
    return "special file"


def _record_unreadable(store, report, path, apath, root, rel, reason, rules, include_folders, st=None) -> None:
    """Store a path that cannot be read as a broken image with ``reason`` (hashed by its path)."""
    if st is None:
        try:
            st = path.lstat()
        except OSError:
            st = None
    sha = hashlib.sha256(db_path(apath).encode()).hexdigest()
    mtime = st.st_mtime if st else 0.0
    facts = {"width": 0, "height": 0, "format": "", "status": "broken", "error": reason}
    rules_for = None if rules is None else (lambda relpaths: rules_for_paths(rules, relpaths, include_folders))
    rec = record_path(store, sha, 0, facts, db_path(apath), db_path(root), db_path(rel), mtime, 0, rules_for)
    count_stored(report, rec, True, reason)


def _record(store, sha, size, decoded, reason, apath, root, rel, st, rules, include_folders):
    facts = image_facts(decoded.width if decoded else 0, decoded.height if decoded else 0, decoded.format if decoded else "",
                        decoded is not None, reason)
    r = path_record(sha, size, facts, apath, root, rel, st.st_mtime, st.st_size)
    return record_path(store, r.sha, r.size, r.facts, r.path, r.root, r.relpath, r.mtime, r.path_size,
                       rules_function(rules, include_folders))


def image_facts(width: int, height: int, fmt: str, ok: bool, reason: str) -> dict:
    """The stored facts of an image file (``ok``: it decodes; else broken with ``reason``)."""
    return {"width": width, "height": height, "format": fmt, "status": "ingested" if ok else "broken", "error": reason}


def path_record(sha: str, size: int, facts: dict, apath: str, root: str, rel: str, mtime: float, path_size: int) -> PathRecord:
    """What the store records for one file (paths as stored: :func:`db_path`)."""
    return PathRecord(sha, size, facts, db_path(apath), db_path(root), db_path(rel), mtime, path_size)


def rules_function(rules: Optional[RuleSet], include_folders: bool = False):
    """The rules of an image from the relative paths of all its paths (None without rules)."""
    return None if rules is None else (lambda relpaths: rules_for_paths(rules, relpaths, include_folders))


def rules_for_paths(rules: RuleSet, relpaths: list[str], include_folders: bool = False) -> ImageRules:
    """An image's rule fields from the names of all its paths (words of every path count)."""
    hits: list[tuple[str, str]] = []
    negated: list[str] = []
    for rel in relpaths:
        m = rules.match(rel, include_folders=include_folders)
        hits += [h for h in m.matches if h not in hits]
        negated += list(m.negated)
    classes = sorted({c for _, c in hits})
    return ImageRules(
        state="none" if not classes else ("ambiguous" if len(classes) > 1 else "labeled"),
        label=classes[0] if len(classes) == 1 else None,
        words=tuple(RuleWord(w, c) for w, c in hits) + tuple(RuleWord(n, "", True) for n in negated),
        source=rules.source,
    )
