"""Label Studio, both ways.

Export (``labelstudio``): ``tasks.json`` (face crops under ``crops/``, our model proposal as
``predictions``, human labels as ``annotations``) and ``label_config.xml``.
Import: a Label Studio JSON export (task list, e.g. of tasks made by the export); each (not
cancelled) annotation's choices become that annotator's label of the face.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional
from xml.sax.saxutils import quoteattr

from labeler.datasets.common import face_file_name, image_name, inside
from labeler.datasets.crops import crop_jpeg
from labeler.datasets.importer import CHUNK, ImportReport, LabelImportError, candidates, parse_labels, unreadable
from labeler.datasets.select import NOT_A_CLASS
from labeler.datasets.writer import ExportOptions, ExportRun, Writer
from labeler.store import Store, add_import_annotations, faces_by_key, image_faces, images_by_path, ingest_roots
from labeler.types import LABELS
from labeler.util import batched

# --------------------------------------------------------------------------------------------
# export


def labelstudio_config(classes: Iterable[str]) -> str:
    """The labeling interface: one multiple-choice question over the classes and ``unusable``."""
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in list(classes) + ["unusable"])
    return (
        "<View>\n  <Image name=\"image\" value=\"$image\"/>\n"
        "  <Choices name=\"emotion\" toName=\"image\" choice=\"multiple\" showInline=\"true\">\n"
        f"{choices}\n  </Choices>\n</View>\n"
    )


def _result(labels: list[str]) -> list[dict[str, Any]]:
    return [{"from_name": "emotion", "to_name": "image", "type": "choices", "value": {"choices": list(labels)}}]


def labelstudio_task(rec, crop_rel: str, split: str, url_prefix: str) -> dict[str, Any]:
    """One task: the crop, where it came from, our proposal and people's current labels."""
    task: dict[str, Any] = {
        "data": {
            "image": url_prefix + crop_rel, "source_image": rec.path or "", "image_relpath": image_name(rec),
            "sha256": rec.sha256, "face": rec.face, "face_id": rec.face_id, "image_id": rec.image_id,
            "box": [rec.x1, rec.y1, rec.x2, rec.y2],
            "route": rec.route, "label": rec.label, "label_source": rec.label_source, "split": split,
        },
        "predictions": [],
        "annotations": [],
    }
    if rec.model_label:
        task["predictions"].append({"model_version": rec.model_source or "", "score": rec.model_prob,
                                    "result": _result([rec.model_label])})
    for a in rec.annotations:
        labs = ["unusable"] if a.action == "unusable" else list(a.labels or ())
        task["annotations"].append({
            "completed_by": {"email": a.annotator}, "created_at": a.at,
            "result": _result(labs), "was_cancelled": False,
            "meta": {"annotator": a.annotator, "source": a.source},
        })
    return task


class LabelStudioWriter(Writer):
    name = "labelstudio"
    folders = ("crops",)
    files = ("tasks.json", "label_config.xml")
    all_rows_default = True
    note = ("`tasks.json`: Label Studio tasks (import it in a project using `label_config.xml`). "
            "`data.image` points at `crops/<file>.jpg` through a local-files URL: start Label Studio with "
            "`LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<this folder>`. "
            "Our model proposal is the prediction; people's labels are annotations. Bring labels back with "
            "`labeler import --format labelstudio <exported.json>`.")

    def write(self, run: ExportRun) -> None:
        path = run.folder / "tasks.json"
        run.files["data"] = str(path)
        crop_dir = run.folder / "crops"
        crop_dir.mkdir(exist_ok=True)
        classes = run.selection.classes
        label_set: set[str] = set(LABELS) if classes is None else set(classes)
        first = True
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("[\n")
            for rec, lab, sp, data in run.faces(keep_unlabeled=run.options.all_rows):
                fname = face_file_name(rec)
                inside(run.folder, crop_dir / fname).write_bytes(crop_jpeg(data, run.options.size))
                task = labelstudio_task(rec, f"crops/{fname}", sp, run.options.url_prefix)
                for a in rec.annotations:
                    label_set.update(x for x in (a.labels or ()) if x)
                fh.write(("" if first else ",\n") + json.dumps(task, ensure_ascii=False, default=str))
                first = False
                run.count(sp, lab)
            fh.write("\n]\n")
        ordered = [c for c in LABELS if c in label_set] + sorted(c for c in label_set if c not in LABELS and c not in NOT_A_CLASS)
        (run.folder / "label_config.xml").write_text(labelstudio_config(ordered), encoding="utf-8")
        run.files["label_config"] = str(run.folder / "label_config.xml")

    def size(self, options: ExportOptions) -> Optional[int]:
        return options.size


# --------------------------------------------------------------------------------------------
# import


def _annotator(ann: dict[str, Any]) -> str:
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


def _choices(ann: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for r in ann.get("result") or []:
        if isinstance(r, dict) and r.get("type") == "choices":
            out += [str(c) for c in (r.get("value") or {}).get("choices") or []]
    return out


def _load_tasks(path: Path) -> list[dict[str, Any]]:
    with unreadable(path, "a Label Studio JSON export"):
        text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:  # JSON lines
        try:
            data = [json.loads(x) for x in text.splitlines() if x.strip()]
        except json.JSONDecodeError as e:
            raise LabelImportError(f"{path}: not a Label Studio JSON export (a JSON list of tasks, or one task per line): "
                                   f"{e.msg} in a line; export the project from Label Studio as JSON") from None
    if isinstance(data, dict):
        data = [data]
    return [t for t in data if isinstance(t, dict)]


_PATH_KEYS = ("source_image", "path", "image")


def _local_path(d: dict[str, Any]) -> Optional[str]:
    """The first of the task's path fields that is a file path (not a URL)."""
    for k in _PATH_KEYS:
        if isinstance(d.get(k), str) and d[k] and "?d=" not in d[k] and "://" not in d[k]:
            return d[k]
    return None


class _TaskFaces:
    """Finds the face of each task of one chunk, with three queries for the whole chunk: by
    ``data.sha256`` + ``data.face`` (as exported), else ``data.face_id``, else by the source image
    path when that image has one face."""

    def __init__(self, store: Store, chunk: list[dict[str, Any]], base: Path, roots: list[str]) -> None:
        keys, ids, paths = [], [], []
        for t in chunk:
            d = t.get("data") or {}
            if d.get("sha256") and d.get("face") is not None:
                keys.append((str(d["sha256"]), int(d["face"])))
            if d.get("face_id") is not None:
                ids.append(int(d["face_id"]))
            p = _local_path(d)
            if p is not None:
                paths.append(p)
        self.by_key, self.found = faces_by_key(store, keys, ids)
        self.cands = {p: candidates(p, base, roots) for p in paths}
        self.by_abs, _ = images_by_path(store, [c for cs in self.cands.values() for c in cs])
        self.info = image_faces(store, set(self.by_abs.values()))

    def face_of(self, d: dict[str, Any]) -> Optional[int]:
        fid = None
        if d.get("sha256") and d.get("face") is not None:
            fid = self.by_key.get((str(d["sha256"]), int(d["face"])))
        if fid is None and d.get("face_id") is not None and int(d["face_id"]) in self.found and not d.get("sha256"):
            fid = int(d["face_id"])
        if fid is None:
            p = next((d[k] for k in _PATH_KEYS if isinstance(d.get(k), str) and d[k] in self.cands), None)
            iid = next((self.by_abs[c] for c in self.cands.get(p, []) if c in self.by_abs), None) if p else None
            if iid is not None and len(self.info.get(iid, {}).get("faces", {})) == 1:
                fid = next(iter(self.info[iid]["faces"].values()))
        return fid


def _task_items(rep: ImportReport, task: dict[str, Any], where: str, fid: Optional[int],
                annotator: Optional[str]) -> list[tuple]:
    """The (face_id, annotator, action, labels) items of one task; the rest is reported."""
    d = task.get("data") or {}
    anns = [a for a in (task.get("annotations") or task.get("completions") or []) if isinstance(a, dict)]
    rep.rows += len(anns)
    if fid is None:
        for _ in anns or [None]:
            rep.problem("unknown_task", f"{where} ({d.get('image_relpath') or d.get('image') or ''})")
        return []
    items = []
    for a in sorted(anns, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0)):
        if a.get("was_cancelled"):
            rep.problem("cancelled", where)
            continue
        choices = _choices(a)
        if not choices:
            rep.problem("empty_label", where)
            continue
        parsed = parse_labels("|".join(choices))
        if parsed is None:
            rep.problem("unknown_label", f"{where}: {choices!r}")
            continue
        items.append((fid, annotator or _annotator(a), parsed[0], parsed[1]))
    return items


def import_labelstudio(store: Store, path: str | Path, annotator: Optional[str] = None,
                       source: str = "import:labelstudio") -> ImportReport:
    """Label Studio annotations (choices) back into the database as human annotations (see
    :class:`_TaskFaces` for how a task finds its face). ``annotator`` overrides the Label Studio
    user (else their e-mail / username / ``labelstudio:<id>``)."""
    path = Path(path)
    rep = ImportReport(source=str(path))
    roots = ingest_roots(store)
    for chunk in batched(iter(_load_tasks(path)), CHUNK):
        faces = _TaskFaces(store, chunk, path.resolve().parent, roots)
        items = []
        for n, t in enumerate(chunk):
            fid = faces.face_of(t.get("data") or {})
            items += _task_items(rep, t, f"task {t.get('id', n)}", fid, annotator)
        a, u = add_import_annotations(store, items, source)
        rep.added += a
        rep.unchanged += u
    return rep
