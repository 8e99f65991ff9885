"""``imagefolder``: ``<split>/<class>/<file>.jpg`` face crops, as torchvision's ImageFolder reads them."""

from __future__ import annotations

from typing import Any, Optional

from labeler.datasets.common import face_file_name, inside
from labeler.datasets.crops import crop_jpeg
from labeler.datasets.splits import SPLITS
from labeler.datasets.writer import ExportOptions, ExportRun, Writer


class ImageFolderWriter(Writer):
    name = "imagefolder"
    folders = SPLITS
    files = ("classes.txt",)
    note = ("`<split>/<class>/<file>.jpg` aligned face crops. Load with "
            "`torchvision.datasets.ImageFolder('<out>/train')` (class index = sorted folder names, see "
            "`classes.txt` and metadata.json `class_index`). A split that lacks a class (small data sets) "
            "gets other indices from ImageFolder: map through `classes.txt` then.")

    def write(self, run: ExportRun) -> None:
        for rec, lab, sp, data in run.faces():
            cls = run.class_folders(lab)
            d = inside(run.folder, run.folder / sp / cls)
            d.mkdir(parents=True, exist_ok=True)
            fname = face_file_name(rec)
            (d / fname).write_bytes(crop_jpeg(data, run.options.size))
            run.count(sp, lab)
            self.wrote(run, rec, lab, sp, f"{cls}/{fname}")
        self.finish(run)
        self.write_classes(run)

    def wrote(self, run: ExportRun, rec, label: str, split: str, file_name: str) -> None:
        """Called after each crop (hf adds its metadata row here)."""

    def finish(self, run: ExportRun) -> None:
        """Called after the last crop."""

    def write_classes(self, run: ExportRun) -> None:
        run.files["root"] = str(run.folder)
        path = run.folder / "classes.txt"
        path.write_text("".join(c + "\n" for c in self._class_names(run)), encoding="utf-8")
        run.files["classes"] = str(path)

    def size(self, options: ExportOptions) -> Optional[int]:
        return options.size

    def summary(self, run: ExportRun) -> dict[str, Any]:
        names = self._class_names(run)
        gaps = {sp: [c for c in names if not (run.folder / sp / c).is_dir()] for sp in SPLITS if (run.folder / sp).is_dir()}
        return {
            "missing_classes": {sp: v for sp, v in gaps.items() if v},
            "class_folders": dict(sorted(run.class_folders.by_label.items())),
            "class_index": {n: i for i, n in enumerate(names)},
        }

    @staticmethod
    def _class_names(run: ExportRun) -> list[str]:
        return sorted(run.class_folders.by_label.values())
