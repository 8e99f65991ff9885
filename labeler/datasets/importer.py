"""`labeler import`: labels from elsewhere become human annotations (append-only, idempotent).

- ``import_csv``: a CSV with a path column (``path`` or ``file``, also ``image``/``filename``) and a
  ``label`` column (optional ``face`` = face index, ``annotator``). Paths as given to ingest:
  absolute, relative to the CSV's folder, or relative to an ingest root. A label goes to the face
  of an image with exactly one face (or its whole-image face), or to the face the ``face`` column
  names. Everything not imported is counted and reported with its first examples.
- ``import_labelstudio``: a Label Studio JSON export (task list, e.g. of tasks made by
  ``labeler export --format labelstudio``); each (not cancelled) annotation's choices become that
  annotator's label of the face.

Re-importing the same file adds nothing: an annotation equal to the annotator's current one is
not added again.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from labeler.store import Store, add_import_annotations, faces_by_key, image_faces, images_by_path, ingest_roots
from labeler.types import LABELS
from labeler.util import batched

PATH_COLUMNS = ("path", "file", "image", "filename", "file_name", "filepath")
MAX_EXAMPLES = 5
CHUNK = 1000


@dataclass
class ImportReport:
    source: str
    rows: int = 0
    added: int = 0
    unchanged: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def problem(self, kind: str, example: str) -> None:
        self.problems[kind] = self.problems.get(kind, 0) + 1
        ex = self.examples.setdefault(kind, [])
        if len(ex) < MAX_EXAMPLES:
            ex.append(example)

    @property
    def not_imported(self) -> int:
        return sum(self.problems.values())

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "rows": self.rows, "added": self.added, "unchanged": self.unchanged,
                "not_imported": self.not_imported, "problems": dict(self.problems), "examples": dict(self.examples)}

    def lines(self) -> list[str]:
        out = [f"rows read:          {self.rows}", f"annotations added:  {self.added}",
               f"already there:      {self.unchanged}", f"not imported:       {self.not_imported}"]
        for k, n in sorted(self.problems.items()):
            out.append(f"  {k:18s} {n}   e.g. {'; '.join(self.examples.get(k, []))}")
        return out


_WHY = {
    "unknown_path": "path not in the database",
    "ambiguous_path": "relative path matches several images",
    "unknown_label": "label is not a class",
    "empty_label": "no label",
    "multi_face": "image has several faces (give a face column)",
    "no_face": "image has no face",
    "not_detected": "image not processed by autolabel yet",
    "broken": "image is broken",
    "unknown_face": "no face with that index",
    "unknown_task": "task matches no face",
    "cancelled": "annotation was cancelled/skipped",
}


def parse_labels(value: Any, classes: Iterable[str] = LABELS) -> Optional[tuple[str, list[str]]]:
    """``"happy"`` -> ("label", ["happy"]); ``"3"`` -> FER2013 index; ``"happy|surprise"`` (or
    ``;``/``+``) -> two labels; ``"unusable"`` -> ("unusable", []). None when not a class."""
    classes = tuple(classes)
    parts = [p.strip().lower() for p in str(value).replace(";", "|").replace("+", "|").split("|") if p.strip()]
    if parts == ["unusable"]:
        return "unusable", []
    labels: list[str] = []
    for p in parts[:2]:
        if p.isdigit() and int(p) < len(LABELS):
            p = LABELS[int(p)]
        if p not in classes:
            return None
        if p not in labels:
            labels.append(p)
    return ("label", labels) if labels else None


# --------------------------------------------------------------------------------------------
# csv


def _sniff(fh) -> csv.Dialect | type[csv.Dialect]:
    head = fh.read(8192)
    fh.seek(0)
    try:
        return csv.Sniffer().sniff(head, delimiters=",;\t")
    except csv.Error:
        return csv.excel


def _candidates(value: str, csv_dir: Path, roots: list[str]) -> list[str]:
    v = os.path.expanduser(value.strip())
    bases = [""] if os.path.isabs(v) else [str(csv_dir), *roots]
    out: list[str] = []
    for b in bases:
        p = os.path.join(b, v) if b else v
        for q in (os.path.normpath(os.path.abspath(p)), os.path.realpath(p)):
            if q not in out:
                out.append(q)
    return out


def import_csv(
    store: Store,
    path: str | Path,
    annotator: str = "import",
    path_column: Optional[str] = None,
    label_column: str = "label",
    source: str = "import:csv",
) -> ImportReport:
    """Record the labels of a CSV (columns path,label; optional face, annotator) as human
    annotations. Returns a report; nothing is dropped silently."""
    path = Path(path)
    csv_dir = path.resolve().parent
    roots = ingest_roots(store)
    rep = ImportReport(source=str(path))
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, dialect=_sniff(fh))
        cols = {c.strip().lower(): c for c in (reader.fieldnames or []) if c}
        pcol = cols.get(path_column.lower()) if path_column else next((cols[c] for c in PATH_COLUMNS if c in cols), None)
        lcol = cols.get(label_column.lower())
        if pcol is None or lcol is None:
            raise ValueError(f"{path}: needs a path column ({path_column or ' or '.join(PATH_COLUMNS)}) and a "
                             f"{label_column!r} column; found {', '.join(reader.fieldnames or []) or 'no header'}")
        fcol, acol = cols.get("face"), cols.get("annotator")
        for chunk in batched(enumerate(reader, start=2), CHUNK):
            rep.rows += len(chunk)
            rows = []
            for line, r in chunk:
                p = (r.get(pcol) or "").strip()
                lab = (r.get(lcol) or "").strip()
                where = f"line {line}: {p!r}"
                if not p:
                    rep.problem("unknown_path", f"line {line}: empty path")
                    continue
                if not lab:
                    rep.problem("empty_label", where)
                    continue
                parsed = parse_labels(lab)
                if parsed is None:
                    rep.problem("unknown_label", f"line {line}: {lab!r}")
                    continue
                face = (r.get(fcol) or "").strip() if fcol else ""
                who = ((r.get(acol) or "").strip() if acol else "") or annotator
                rows.append((where, p, _candidates(p, csv_dir, roots), parsed, face, who))
            by_abs, by_rel = images_by_path(
                store, [c for row in rows for c in row[2]], [os.path.normpath(row[1]) for row in rows if not os.path.isabs(row[1])]
            )
            resolved = []
            for where, p, cands, parsed, face, who in rows:
                iid = next((by_abs[c] for c in cands if c in by_abs), None)
                if iid is None and not os.path.isabs(p):
                    hits = by_rel.get(os.path.normpath(p), set())
                    if len(hits) > 1:
                        rep.problem("ambiguous_path", where)
                        continue
                    iid = next(iter(hits), None)
                if iid is None:
                    rep.problem("unknown_path", where)
                    continue
                resolved.append((where, iid, parsed, face, who))
            info = image_faces(store, [x[1] for x in resolved])
            items = []
            for where, iid, (action, labels), face, who in resolved:
                fid = _target_face(rep, info.get(iid), face, where)
                if fid is not None:
                    items.append((fid, who, action, labels))
            a, u = add_import_annotations(store, items, source)
            rep.added += a
            rep.unchanged += u
    return rep


def _target_face(rep: ImportReport, inf: Optional[dict], face: str, where: str) -> Optional[int]:
    if inf is None:
        rep.problem("unknown_path", where)
        return None
    faces = inf["faces"]
    if face != "":
        try:
            fid = faces.get(int(float(face)))
        except ValueError:
            fid = None
        if fid is None:
            rep.problem("unknown_face", f"{where} face {face!r}")
        return fid
    if len(faces) == 1:
        return next(iter(faces.values()))
    if len(faces) > 1:
        rep.problem("multi_face", f"{where} ({len(faces)} faces)")
    elif inf["status"] == "broken":
        rep.problem("broken", where)
    elif not inf["detected"]:
        rep.problem("not_detected", where)
    else:
        rep.problem("no_face", where)
    return None


# --------------------------------------------------------------------------------------------
# Label Studio


def _ls_annotator(ann: dict[str, Any]) -> str:
    meta = ann.get("meta") if isinstance(ann.get("meta"), dict) else {}
    if meta.get("annotator"):
        return str(meta["annotator"])
    who = ann.get("completed_by")
    if isinstance(who, dict):
        name = who.get("email") or who.get("username") or (f"labelstudio:{who['id']}" if who.get("id") is not None else "")
        return str(name or "labelstudio")
    if who is not None and who != "":
        return f"labelstudio:{who}"
    return "labelstudio"


def _ls_choices(ann: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for r in ann.get("result") or []:
        if isinstance(r, dict) and r.get("type") == "choices":
            out += [str(c) for c in (r.get("value") or {}).get("choices") or []]
    return out


def _load_tasks(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:  # JSON lines
        data = [json.loads(x) for x in text.splitlines() if x.strip()]
    if isinstance(data, dict):
        data = [data]
    return [t for t in data if isinstance(t, dict)]


def import_labelstudio(store: Store, path: str | Path, annotator: Optional[str] = None,
                       source: str = "import:labelstudio") -> ImportReport:
    """Label Studio annotations (choices) back into the database as human annotations. A task is
    matched to its face by ``data.sha256`` + ``data.face`` (as exported), else ``data.face_id``,
    else by its source image path when that image has one face. ``annotator`` overrides the
    Label Studio user (else their e-mail / username / ``labelstudio:<id>``)."""
    path = Path(path)
    rep = ImportReport(source=str(path))
    tasks = _load_tasks(path)
    roots = ingest_roots(store)
    for chunk in batched(iter(tasks), CHUNK):
        keys, ids, paths = [], [], []
        for t in chunk:
            d = t.get("data") or {}
            if d.get("sha256") and d.get("face") is not None:
                keys.append((str(d["sha256"]), int(d["face"])))
            if d.get("face_id") is not None:
                ids.append(int(d["face_id"]))
            for k in ("source_image", "path", "image"):
                if isinstance(d.get(k), str) and d[k] and "?d=" not in d[k] and "://" not in d[k]:
                    paths.append(d[k])
                    break
        by_key, found = faces_by_key(store, keys, ids)
        cands = {p: _candidates(p, path.resolve().parent, roots) for p in paths}
        by_abs, _ = images_by_path(store, [c for cs in cands.values() for c in cs])
        info = image_faces(store, set(by_abs.values()))
        items = []
        for n, t in enumerate(chunk):
            d = t.get("data") or {}
            where = f"task {t.get('id', n)}"
            fid = None
            if d.get("sha256") and d.get("face") is not None:
                fid = by_key.get((str(d["sha256"]), int(d["face"])))
            if fid is None and d.get("face_id") is not None and int(d["face_id"]) in found and not d.get("sha256"):
                fid = int(d["face_id"])
            if fid is None:
                p = next((d[k] for k in ("source_image", "path", "image") if isinstance(d.get(k), str) and d[k] in cands), None)
                iid = next((by_abs[c] for c in cands.get(p, []) if c in by_abs), None) if p else None
                if iid is not None and len(info.get(iid, {}).get("faces", {})) == 1:
                    fid = next(iter(info[iid]["faces"].values()))
            anns = [a for a in (t.get("annotations") or t.get("completions") or []) if isinstance(a, dict)]
            rep.rows += len(anns)
            if fid is None:
                for _ in anns or [None]:
                    rep.problem("unknown_task", f"{where} ({d.get('image_relpath') or d.get('image') or ''})")
                continue
            for a in sorted(anns, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0)):
                if a.get("was_cancelled"):
                    rep.problem("cancelled", where)
                    continue
                choices = _ls_choices(a)
                if not choices:
                    rep.problem("empty_label", where)
                    continue
                parsed = parse_labels("|".join(choices))
                if parsed is None:
                    rep.problem("unknown_label", f"{where}: {choices!r}")
                    continue
                items.append((fid, annotator or _ls_annotator(a), parsed[0], parsed[1]))
        a, u = add_import_annotations(store, items, source)
        rep.added += a
        rep.unchanged += u
    return rep
