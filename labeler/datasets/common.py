"""What every export module shares: the error type, names that cannot escape the export folder,
and how a record's values become cells."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from labeler.errors import LabelerError


class ExportError(LabelerError, ValueError):
    """An export that cannot be written as asked (bad option, occupied or unusable ``--out``)."""


def safe_name(text: Any, fallback: str = "_") -> str:
    """A file/folder name that cannot escape its parent: letters, digits, ``_`` and ``-`` only."""
    s = re.sub(r"[^\w\-]+", "_", str(text or ""), flags=re.UNICODE)
    s = re.sub(r"_+", "_", s).strip("_")
    if not s or s in (".", ".."):
        s = fallback
    return s[:80]


class ClassFolders:
    """label -> unique sanitised folder name (two labels never share a folder)."""

    def __init__(self) -> None:
        self.by_label: dict[str, str] = {}
        self.used: set[str] = set()

    def __call__(self, label: str) -> str:
        if label not in self.by_label:
            base = safe_name(label, "class")
            name, k = base, 1
            while name.lower() in self.used:
                k += 1
                name = f"{base}_{k}"
            self.used.add(name.lower())
            self.by_label[label] = name
        return self.by_label[label]


def inside(root: Path, path: Path) -> Path:
    """``path`` itself, after checking that it lies under ``root``."""
    r, p = root.resolve(), path.resolve()
    if r != p and r not in p.parents:
        raise ExportError(f"refusing to write outside the export folder {root}: {path}")
    return path


def image_name(rec) -> str:
    """The image path relative to the ingested root (the absolute path when there is no root)."""
    return (rec.relpath or rec.path or "").replace(os.sep, "/")


def face_file_name(rec) -> str:
    """``<face_id:08d>_<image stem>_f<face index>.jpg``: unique per face, safe as a file name."""
    stem = safe_name(Path(image_name(rec)).stem, "img")[:40]
    return f"{int(rec.face_id):08d}_{stem}_f{int(rec.face or 0)}.jpg"


def num(v: Any) -> Any:
    """A number cell: empty for None, floats rounded to 6 places."""
    if v is None:
        return ""
    if isinstance(v, float):
        return round(v, 6)
    return v


def json_cell(v: Any) -> str:
    """A JSON-valued cell (empty for None), keys sorted so that equal values give equal text."""
    return "" if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True)
