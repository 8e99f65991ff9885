"""`labeler import`: labels from elsewhere become human annotations (append-only, idempotent).

- :func:`import_csv`: a CSV with a path column (``path`` or ``file``, also ``image``/``filename``)
  and a ``label`` column (optional ``face`` = face index, ``annotator``), or vote-count columns
  instead of (or beside) the label: FER+'s (``neutral, happiness, surprise, sadness, anger,
  disgust, fear, contempt, unknown, NF``) or the class names. The votes are kept as the face's vote
  distribution (a proposal ``votes:<file>``, exported as ``vote_distribution``); without a label
  column the plurality of the votes is the imported label (``unknown``/``NF``: unusable; a tie or
  ``contempt``: not imported). Paths as given to ingest:
  absolute, relative to the CSV's folder, or relative to an ingest root. A label goes to the face
  of an image with exactly one face (or its whole-image face), or to the face the ``face`` column
  names. Everything not imported is counted and reported with its first examples.
- ``import_labelstudio`` (in :mod:`labeler.datasets.labelstudio`): a Label Studio JSON export.

Re-importing the same file adds nothing: an annotation equal to the annotator's current one is
not added again. This holds for two imports running at once as well: each chunk is compared and
appended under a lock (``store.add_import_annotations``), so the second sees what the first added.
"""

from __future__ import annotations

import csv
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from labeler.errors import LabelerError
from labeler.store import Store, add_import_annotations, add_vote_proposals, image_faces, images_by_path, ingest_roots
from labeler.types import LABELS
from labeler.util import batched

PATH_COLUMNS = ("path", "file", "image", "filename", "file_name", "filepath")
#: vote-count columns (FER+'s names and the class names) -> what a vote there says
VOTE_COLUMNS = {"anger": "angry", "happiness": "happy", "sadness": "sad", "contempt": "contempt", "unknown": "unknown",
                "nf": "not_a_face", **{c: c for c in LABELS}}
#: votes that say the face cannot be labeled
NOT_A_LABEL = ("unknown", "not_a_face")
MAX_EXAMPLES = 5
CHUNK = 1000
#: what our CSV export puts a ``'`` before (formula injection); taken off again on import
_ESCAPED = ("'=", "'+", "'-", "'@", "'\t", "'\r")


class LabelImportError(LabelerError, ValueError):
    """A label file that cannot be read as asked (missing columns)."""


@dataclass
class ImportReport:
    source: str
    rows: int = 0
    added: int = 0
    unchanged: int = 0
    votes_added: int = 0
    votes_unchanged: int = 0
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
                "votes_added": self.votes_added, "votes_unchanged": self.votes_unchanged,
                "not_imported": self.not_imported, "problems": dict(self.problems), "examples": dict(self.examples)}

    def lines(self) -> list[str]:
        out = [f"rows read:          {self.rows}", f"annotations added:  {self.added}",
               f"already there:      {self.unchanged}", f"not imported:       {self.not_imported}"]
        if self.votes_added or self.votes_unchanged:
            out[2:2] = [f"vote distributions: {self.votes_added} added, {self.votes_unchanged} already there"]
        for k, n in sorted(self.problems.items()):
            out.append(f"  {k:18s} {n}   e.g. {'; '.join(self.examples.get(k, []))}")
        return out


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


def candidates(value: str, base: Path, roots: list[str]) -> list[str]:
    """The absolute paths a path as written may mean: itself when absolute, else relative to
    ``base`` (the label file's folder) or to an ingest root; normalised and with links resolved."""
    v = os.path.expanduser(value.strip())
    bases = [""] if os.path.isabs(v) else [str(base), *roots]
    out: list[str] = []
    for b in bases:
        p = os.path.join(b, v) if b else v
        for q in (os.path.normpath(os.path.abspath(p)), os.path.realpath(p)):
            if q not in out:
                out.append(q)
    return out


@contextmanager
def unreadable(path: Path, expected: str) -> Iterator[None]:
    """A label file that is not UTF-8 text (a binary file, another encoding) or not a readable CSV
    becomes a one-line error that names the file and says what was expected."""
    try:
        yield
    except UnicodeDecodeError as e:
        raise LabelImportError(
            f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} cannot be decoded; a binary file or another "
            f"encoding); expected {expected} saved as UTF-8: save it as UTF-8 text (\"CSV UTF-8\") and import it again") from None
    except csv.Error as e:
        raise LabelImportError(f"{path}: not a readable CSV ({e}); expected {expected}: fix the line or export the file again") from None


# --------------------------------------------------------------------------------------------
# csv


def _sniff(fh) -> csv.Dialect | type[csv.Dialect]:
    head = fh.read(8192)
    fh.seek(0)
    try:
        return csv.Sniffer().sniff(head, delimiters=",;\t")
    except csv.Error:
        return csv.excel


def _cell(r: dict[str, Any], col: Optional[str]) -> str:
    """A cell as written by a person or by our export (whose formula-escaping quote is taken off)."""
    v = (r.get(col) or "") if col else ""
    if v.startswith(_ESCAPED):
        v = v[1:]
    return v.strip()


@dataclass(frozen=True)
class _Columns:
    path: str
    label: Optional[str]  # None: the label is the plurality of the votes
    face: Optional[str]
    annotator: Optional[str]
    votes: tuple[tuple[str, str], ...] = ()  # (header, what a vote there says)

    @classmethod
    def find(cls, fieldnames, source: Path, path_column: Optional[str], label_column: str) -> "_Columns":
        cols = {c.strip().lower(): c for c in (fieldnames or []) if c}
        pcol = cols.get(path_column.lower()) if path_column else next((cols[c] for c in PATH_COLUMNS if c in cols), None)
        lcol = cols.get(label_column.lower())
        votes = tuple((cols[k], v) for k, v in VOTE_COLUMNS.items() if k in cols and k != label_column.lower())
        if sum(1 for _c, v in votes if v in LABELS) < 2:
            votes = ()
        if pcol is None or (lcol is None and not votes):
            raise LabelImportError(
                f"{source}: needs a path column ({path_column or ' or '.join(PATH_COLUMNS)}) and a {label_column!r} "
                f"column (or vote-count columns named after the classes); found {', '.join(fieldnames or []) or 'no header'}: "
                "rename the header or name the columns with --path-column and --label-column")
        return cls(pcol, lcol, cols.get("face"), cols.get("annotator"), votes)


def vote_counts(r: dict[str, Any], cols: _Columns) -> Optional[dict[str, float]]:
    """{what a vote says: votes} of a row's vote columns (None: no votes, or a cell not a count)."""
    out: dict[str, float] = {}
    for col, what in cols.votes:
        cell = _cell(r, col)
        try:
            v = float(cell) if cell else 0.0
        except ValueError:
            return None
        if v < 0 or v != v:
            return None
        out[what] = out.get(what, 0.0) + v
    return out if sum(out.values()) > 0 else None


def plurality(votes: dict[str, float]) -> Optional[tuple[str, list[str]]]:
    """The imported answer of a vote count: its unique largest class, ``unusable`` where the largest
    is unknown / not a face, None for a tie or a class we do not label (contempt)."""
    top = max(votes.values())
    best = [k for k, v in votes.items() if v == top]
    if len(best) != 1:
        return None
    if best[0] in LABELS:
        return "label", [best[0]]
    return ("unusable", []) if best[0] in NOT_A_LABEL else None


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
    with open(path, newline="", encoding="utf-8-sig") as fh, unreadable(path, "a CSV file (path,label rows)"):
        reader = csv.DictReader(fh, dialect=_sniff(fh))
        cols = _Columns.find(reader.fieldnames, path, path_column, label_column)
        for chunk in batched(enumerate(reader, start=2), CHUNK):
            rep.rows += len(chunk)
            rows = _parse_rows(rep, chunk, cols, annotator, csv_dir, roots)
            resolved = _resolve_images(store, rep, rows)
            info = image_faces(store, [x[1] for x in resolved])
            items, votes = [], []
            for where, iid, parsed, face, who, counts in resolved:
                fid = _target_face(rep, info.get(iid), face, where)
                if fid is None:
                    continue
                if parsed is not None:
                    items.append((fid, who, *parsed))
                if counts is not None:
                    total = sum(counts.values())
                    top = plurality(counts)
                    lab = top[1][0] if top and top[0] == "label" else None
                    votes.append((fid, lab, {k: v / total for k, v in counts.items()}, counts))
            a, u = add_import_annotations(store, items, source)
            rep.added += a
            rep.unchanged += u
            if votes:
                a, u = add_vote_proposals(store, votes, f"votes:{path.name}")
                rep.votes_added += a
                rep.votes_unchanged += u
    return rep


def _parse_rows(rep: ImportReport, chunk, cols: _Columns, annotator: str, csv_dir: Path, roots: list[str]) -> list[tuple]:
    """(where, path, candidate paths, (action, labels) or None, face, annotator, vote counts or None)
    of the usable rows."""
    rows = []
    for line, r in chunk:
        p, lab = _cell(r, cols.path), _cell(r, cols.label)
        where = f"line {line}: {p!r}"
        if not p:
            rep.problem("unknown_path", f"line {line}: empty path")
            continue
        counts = vote_counts(r, cols) if cols.votes else None
        if cols.votes and counts is None:
            rep.problem("no_votes", where)
        if cols.label is None:
            parsed = plurality(counts) if counts else None
            if counts and parsed is None:
                rep.problem("no_majority", where)
            if parsed is None and counts is None:
                continue
        elif not lab:
            rep.problem("empty_label", where)
            continue
        else:
            parsed = parse_labels(lab)
            if parsed is None:
                rep.problem("unknown_label", f"line {line}: {lab!r}")
                continue
        who = _cell(r, cols.annotator) or annotator
        rows.append((where, p, candidates(p, csv_dir, roots), parsed, _cell(r, cols.face), who, counts))
    return rows


def _resolve_images(store: Store, rep: ImportReport, rows: list[tuple]) -> list[tuple]:
    """(where, image_id, parsed, face, annotator, counts) of the rows whose path names one image."""
    by_abs, by_rel = images_by_path(
        store, [c for row in rows for c in row[2]], [os.path.normpath(row[1]) for row in rows if not os.path.isabs(row[1])]
    )
    resolved = []
    for where, p, cands, parsed, face, who, counts in rows:
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
        resolved.append((where, iid, parsed, face, who, counts))
    return resolved


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
