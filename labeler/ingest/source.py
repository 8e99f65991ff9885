"""Where autolabel's inputs are read from, and what one file is.

A root is a local path, or a URI of an fsspec file system (``s3://bucket/photos``,
``gs://...``, ``file:///data/photos``) when it starts with a scheme: fsspec is then needed
(``pip install 'labeler[remote]'``, plus the file system's own package, e.g. s3fs), on the driver
and on every worker. :func:`read_file` is the one rule of what a file is (a video, an image, an
image that does not decode, not an image, unreadable): the sequential ingest (labeler.ingest.walk)
and the workers of a partitioned run (labeler.work.label_files) both read through it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Optional

from labeler.errors import LabelerError
from labeler.ingest.imageio import IMAGE_EXTS, Decoded, DecodeError, decode, looks_like_image
from labeler.ingest.video import VIDEO_EXTS, looks_like_video

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")

#: bytes read first: enough to tell a video or an image by content
HEAD = 64


def is_uri(root: str | os.PathLike) -> bool:
    """Whether ``root`` names a file system by scheme (``s3://...``) rather than a local path."""
    return bool(_SCHEME.match(str(root)))


def _fsspec():
    try:
        import fsspec
    except ImportError:
        raise LabelerError("a URI as input: expected fsspec installed, found no module 'fsspec'; install it with "
                           "pip install 'labeler[remote]' (and the file system's package, e.g. s3fs), or pass a local folder") from None
    return fsspec


def open_input(path: str | os.PathLike) -> IO[bytes]:
    """A binary file object for a local path or a URI."""
    if is_uri(path):
        return _fsspec().open(str(path), "rb").open()
    return open(path, "rb")


@dataclass(frozen=True)
class FileRead:
    """What :func:`read_file` found. ``kind``: ``image`` (decoded), ``broken`` (named or shaped like
    an image, does not decode: ``reason``), ``video`` (by content or extension; not read past its
    head), ``other`` (neither named nor shaped like an image), ``unreadable`` (``reason``)."""

    kind: str
    sha: str = ""
    size: int = 0
    decoded: Optional[Decoded] = None
    reason: str = ""


def suffix(path: str | os.PathLike) -> str:
    return os.path.splitext(str(path))[1].lower()


def head_kind(path: str | os.PathLike, head: bytes) -> str:
    """``video``, ``image`` or ``other`` from a file's name and first bytes (:data:`HEAD` of them):
    the one rule :func:`read_file` and the check before an ingest share."""
    ext = suffix(path)
    if looks_like_video(head) or (ext in VIDEO_EXTS and not looks_like_image(head)):
        return "video"
    if ext in IMAGE_EXTS or looks_like_image(head[:16]):
        return "image"
    return "other"


def read_file(path: str | os.PathLike) -> FileRead:
    """Read one file once: its head tells a video (not read further), else all of it is hashed
    (sha256) and decoded."""
    try:
        with open_input(path) as fh:
            head = fh.read(HEAD)
            kind = head_kind(path, head)
            if kind == "video":
                return FileRead("video")
            data = head + fh.read()
    except OSError as e:
        return FileRead("unreadable", reason=f"cannot read: {e.strerror or e}")
    if kind == "other":
        return FileRead("other")
    sha = hashlib.sha256(data).hexdigest()
    try:
        return FileRead("image", sha, len(data), decode(data))
    except DecodeError as e:
        return FileRead("broken", sha, len(data), reason=e.reason)


@dataclass(frozen=True)
class Listed:
    """One file under a URI root: its URI, its path relative to the root, mtime and size."""

    uri: str
    rel: str
    mtime: float
    size: int


def _mtime(info: dict) -> float:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created", "time_created"):
        v = info.get(key)
        if isinstance(v, datetime):
            return v.timestamp()
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


def list_uri(root: str) -> list[Listed]:
    """The files under a URI root (or the one file it names), sorted by path; hidden files and
    folders (a name starting with a dot) are left out, as the local walk does."""
    fs, base = _fsspec().core.url_to_fs(root)
    base = base.rstrip("/")
    try:
        found = fs.find(base, detail=True)
    except FileNotFoundError:
        found = {}
    if not found and fs.isfile(base):
        found = {base: fs.info(base)}
    if not found and not fs.exists(base):
        raise LabelerError(f"{root}: no such file or folder; expected a folder of images (or one image) to ingest.")
    out = []
    for p, info in sorted(found.items()):
        if info.get("type", "file") != "file":
            continue
        rel = p[len(base):].lstrip("/") if p != base else p.rsplit("/", 1)[-1]
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        out.append(Listed(fs.unstrip_protocol(p), rel, _mtime(info), int(info.get("size") or 0)))
    return out
