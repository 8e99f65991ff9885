"""`labeler export`: the labeled faces as a data set (or the full picture as CSV/JSONL).

Formats:

- ``csv`` / ``jsonl``: one row per face (and one per image without faces: no_face, broken,
  pending), every column we know (box, proposals, route, annotators, vote distribution, accepted
  label, split). By default every row is written; ``included``/``split`` say whether the face is in
  the data set the same filters would give.
- ``imagefolder``: ``train|val|test/<class>/<file>.jpg`` face crops (torchvision ImageFolder).
- ``fer2013``: ``fer2013.csv`` with ``emotion,pixels,Usage`` (48x48 grayscale).
- ``hf``: a Hugging Face ``imagefolder`` data set: ``<split>/<class>/<file>.jpg`` plus a
  ``metadata.csv`` per split (``file_name`` and extra columns).
- ``labelstudio``: ``tasks.json`` (Label Studio task list: face crops under ``crops/``, our model
  proposal as ``predictions``, human labels as ``annotations``) and ``label_config.xml``.

Splits are stratified by class and grouped by source image: one image row is one content (sha256),
so faces of one photo and every copy of it land in the same split. The assignment is repeatable for
a seed. Everything is streamed: two passes over the database (the first keeps only per-image label
counts, for the split), crops are fetched and written in small batches.
"""

from __future__ import annotations

from labeler.errors import LabelerError

import csv
import io
import json
import os
import random
import re
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

from labeler.store import Store, face_crops, iter_face_records, model_version_rows
from labeler.types import LABELS
from labeler.util import batched

FORMATS = ("csv", "jsonl", "imagefolder", "fer2013", "hf", "labelstudio")
DATASET_FORMATS = ("imagefolder", "fer2013", "hf", "labelstudio")
SPLITS = ("train", "val", "test")
FER_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
INCLUDE = ("human+auto", "human")
NOT_A_CLASS = {"unusable", "", None}
BATCH = 128  # faces whose crops are in memory at once

CSV_COLUMNS = [
    "image", "face", "x1", "y1", "x2", "y2", "det_score", "rule_label", "rule_state", "rule_words",
    "model_label", "model_prob", "model_probs", "model_source", "route", "reason", "decision_label",
    "label", "label_source", "human_label", "agreement", "votes", "annotators", "annotator_labels",
    "n_annotators", "included", "split", "whole_image", "flags", "quality", "status", "error",
    "width", "height", "sha256", "image_id", "face_id", "path", "root", "paths",
]


class ExportError(LabelerError, ValueError):
    pass


# --------------------------------------------------------------------------------------------
# names


def safe_name(text: Any, fallback: str = "_") -> str:
    """A file/folder name that cannot escape its parent: letters, digits, ``_`` and ``-`` only."""
    s = re.sub(r"[^\w\-]+", "_", str(text or ""), flags=re.UNICODE)
    s = re.sub(r"_+", "_", s).strip("_")
    if not s or s in (".", ".."):
        s = fallback
    return s[:80]


class _Names:
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


def _inside(root: Path, path: Path) -> Path:
    r, p = root.resolve(), path.resolve()
    if r != p and r not in p.parents:
        raise ExportError(f"refusing to write outside the export folder: {path}")
    return path


# --------------------------------------------------------------------------------------------
# selection and splits


def agreement(rec: dict[str, Any]) -> Optional[float]:
    """Share of the annotators' votes for the accepted label (None for a label nobody voted)."""
    votes = rec.get("votes") or {}
    if rec.get("label") is None or not votes:
        return None
    return float(votes.get(rec["label"], 0.0))


def selected_label(rec: dict[str, Any], include: str = "human+auto", min_agreement: float = 0.0,
                   classes: Optional[Sequence[str]] = None) -> tuple[Optional[str], str]:
    """The class a face has in the exported data set, or (None, why it is left out).

    ``include`` "human": only faces people labeled; "human+auto" also auto-accepted labels.
    ``min_agreement`` applies to human labels (vote share of the majority label); auto-accepted
    labels already passed the routing policy's thresholds. ``unusable`` is never a class.
    """
    if rec.get("face_id") is None:
        return None, rec.get("route") or "no_face"
    label = rec.get("label")
    src = rec.get("label_source") or ""
    if label is None:
        return None, "unlabeled"
    if label in NOT_A_CLASS:
        return None, "unusable"
    if src.startswith("human"):
        ag = agreement(rec)
        if min_agreement and (ag is None or ag + 1e-9 < min_agreement):
            return None, "low_agreement"
    elif include == "human":
        return None, "not_human"
    if classes is not None and label not in classes:
        return None, "class_filtered"
    return label, ""


def assign_splits(groups: dict[Any, Counter], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[Any, str]:
    """Group -> split, stratified by each group's main class and balanced on face counts.

    Groups of one class are shuffled with the seed and each goes to the split furthest below its
    target share of that class, so the result is repeatable and every group is in one split only.
    """
    fr = [max(0.0, float(x)) for x in fractions][:3]
    fr += [0.0] * (3 - len(fr))
    tot = sum(fr)
    if tot <= 0:
        raise ExportError("split fractions must not all be zero")
    fr = [x / tot for x in fr]
    by_class: dict[str, list[tuple[Any, int]]] = {}
    for gid, cnt in groups.items():
        if not cnt:
            continue
        main = sorted(cnt.items(), key=lambda kv: (-kv[1], str(kv[0])))[0][0]
        by_class.setdefault(main, []).append((gid, sum(cnt.values())))
    out: dict[Any, str] = {}
    for cls in sorted(by_class, key=str):
        items = sorted(by_class[cls], key=lambda x: str(x[0]))
        random.Random(f"{seed}:{cls}").shuffle(items)
        have = [0, 0, 0]
        for gid, n in items:
            total = sum(have) + n
            k = max(range(3), key=lambda i: (fr[i] * total - have[i] if fr[i] > 0 else float("-inf"), -i))
            have[k] += n
            out[gid] = SPLITS[k]
    return out


# --------------------------------------------------------------------------------------------
# crops


def _crop_image(data: bytes, size: int, gray: bool = False):
    from PIL import Image as PILImage

    im = PILImage.open(io.BytesIO(data))
    im = im.convert("L" if gray else "RGB")
    if im.size != (size, size):
        im = im.resize((size, size), PILImage.LANCZOS)
    return im


def crop_jpeg(data: bytes, size: int) -> bytes:
    """The stored crop as JPEG bytes of ``size`` x ``size`` (as stored when nothing changes)."""
    if data[:3] == b"\xff\xd8\xff":
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(data)) as im:
            if im.size == (size, size) and im.mode == "RGB":
                return data
    buf = io.BytesIO()
    _crop_image(data, size).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def fer_pixels(data: bytes) -> str:
    im = _crop_image(data, 48, gray=True)
    return " ".join(str(v) for v in im.tobytes())


# --------------------------------------------------------------------------------------------
# rows


def image_name(rec: dict[str, Any]) -> str:
    """The image path relative to the ingested root (the absolute path when there is no root)."""
    return (rec.get("relpath") or rec.get("path") or "").replace(os.sep, "/")


def _j(v: Any) -> str:
    return "" if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True)


def flat_row(rec: dict[str, Any], included: bool, split: str) -> dict[str, Any]:
    anns = rec.get("annotations") or []
    return {
        "image": image_name(rec),
        "face": "" if rec.get("face") is None else rec["face"],
        "x1": _num(rec.get("x1")), "y1": _num(rec.get("y1")), "x2": _num(rec.get("x2")), "y2": _num(rec.get("y2")),
        "det_score": _num(rec.get("det_score")),
        "rule_label": rec.get("rule_label") or "", "rule_state": rec.get("rule_state") or "",
        "rule_words": _j(rec.get("rule_words") or []),
        "model_label": rec.get("model_label") or "", "model_prob": _num(rec.get("model_prob")),
        "model_probs": _j(rec.get("model_probs")), "model_source": rec.get("model_source") or "",
        "route": rec.get("route") or "", "reason": rec.get("reason") or "",
        "decision_label": rec.get("decision_label") or "",
        "label": rec.get("label") or "", "label_source": rec.get("label_source") or "",
        "human_label": rec.get("human_label") or "",
        "agreement": _num(agreement(rec)),
        "votes": _j(rec.get("votes") or {}),
        "annotators": ",".join(a["annotator"] for a in anns),
        "annotator_labels": _j({a["annotator"]: ("unusable" if a["action"] == "unusable" else a["labels"]) for a in anns}),
        "n_annotators": len(anns),
        "included": int(included), "split": split,
        "whole_image": int(bool(rec.get("whole_image"))), "flags": rec.get("flags") or "",
        "quality": _j(rec.get("quality")), "status": rec.get("status") or "", "error": rec.get("error") or "",
        "width": rec.get("width") or 0, "height": rec.get("height") or 0,
        "sha256": rec.get("sha256") or "", "image_id": rec.get("image_id"),
        "face_id": "" if rec.get("face_id") is None else rec["face_id"],
        "path": rec.get("path") or "", "root": rec.get("root") or "", "paths": _j(rec.get("paths") or []),
    }


def json_row(rec: dict[str, Any], included: bool, split: str) -> dict[str, Any]:
    out = {k: v for k, v in rec.items()}
    out["image"] = image_name(rec)
    out["agreement"] = agreement(rec)
    out["included"] = included
    out["split"] = split
    return out


def _num(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return round(v, 6)
    return v


def face_file_name(rec: dict[str, Any]) -> str:
    stem = safe_name(Path(image_name(rec)).stem, "img")[:40]
    return f"{int(rec['face_id']):08d}_{stem}_f{int(rec['face'] or 0)}.jpg"


# --------------------------------------------------------------------------------------------
# Label Studio


def labelstudio_config(classes: Iterable[str]) -> str:
    from xml.sax.saxutils import quoteattr

    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in list(classes) + ["unusable"])
    return (
        "<View>\n  <Image name=\"image\" value=\"$image\"/>\n"
        "  <Choices name=\"emotion\" toName=\"image\" choice=\"multiple\" showInline=\"true\">\n"
        f"{choices}\n  </Choices>\n</View>\n"
    )


def _ls_result(labels: list[str]) -> list[dict[str, Any]]:
    return [{"from_name": "emotion", "to_name": "image", "type": "choices", "value": {"choices": list(labels)}}]


def labelstudio_task(rec: dict[str, Any], crop_rel: str, split: str, url_prefix: str) -> dict[str, Any]:
    task: dict[str, Any] = {
        "data": {
            "image": url_prefix + crop_rel,
            "source_image": rec.get("path") or "",
            "image_relpath": image_name(rec),
            "sha256": rec.get("sha256"), "face": rec.get("face"), "face_id": rec.get("face_id"),
            "image_id": rec.get("image_id"),
            "box": [rec.get("x1"), rec.get("y1"), rec.get("x2"), rec.get("y2")],
            "route": rec.get("route"), "label": rec.get("label"), "label_source": rec.get("label_source"),
            "split": split,
        },
        "predictions": [],
        "annotations": [],
    }
    if rec.get("model_label"):
        task["predictions"].append({
            "model_version": rec.get("model_source") or "", "score": rec.get("model_prob"),
            "result": _ls_result([rec["model_label"]]),
        })
    for a in rec.get("annotations") or []:
        labs = ["unusable"] if a["action"] == "unusable" else list(a.get("labels") or [])
        task["annotations"].append({
            "completed_by": {"email": a["annotator"]}, "created_at": a.get("at"),
            "result": _ls_result(labs), "was_cancelled": False,
            "meta": {"annotator": a["annotator"], "source": a.get("source")},
        })
    return task


# --------------------------------------------------------------------------------------------
# the export


def _clear_previous(folder: Path, fmt: str, overwrite: bool) -> None:
    """Crops of an earlier export in the same folder would mix with this one: refuse, or (with
    ``overwrite``) remove only the sub-folders this exporter writes."""
    import shutil

    subs = {"imagefolder": SPLITS, "hf": SPLITS, "labelstudio": ("crops",)}.get(fmt, ())
    old = [folder / s for s in subs if (folder / s).is_dir() and any((folder / s).iterdir())]
    if not old:
        return
    if not overwrite:
        raise ExportError(f"{folder} already holds an export ({', '.join(p.name for p in old)}/): "
                          "choose another folder or pass overwrite=True")
    for p in old:
        if p.is_symlink():
            p.unlink()
        else:
            shutil.rmtree(p)


def _output(out: Path, fmt: str) -> tuple[Path, Optional[Path]]:
    """(folder for README/metadata, data file or None). csv/jsonl may be given a file name."""
    suffix = {"csv": ".csv", "jsonl": ".jsonl"}.get(fmt)
    if suffix and out.suffix.lower() == suffix:
        return out.parent, out
    return out, None


def export(
    store: Store,
    fmt: str,
    out: str | Path,
    *,
    include: str = "human+auto",
    min_agreement: float = 0.0,
    classes: Optional[Sequence[str]] = None,
    size: int = 112,
    seed: int = 0,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    all_rows: Optional[bool] = None,
    overwrite: bool = False,
    url_prefix: str = "/data/local-files/?d=",
) -> dict[str, Any]:
    """Export the database to ``out`` in format ``fmt``; returns a summary (also written as
    ``metadata.json`` beside a ``README.md``).

    ``overwrite``: replace the crops of an earlier export in the same folder (else ExportError).
    ``all_rows`` (csv, jsonl, labelstudio; default True): write every face/image, not only the ones
    the label filters select. For csv/jsonl ``out`` may be a ``.csv``/``.jsonl`` file name, else a
    folder. ``url_prefix`` is put before the crop path in Label Studio tasks (default: a local-files
    URL relative to the export folder, see the README written there).
    """
    t0 = time.perf_counter()
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if include not in INCLUDE:
        raise ExportError(f"include must be one of {INCLUDE}, not {include!r}")
    if classes is not None:
        classes = [c.strip() for c in (classes.split(",") if isinstance(classes, str) else classes) if c and c.strip()]
    if fmt == "fer2013":
        bad = [c for c in (classes or []) if c not in LABELS]
        if bad:
            raise ExportError(f"fer2013 has only the classes {', '.join(LABELS)}; not {', '.join(bad)}")
    size = int(size)
    if size < 8 or size > 2048:
        raise ExportError("size must be between 8 and 2048 pixels")
    if all_rows is None:
        all_rows = fmt in ("csv", "jsonl", "labelstudio")
    out = Path(out)
    folder, data_file = _output(out, fmt)
    folder.mkdir(parents=True, exist_ok=True)
    _clear_previous(folder, fmt, overwrite)

    # ---- pass 1: per-image label counts (the only thing kept for the whole data set)
    groups: dict[int, Counter] = {}
    excluded: Counter = Counter()
    models: Counter = Counter()
    n_records = 0
    for rec in iter_face_records(store):
        n_records += 1
        if rec.get("model_source"):
            models[rec["model_source"]] += 1
        lab, why = selected_label(rec, include, min_agreement, classes)
        if lab is None:
            excluded[why] += 1
            continue
        if fmt == "fer2013" and lab not in LABELS:
            excluded["not_a_fer2013_class"] += 1
            continue
        groups.setdefault(rec["image_id"], Counter())[lab] += 1
    splits = assign_splits(groups, split, seed)
    del groups

    # ---- pass 2: write
    names = _Names()
    counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
    skipped: Counter = Counter()
    written = 0
    files: dict[str, str] = {}
    missing: dict[str, list[str]] = {}

    def sel(rec):
        lab, _why = selected_label(rec, include, min_agreement, classes)
        if lab is None or (fmt == "fer2013" and lab not in LABELS):
            return None, ""
        sp = splits.get(rec["image_id"])
        if sp is None:  # labeled after the first pass: left out rather than breaking the grouping
            skipped["changed_during_export"] += 1
            return None, ""
        return lab, sp

    records = iter_face_records(store)

    def with_crops(keep_unlabeled: bool = False):
        """(record, label, split, crop bytes) for the selected faces, crops fetched per batch."""
        for batch in batched(records, BATCH):
            chosen = []
            for r in batch:
                if r.get("face_id") is None:
                    continue
                lab, sp = sel(r)
                if lab is None and not keep_unlabeled:
                    continue
                chosen.append((r, lab, sp))
            crops = face_crops(store, [r["face_id"] for r, _l, _s in chosen])
            for rec, lab, sp in chosen:
                data = crops.get(rec["face_id"])
                if not data:
                    skipped["no_crop"] += 1
                    continue
                yield rec, lab, sp, data

    if fmt in ("csv", "jsonl"):
        path = data_file or folder / ("labels.csv" if fmt == "csv" else "labels.jsonl")
        files["data"] = str(path)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore") if fmt == "csv" else None
            if w:
                w.writeheader()
            for rec in records:
                lab, sp = sel(rec)
                if lab is None and not all_rows:
                    continue
                if lab is not None:
                    counts[sp][lab] += 1
                if w:
                    w.writerow(flat_row(rec, lab is not None, sp))
                else:
                    fh.write(json.dumps(json_row(rec, lab is not None, sp), ensure_ascii=False, default=str) + "\n")
                written += 1

    elif fmt in ("imagefolder", "hf"):
        metas: dict[str, Any] = {}
        writers: dict[str, Any] = {}
        try:
            for rec, lab, sp, data in with_crops():
                cls = names(lab)
                d = _inside(folder, folder / sp / cls)
                d.mkdir(parents=True, exist_ok=True)
                fname = face_file_name(rec)
                (d / fname).write_bytes(crop_jpeg(data, size))
                counts[sp][lab] += 1
                written += 1
                if fmt == "hf":
                    if sp not in writers:
                        metas[sp] = open(folder / sp / "metadata.csv", "w", newline="", encoding="utf-8")
                        writers[sp] = csv.DictWriter(metas[sp], fieldnames=HF_COLUMNS)
                        writers[sp].writeheader()
                    writers[sp].writerow(hf_row(rec, lab, f"{cls}/{fname}"))
        finally:
            for fh in metas.values():
                fh.close()
        files["root"] = str(folder)
        class_names = sorted(names.by_label.values())
        (folder / "classes.txt").write_text("".join(c + "\n" for c in class_names), encoding="utf-8")
        files["classes"] = str(folder / "classes.txt")
        gaps = {sp: [c for c in class_names if not (folder / sp / c).is_dir()] for sp in SPLITS if (folder / sp).is_dir()}
        missing = {sp: v for sp, v in gaps.items() if v}

    elif fmt == "fer2013":
        path = folder / "fer2013.csv"
        files["data"] = str(path)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["emotion", "pixels", "Usage"])
            for rec, lab, sp, data in with_crops():
                w.writerow([LABELS.index(lab), fer_pixels(data), FER_USAGE[sp]])
                counts[sp][lab] += 1
                written += 1

    elif fmt == "labelstudio":
        path = folder / "tasks.json"
        files["data"] = str(path)
        crop_dir = folder / "crops"
        crop_dir.mkdir(exist_ok=True)
        label_set: set[str] = set(LABELS) if classes is None else set(classes)
        first = True
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("[\n")
            for rec, lab, sp, data in with_crops(keep_unlabeled=all_rows):
                fname = face_file_name(rec)
                _inside(folder, crop_dir / fname).write_bytes(crop_jpeg(data, size))
                task = labelstudio_task(rec, f"crops/{fname}", sp, url_prefix)
                for a in rec.get("annotations") or []:
                    label_set.update(x for x in (a.get("labels") or []) if x)
                if lab is not None:
                    counts[sp][lab] += 1
                fh.write(("" if first else ",\n") + json.dumps(task, ensure_ascii=False, default=str))
                first = False
                written += 1
            fh.write("\n]\n")
        (folder / "label_config.xml").write_text(
            labelstudio_config([c for c in LABELS if c in label_set] + sorted(c for c in label_set if c not in LABELS and c not in NOT_A_CLASS)),
            encoding="utf-8",
        )
        files["label_config"] = str(folder / "label_config.xml")

    summary: dict[str, Any] = {
        "format": fmt,
        "out": str(out),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "database": _redact(store.url),
        "filters": {"include": include, "min_agreement": min_agreement, "classes": list(classes) if classes is not None else None,
                    "all_rows": bool(all_rows)},
        "size": size if fmt in ("imagefolder", "hf", "labelstudio") else (48 if fmt == "fer2013" else None),
        "seed": seed,
        "split_fractions": list(split),
        "records": n_records,
        "written": written,
        "selected_faces": sum(sum(c.values()) for c in counts.values()),
        "class_counts": {s: dict(sorted(counts[s].items())) for s in SPLITS},
        "excluded": dict(sorted(excluded.items())),
        "skipped": dict(sorted(skipped.items())),
        "missing_classes": missing,
        "class_folders": dict(sorted(names.by_label.items())) if fmt in ("imagefolder", "hf") else None,
        "class_index": ({n: i for i, n in enumerate(sorted(names.by_label.values()))} if fmt in ("imagefolder", "hf")
                        else ({c: i for i, c in enumerate(LABELS)} if fmt == "fer2013" else None)),
        "model_sources": dict(models.most_common()),
        "model_versions": model_version_rows(store),
        "files": files,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (folder / "metadata.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    (folder / "README.md").write_text(readme(summary), encoding="utf-8")
    return summary


HF_COLUMNS = ["file_name", "label", "face_id", "source_image", "face", "sha256", "label_source", "agreement",
              "model_label", "model_prob", "route"]


def hf_row(rec: dict[str, Any], label: str, file_name: str) -> dict[str, Any]:
    return {
        "file_name": file_name, "label": label, "face_id": rec["face_id"], "source_image": image_name(rec),
        "face": rec.get("face"), "sha256": rec.get("sha256"), "label_source": rec.get("label_source") or "",
        "agreement": _num(agreement(rec)), "model_label": rec.get("model_label") or "",
        "model_prob": _num(rec.get("model_prob")), "route": rec.get("route") or "",
    }


def _redact(url: str) -> str:
    return re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", url)


_FORMAT_NOTES = {
    "csv": "`labels.csv` (or the file named): one row per face and one per image without a usable face "
           "(route no_face/broken/pending). `included`/`split` tell whether the face is in the data set "
           "these filters select. JSON columns: model_probs, votes, annotator_labels, quality, rule_words, paths.",
    "jsonl": "`labels.jsonl`: the same content as the CSV export, one JSON object per line.",
    "imagefolder": "`<split>/<class>/<file>.jpg` aligned face crops. Load with "
                   "`torchvision.datasets.ImageFolder('<out>/train')` (class index = sorted folder names, see "
                   "`classes.txt` and metadata.json `class_index`). A split that lacks a class (small data sets) "
                   "gets other indices from ImageFolder: map through `classes.txt` then.",
    "fer2013": "`fer2013.csv`: `emotion,pixels,Usage`; emotion is the FER2013 index "
               "(0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral), pixels 48x48 grayscale "
               "row-major, Usage Training/PublicTest/PrivateTest = train/val/test.",
    "hf": "Hugging Face imagefolder: `<split>/<class>/<file>.jpg` with `<split>/metadata.csv` (file_name + "
          "label and provenance columns). Load with `datasets.load_dataset('imagefolder', data_dir='<out>')`.",
    "labelstudio": "`tasks.json`: Label Studio tasks (import it in a project using `label_config.xml`). "
                   "`data.image` points at `crops/<file>.jpg` through a local-files URL: start Label Studio with "
                   "`LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<this folder>`. "
                   "Our model proposal is the prediction; people's labels are annotations. Bring labels back with "
                   "`labeler import --format labelstudio <exported.json>`.",
}


def readme(summary: dict[str, Any]) -> str:
    f = summary["filters"]
    lines = [
        f"# labeler export ({summary['format']})",
        "",
        f"Exported {summary['exported_at']} from `{summary['database']}`.",
        "",
        _FORMAT_NOTES[summary["format"]],
        "",
        "## Selection",
        "",
        f"- labels: {'human labels only' if f['include'] == 'human' else 'human labels, else auto-accepted labels'}"
        f" (include={f['include']}); `unusable` is never a class",
        f"- minimum annotator agreement (human labels): {f['min_agreement']}",
        f"- classes: {', '.join(f['classes']) if f['classes'] is not None else 'all'}",
        f"- splits (train/val/test): {summary['split_fractions']}, seed {summary['seed']}; stratified by class and grouped "
        "by source image content (sha256): faces of one photo and copies of it are in one split only",
        f"- records read: {summary['records']}, written: {summary['written']}, faces selected: {summary['selected_faces']}",
        f"- left out: {json.dumps(summary['excluded'])}; skipped: {json.dumps(summary['skipped'])}",
        *([f"- splits without some class: {json.dumps(summary['missing_classes'])}"] if summary.get("missing_classes") else []),
        "",
        "## Class counts",
        "",
        "| class | " + " | ".join(SPLITS) + " |",
        "|---|" + "---|" * len(SPLITS),
    ]
    all_classes = sorted({c for s in SPLITS for c in summary["class_counts"][s]})
    for c in all_classes:
        lines.append(f"| {c} | " + " | ".join(str(summary["class_counts"][s].get(c, 0)) for s in SPLITS) + " |")
    lines += ["", "## Models", ""]
    for src, n in summary["model_sources"].items():
        lines.append(f"- `{src}`: newest proposal of {n} faces")
    for m in summary["model_versions"]:
        lines.append(f"- trained: {m['name']}@{m['version']} ({m['path']})")
    if not summary["model_sources"] and not summary["model_versions"]:
        lines.append("- none")
    lines += ["", "Everything above is also in `metadata.json`.", ""]
    return "\n".join(lines)
