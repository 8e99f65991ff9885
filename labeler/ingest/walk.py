"""Ingest a folder: hash, dedupe, decode robustly, apply the filename rules.

Each file is read once: its bytes are hashed and decoded from memory, and the decoded image is
handed to the caller (``on_image``) so that detection never decodes twice. Every file ends either
ingested or recorded as broken with a reason; a killed run resumes where it stopped because paths
already in the database (same size and mtime) are skipped and every image is committed on its own.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from labeler.ingest.imageio import IMAGE_EXTS, Decoded, DecodeError, decode, looks_like_image
from labeler.ingest.rules import RuleSet
from labeler.store import Store, known_paths, record_path
from labeler.types import ImageRules, RuleWord
from labeler.util import progress as _progress


@dataclass
class IngestReport:
    seen: int = 0
    new_images: int = 0
    new_paths: int = 0  # a known content found at a new path
    unchanged: int = 0  # path already ingested with the same size and mtime
    broken: int = 0
    skipped_other: int = 0  # files that are neither named nor shaped like images
    reasons: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"files seen:        {self.seen}",
            f"new images:        {self.new_images}",
            f"new paths (dupes): {self.new_paths}",
            f"unchanged:         {self.unchanged}",
            f"broken:            {self.broken}",
            f"not images:        {self.skipped_other}",
        ]
        for r, n in sorted(self.reasons.items(), key=lambda t: -t[1]):
            out.append(f"  broken: {n:4d}  {r}")
        return out


def iter_files(root: Path) -> Iterator[Path]:
    """Files under root (or root itself), sorted, hidden files and folders skipped."""
    root = Path(root)
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith("."):
                yield Path(dirpath) / f


def _is_candidate(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in IMAGE_EXTS or looks_like_image(head)


def _short_reason(reason: str) -> str:
    return reason.split(" (")[0]


OnImage = Callable[[int, Decoded], None]


def ingest(
    store: Store,
    root: str | Path,
    rules: Optional[RuleSet] = None,
    include_folders: bool = False,
    on_image: Optional[OnImage] = None,
    needs_decode: Optional[Callable[[int], bool]] = None,
    progress: Optional[bool] = None,
) -> IngestReport:
    """Ingest every file under ``root``.

    ``on_image(image_id, decoded)`` is called for each decodable image that is new, or known but
    for which ``needs_decode(image_id)`` says more work is pending (resume after a crash).
    """
    root = Path(root).resolve()
    files = list(iter_files(root))
    known = known_paths(store)
    report = IngestReport()
    bar = _progress(files, progress, "ingest")
    for path in bar:
        report.seen += 1
        apath = str(path.resolve()) if not path.is_symlink() else str(path.absolute())
        try:
            st = path.stat()
        except OSError as e:
            report.broken += 1
            report.reasons[f"cannot stat: {e.strerror}"] = report.reasons.get(f"cannot stat: {e.strerror}", 0) + 1
            continue
        prev = known.get(apath)
        if prev and prev[0] == st.st_mtime and prev[1] == st.st_size:
            report.unchanged += 1
            if on_image and needs_decode and needs_decode(prev[2]):
                try:
                    on_image(prev[2], decode(path.read_bytes()))
                except (DecodeError, OSError):
                    pass
            continue
        got = _read(path, apath)
        if got is None:
            report.skipped_other += 1
            continue
        sha, size, decoded, reason = got
        rel = os.path.relpath(apath, root) if root.is_dir() else path.name
        image_id, created = _record(store, sha, size, decoded, reason, apath, str(root), rel, st, rules, include_folders)
        if created:
            report.new_images += 1
        else:
            report.new_paths += 1
        if decoded is None:
            if created:
                report.broken += 1
                short = _short_reason(reason)
                report.reasons[short] = report.reasons.get(short, 0) + 1
        elif on_image and (created or (needs_decode and needs_decode(image_id))):
            on_image(image_id, decoded)
    return report


def _read(path: Path, apath: str) -> Optional[tuple[str, int, Optional[Decoded], str]]:
    """(sha256, size, decoded image or None, why not) of one file; None when it is neither named nor
    shaped like an image. An unreadable file is hashed by its path, so it is recorded once as broken."""
    try:
        data = path.read_bytes()
    except OSError as e:
        return hashlib.sha256(apath.encode()).hexdigest(), 0, None, f"cannot read: {e.strerror or e}"
    if not _is_candidate(path, data[:16]):
        return None
    try:
        return hashlib.sha256(data).hexdigest(), len(data), decode(data), ""
    except DecodeError as e:
        return hashlib.sha256(data).hexdigest(), len(data), None, e.reason


def _record(store, sha, size, decoded, reason, apath, root, rel, st, rules, include_folders) -> tuple[int, bool]:
    facts = {
        "width": decoded.width if decoded else 0, "height": decoded.height if decoded else 0,
        "format": decoded.format if decoded else "", "status": "ingested" if decoded else "broken", "error": reason,
    }
    rules_for = None if rules is None else (lambda relpaths: rules_for_paths(rules, relpaths, include_folders))
    return record_path(store, sha, size, facts, apath, root, rel, st.st_mtime, st.st_size, rules_for)


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
