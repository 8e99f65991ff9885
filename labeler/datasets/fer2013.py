"""``fer2013``: ``fer2013.csv`` with ``emotion,pixels,Usage`` (48x48 grayscale), FER2013's own layout."""

from __future__ import annotations

import csv
from typing import Any, Optional

from labeler.datasets.crops import fer_pixels
from labeler.datasets.writer import ExportOptions, ExportRun, Writer
from labeler.types import LABELS

FER_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


class Fer2013Writer(Writer):
    name = "fer2013"
    files = ("fer2013.csv",)
    note = ("`fer2013.csv`: `emotion,pixels,Usage`; emotion is the FER2013 index "
            "(0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral), pixels 48x48 grayscale "
            "row-major, Usage Training/PublicTest/PrivateTest = train/val/test.")

    def write(self, run: ExportRun) -> None:
        path = run.folder / "fer2013.csv"
        run.files["data"] = str(path)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["emotion", "pixels", "Usage"])
            for _rec, lab, sp, data in run.faces():
                w.writerow([LABELS.index(lab), fer_pixels(data), FER_USAGE[sp]])
                run.count(sp, lab)

    def size(self, options: ExportOptions) -> Optional[int]:
        return 48

    def summary(self, run: ExportRun) -> dict[str, Any]:
        return {"missing_classes": {}, "class_folders": None, "class_index": {c: i for i, c in enumerate(LABELS)}}
