"""The one small interface every format implements, and the export run it writes through.

A :class:`Writer` knows its files; an :class:`ExportRun` knows the selection, the splits and the
tallies that end up in ``metadata.json``. ``export()`` makes the run, hands it to the writer, and
writes the metadata from what the run counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from labeler.audit import AccuracyTally
from labeler.datasets.common import ClassFolders
from labeler.datasets.crops import with_crops
from labeler.datasets.select import Selection, is_proposal
from labeler.datasets.splits import SPLITS
from labeler.store import Store, iter_face_records


@dataclass
class ExportOptions:
    """Everything a writer may need besides the records (checked by ``export()``)."""

    size: int = 112
    all_rows: bool = False
    url_prefix: str = "/data/local-files/?d="


@dataclass
class ExportRun:
    """One export in progress: where it writes, what it selects, and what it has counted."""

    store: Store
    folder: Path  # the export folder (README/metadata live here, or beside a csv/jsonl file)
    data_file: Optional[Path]  # csv/jsonl: the file named by --out, else None
    selection: Selection
    splits: dict[int, str]  # image_id -> split, from the first pass
    options: ExportOptions
    counts: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in SPLITS})
    skipped: Counter = field(default_factory=Counter)
    written: int = 0
    files: dict[str, str] = field(default_factory=dict)
    class_folders: ClassFolders = field(default_factory=ClassFolders)  # label -> folder name
    #: the estimated accuracy of the selected labels (human, or auto at their bucket's precision)
    accuracy: AccuracyTally = field(default_factory=AccuracyTally)
    #: label issues, consensus and agreement (``labeler.quality.Assessment``); None without the quality extra
    assessment: Optional[Any] = None
    #: called with (record, class, split) for every selected face (export's label_quality.csv)
    on_pick: Optional[Callable[[Any, str, str], None]] = None

    def pick(self, rec) -> tuple[Optional[str], str]:
        """(class, split) of a selected face, else (None, "")."""
        lab, _why = self.selection.label(rec)
        if lab is None:
            return None, ""
        sp = self.splits.get(rec.image_id)
        if sp is None:  # labeled after the first pass: left out rather than breaking the grouping
            self.skipped["changed_during_export"] += 1
            return None, ""
        human = bool(rec.label_source.startswith("human"))
        self.accuracy.add(human, rec.bucket, rec.est_precision, rec.est_lower, rec.est_upper, is_proposal(rec, True))
        if self.on_pick is not None:
            self.on_pick(rec, lab, sp)
        return lab, sp

    def rows(self) -> Iterator[tuple[Any, Optional[str], str]]:
        """(record, class or None, split) for every record, in database order."""
        for rec in iter_face_records(self.store):
            lab, sp = self.pick(rec)
            yield rec, lab, sp

    def faces(self, keep_unlabeled: bool = False) -> Iterator[tuple[Any, Optional[str], str, bytes]]:
        """(record, class, split, crop bytes) for the selected faces (every face with
        ``keep_unlabeled``), crops fetched in small batches."""
        chosen = ((rec, lab, sp) for rec, lab, sp in self.rows()
                  if rec.face_id is not None and (lab is not None or keep_unlabeled))
        return with_crops(self.store, chosen, self.skipped)

    def count(self, split: str, label: Optional[str]) -> None:
        """One more file/row written; a selected face also counts for its class."""
        self.written += 1
        if label is not None:
            self.counts[split][label] += 1


class Writer:
    """One export format. Subclasses set the class attributes and implement :meth:`write`."""

    #: the format name (``--format``)
    name: str = ""
    #: sub-folders it fills with files (an earlier export's are refused or, with --overwrite, removed)
    folders: tuple[str, ...] = ()
    #: files it writes into the export folder (an earlier export's are refused or, with --overwrite, replaced)
    files: tuple[str, ...] = ()
    #: the suffix of a data file ``--out`` may name instead of a folder (csv/jsonl), else ""
    file_suffix: str = ""
    #: what it writes, for the README
    note: str = ""
    #: every record, not only the selected faces, unless the caller says otherwise
    all_rows_default: bool = False

    def write(self, run: ExportRun) -> None:
        raise NotImplementedError

    def size(self, options: ExportOptions) -> Optional[int]:
        """The crop size it wrote (metadata ``size``), None when it writes no images."""
        return None

    def summary(self, run: ExportRun) -> dict[str, Any]:
        """Format-specific metadata: missing_classes, class_folders, class_index."""
        return {"missing_classes": {}, "class_folders": None, "class_index": None}
