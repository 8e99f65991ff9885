"""``hf``: a Hugging Face ``imagefolder`` data set: the imagefolder layout plus a ``metadata.csv``
per split (``file_name`` and provenance columns)."""

from __future__ import annotations

import csv
from typing import Any

from labeler.datasets.common import image_name, num
from labeler.datasets.imagefolder import ImageFolderWriter
from labeler.datasets.rows import cells, csv_safe, quality_values
from labeler.datasets.select import agreement
from labeler.datasets.writer import ExportRun

HF_COLUMNS = ["file_name", "label", "face_id", "source_image", "face", "sha256", "label_source", "agreement",
              "model_label", "model_prob", "route", "label_issue_score", "consensus_label", "consensus_posterior",
              "vote_distribution"]


def hf_row(rec, label: str, file_name: str, assessment=None) -> dict[str, Any]:
    """The metadata.csv row of one crop (``file_name`` relative to the split folder)."""
    q = cells(quality_values(assessment, rec))
    return {
        "file_name": file_name, "label": label, "face_id": rec.face_id, "source_image": image_name(rec),
        "face": rec.face, "sha256": rec.sha256, "label_source": rec.label_source or "",
        "agreement": num(agreement(rec)), "model_label": rec.model_label or "",
        "model_prob": num(rec.model_prob), "route": rec.route or "",
        **{k: q[k] for k in HF_COLUMNS if k in q},
    }


class HfWriter(ImageFolderWriter):
    name = "hf"
    note = ("Hugging Face imagefolder: `<split>/<class>/<file>.jpg` with `<split>/metadata.csv` (file_name + "
            "label and provenance columns, the label-issue score and the annotators' consensus). Load with `datasets.load_dataset('imagefolder', data_dir='<out>')`.")

    def write(self, run: ExportRun) -> None:
        self._files: dict[str, Any] = {}
        self._writers: dict[str, csv.DictWriter] = {}
        try:
            super().write(run)
        finally:
            self.finish(run)

    def wrote(self, run: ExportRun, rec, label: str, split: str, file_name: str) -> None:
        if split not in self._writers:
            fh = self._files[split] = open(run.folder / split / "metadata.csv", "w", newline="", encoding="utf-8")
            self._writers[split] = csv.DictWriter(fh, fieldnames=HF_COLUMNS)
            self._writers[split].writeheader()
        row = {k: (v if k == "file_name" else csv_safe(v)) for k, v in hf_row(rec, label, file_name, run.assessment).items()}
        self._writers[split].writerow(row)

    def finish(self, run: ExportRun) -> None:
        for fh in self._files.values():
            fh.close()
        self._files = {}
