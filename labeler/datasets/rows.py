"""``csv`` / ``jsonl``: one row per face (and one per image without faces: no_face, broken,
pending) with every column we know; ``included``/``split`` say whether the face is in the data set
the same filters would give."""

from __future__ import annotations

import csv
import dataclasses
import json
from typing import Any, Callable

from labeler.datasets.common import image_name, json_cell, num
from labeler.datasets.select import PROPOSAL, agreement, is_proposal
from labeler.datasets.writer import ExportRun, Writer

#: per face: the label-issue score of its label (``labeler.quality``), confident learning's verdict,
#: the class the model prefers, which label was scored; the crowd model's consensus and posterior;
#: an imported vote distribution (FER+ style vote columns)
QUALITY_COLUMNS = ["label_issue_score", "label_issue_flag", "label_issue_suggested", "label_issue_of",
                   "consensus_label", "consensus_posterior", "consensus_method", "vote_distribution"]
CSV_COLUMNS = [
    "image", "face", "x1", "y1", "x2", "y2", "det_score", "rule_label", "rule_state", "rule_words",
    "model_label", "model_prob", "model_probs", "model_source", "route", "reason", "decision_label",
    "label", "label_source", "label_bucket", "label_precision", "label_precision_lower", "label_precision_upper", "human_label", "agreement", "votes", "annotators", "annotator_labels",
    "n_annotators", *QUALITY_COLUMNS, "included", "split", "whole_image", "flags", "quality", "text_share", "nonphoto", "dup_group",
    "status", "error",
    "width", "height", "sha256", "image_id", "face_id", "path", "root", "paths",
]

#: a spreadsheet reads a cell that starts with one of these as a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula gets a leading ``'`` (numbers stay
    numbers). ``labeler import`` takes the quote off again."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _rule_words(rec) -> list[list[str]]:
    return [list(w.as_pair()) for w in rec.rule_words]


def _annotations(rec) -> list[dict[str, Any]]:
    return [a.as_dict() for a in rec.annotations]


def label_estimate(rec) -> dict[str, Any]:
    """The bucket and estimated precision (95% interval) of an auto-accepted label; empty for a
    human label (counted as right in the data set's figure) and for unlabeled faces."""
    if rec.human_label or rec.route != "auto" or not rec.label:
        return {"label_bucket": None, "label_precision": None, "label_precision_lower": None, "label_precision_upper": None}
    return {"label_bucket": rec.bucket, "label_precision": rec.est_precision, "label_precision_lower": rec.est_lower,
            "label_precision_upper": rec.est_upper}


def quality_values(assessment, rec) -> dict[str, Any]:
    """The :data:`QUALITY_COLUMNS` of a record (None where there is nothing to say)."""
    fid = rec.face_id
    i = assessment.issues.get(fid) if assessment is not None and fid is not None else None
    c = assessment.consensus.get(fid) if assessment is not None and fid is not None else None
    v = assessment.votes.get(fid) if assessment is not None and fid is not None else None
    return {"label_issue_score": i.score if i else None, "label_issue_flag": i.flagged if i else None,
            "label_issue_suggested": i.suggested if i else None, "label_issue_of": f"{i.kind}:{i.label}" if i else None,
            "consensus_label": c.label if c else None, "consensus_posterior": c.posterior if c else None,
            "consensus_method": c.method if c else None, "vote_distribution": dict(v) if v else None}


def cells(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        if isinstance(v, bool):
            out[k] = int(v)
        elif isinstance(v, float):
            out[k] = num(v)
        elif isinstance(v, dict):
            out[k] = json_cell(v)
        else:
            out[k] = "" if v is None else v
    return out


def flat_row(rec, included: bool, split: str, assessment=None) -> dict[str, Any]:
    """The CSV row of a record (values as written; JSON columns as text)."""
    anns = rec.annotations
    return {
        "image": image_name(rec),
        "face": "" if rec.face is None else rec.face,
        "x1": num(rec.x1), "y1": num(rec.y1), "x2": num(rec.x2), "y2": num(rec.y2), "det_score": num(rec.det_score),
        "rule_label": rec.rule_label or "", "rule_state": rec.rule_state or "", "rule_words": json_cell(_rule_words(rec)),
        "model_label": rec.model_label or "", "model_prob": num(rec.model_prob),
        "model_probs": json_cell(rec.model_probs), "model_source": rec.model_source or "",
        "route": rec.route or "", "reason": rec.reason or "", "decision_label": rec.decision_label or "",
        "label": rec.label or (rec.model_label if is_proposal(rec, included) else "") or "",
        "label_source": PROPOSAL if is_proposal(rec, included) else rec.label_source or "",
        **{k: ("" if v is None else num(v)) for k, v in label_estimate(rec).items()},
        "human_label": rec.human_label or "",
        "agreement": num(agreement(rec)), "votes": json_cell(dict(rec.votes or {})),
        "annotators": ",".join(a.annotator for a in anns),
        "annotator_labels": json_cell({a.annotator: ("unusable" if a.action == "unusable" else a.as_dict()["labels"])
                                       for a in anns}),
        "n_annotators": len(anns),
        **cells(quality_values(assessment, rec)),
        "included": int(included), "split": split,
        "whole_image": int(bool(rec.whole_image)), "flags": ",".join(rec.flags),
        "quality": json_cell(rec.quality), "text_share": num(rec.text_share), "nonphoto": num(rec.nonphoto),
        "dup_group": "" if rec.dup_group is None else rec.dup_group, "status": rec.status or "", "error": rec.error or "",
        "width": rec.width or 0, "height": rec.height or 0,
        "sha256": rec.sha256 or "", "image_id": rec.image_id,
        "face_id": "" if rec.face_id is None else rec.face_id,
        "path": rec.path or "", "root": rec.root or "", "paths": json_cell(list(rec.paths)),
    }


def json_row(rec, included: bool, split: str, assessment=None) -> dict[str, Any]:
    """The JSONL object of a record: every field of the record, then image, agreement, included, split."""
    out = {f.name: getattr(rec, f.name) for f in dataclasses.fields(rec)}
    out.update(paths=list(rec.paths), rule_words=_rule_words(rec), flags=",".join(rec.flags),
               annotations=_annotations(rec))
    out["image"] = image_name(rec)
    if is_proposal(rec, included):
        out.update(label=rec.model_label, label_source=PROPOSAL)
    out.update(label_estimate(rec))
    out["agreement"] = agreement(rec)
    out.update(quality_values(assessment, rec))
    out["included"] = included
    out["split"] = split
    return out


class _RowsWriter(Writer):
    """Every record (or only the selected faces) as one row of ``run.data_file`` or ``labels<suffix>``."""

    all_rows_default = True

    def write(self, run: ExportRun) -> None:
        path = run.data_file or run.folder / f"labels{self.file_suffix}"
        run.files["data"] = str(path)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            put = self.start(fh, run.assessment)
            for rec, lab, sp in run.rows():
                if lab is None and not run.options.all_rows:
                    continue
                put(rec, lab is not None, sp)
                run.count(sp, lab)

    def start(self, fh, assessment=None) -> Callable[[Any, bool, str], None]:
        """Write the header (if any); returns the function that writes one row."""
        raise NotImplementedError


class CsvWriter(_RowsWriter):
    name = "csv"
    file_suffix = ".csv"
    files = ("labels.csv",)
    note = ("`labels.csv` (or the file named): one row per face and one per image without a usable face "
            "(route no_face/broken/pending). `label_bucket`/`label_precision` (with its 95% interval): the "
            "auto-accept bucket of an auto-accepted label and its estimated precision (empty for human labels). "
            "`text_share` (image area under text), `nonphoto` (score 0-1), `dup_group` (near-duplicate group: "
            "the smallest image id of the group; splits keep a group together); the flag `text` marks text on "
            "or beside the face. "
            "`included`/`split` tell whether the face is in the data set "
            "these filters select. `label_issue_score` (0-1: how likely the label named in `label_issue_of` is wrong, "
            "from out-of-sample model probabilities; `label_issue_flag` 1 where confident learning counts it a label "
            "error; `label_issue_suggested` the class the model prefers), `consensus_label`/`consensus_posterior` "
            "(the Dawid-Skene crowd model over the annotators; `consensus_method` majority: one rating, no posterior), "
            "`vote_distribution` (imported vote shares, e.g. FER+'s ten votes): empty where not known or without the "
            "quality extra. JSON columns: model_probs, votes, annotator_labels, quality, rule_words, paths, vote_distribution. "
            "Text cells starting with = + - @ (or tab, CR) have a leading ' so spreadsheets do not run them.")

    def start(self, fh, assessment=None) -> Callable[[Any, bool, str], None]:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        return lambda rec, included, split: w.writerow(
            {k: csv_safe(v) for k, v in flat_row(rec, included, split, assessment).items()})


class JsonlWriter(_RowsWriter):
    name = "jsonl"
    file_suffix = ".jsonl"
    files = ("labels.jsonl",)
    note = "`labels.jsonl`: the same content as the CSV export, one JSON object per line."

    def start(self, fh, assessment=None) -> Callable[[Any, bool, str], None]:
        return lambda rec, included, split: fh.write(
            json.dumps(json_row(rec, included, split, assessment), ensure_ascii=False, default=str) + "\n")
