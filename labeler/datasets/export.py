"""`labeler export`: the labeled faces as a data set (or the full picture as CSV/JSONL).

Formats, one writer each (see :mod:`labeler.datasets.writer` for the interface):

- ``csv`` / ``jsonl`` (:mod:`.rows`): one row per face and one per image without faces, every column we know.
- ``imagefolder`` (:mod:`.imagefolder`): ``train|val|test/<class>/<file>.jpg`` face crops.
- ``fer2013`` (:mod:`.fer2013`): ``fer2013.csv`` with ``emotion,pixels,Usage`` (48x48 grayscale).
- ``hf`` (:mod:`.hf`): a Hugging Face ``imagefolder`` data set with a ``metadata.csv`` per split.
- ``labelstudio`` (:mod:`.labelstudio`): ``tasks.json`` and ``label_config.xml``.

Splits (:mod:`.splits`) are stratified by class and grouped by source image, repeatable for a seed.
Everything is streamed: two passes over the database (the first keeps only per-image label counts,
for the split), crops are fetched and written in small batches. Every export writes a README and
``metadata.json`` (:mod:`.metadata`) into its folder, or beside the file a csv/jsonl ``--out`` names.
"""

from __future__ import annotations

import csv
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from labeler.datasets import metadata, videos
from labeler.datasets.common import ExportError, face_file_name, image_name
from labeler.datasets.fer2013 import Fer2013Writer
from labeler.datasets.hf import HfWriter
from labeler.datasets.imagefolder import ImageFolderWriter
from labeler.datasets.labelstudio import LabelStudioWriter
from labeler.datasets.rows import QUALITY_COLUMNS, CsvWriter, JsonlWriter, cells, csv_safe, quality_values
from labeler.datasets.select import Selection
from labeler.datasets.splits import plan, shares
from labeler.datasets.writer import ExportOptions, ExportRun, Writer
from labeler.store import Store, iter_face_records, proposal_estimate

WRITERS: dict[str, type[Writer]] = {w.name: w for w in (
    CsvWriter, JsonlWriter, ImageFolderWriter, Fer2013Writer, HfWriter, LabelStudioWriter)}
FORMATS = tuple(WRITERS)
DATASET_FORMATS = ("imagefolder", "fer2013", "hf", "labelstudio")
#: what a killed export leaves behind (removed when the export finishes)
INCOMPLETE = "INCOMPLETE_EXPORT.txt"
#: per selected face, its label issue, consensus and votes, for the formats whose own files have no
#: room for them (csv, jsonl and hf carry them as columns)
QUALITY_FILE = "label_quality.csv"
QUALITY_FILE_COLUMNS = ["file", "face_id", "image", "face", "split", "label", *QUALITY_COLUMNS]
_OVERWRITE = "pass --overwrite (overwrite=True from Python)"


@dataclass(frozen=True)
class Target:
    """Where an export writes: its folder, the data file ``--out`` named (csv/jsonl), and the
    paths of its README, metadata and unfinished-export marker."""

    folder: Path
    data_file: Optional[Path]
    readme: Path
    metadata: Path
    marker: Path
    tracks: Path

    def files(self, writer: Writer) -> list[Path]:
        """The files this export writes into ``folder`` (the data file ``--out`` names excepted)."""
        own = [self.folder / f for f in writer.files] if self.data_file is None else []
        return [*own, self.readme, self.metadata, self.tracks]

    @classmethod
    def of(cls, out: Path, writer: Writer) -> "Target":
        if writer.file_suffix and out.suffix.lower() == writer.file_suffix and not out.is_dir():
            d = out.parent
            return cls(d, out, d / f"{out.name}.README.md", d / f"{out.name}.metadata.json", d / f"{out.name}.{INCOMPLETE}",
                       videos.tracks_path(d, out))
        return cls(out, None, out / "README.md", out / "metadata.json", out / INCOMPLETE, videos.tracks_path(out, None))


def _prepare(target: Target, writer: Writer, out: Path, overwrite: bool) -> None:
    """Check ``--out`` and make the folder; an earlier export there is refused unless ``overwrite``."""
    if target.data_file is None and out.exists() and not out.is_dir():
        also = f" or a file name ending in {writer.file_suffix}" if writer.file_suffix else ""
        raise ExportError(f"--out {out} is a file, but the {writer.name} format writes a folder: give a new or empty folder{also}")
    if target.data_file is not None and target.data_file.exists() and not overwrite:
        raise ExportError(f"--out {out} already exists: choose another file name or {_OVERWRITE} to replace it")
    try:
        target.folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot make the export folder {target.folder} ({e.strerror}): give --out a path whose parents are folders") from None
    old = [target.folder / s for s in writer.folders if (target.folder / s).is_dir() and any((target.folder / s).iterdir())]
    old += [p for p in (*target.files(writer), target.marker) if p.is_symlink() or p.exists()]
    if not old:
        return
    if not overwrite:
        what = ", ".join(p.name + ("/" if p.is_dir() else "") for p in old)
        kind = "a partial export" if target.marker in old else (
            "an export" if target.metadata in old or any(p.is_dir() for p in old) else "files this export writes")
        raise ExportError(f"{target.folder} already holds {kind} ({what}): choose another --out or {_OVERWRITE} to replace "
                          f"{'them' if kind.startswith('files') else 'it'}")
    for p in old:  # only what this writer makes, never the rest of the folder
        if p.is_symlink() or not p.is_dir():
            p.unlink()
        else:
            shutil.rmtree(p)


@contextmanager
def _quality_file(run: ExportRun, fmt: str):
    """``label_quality.csv`` beside an imagefolder / fer2013 / labelstudio export, one row per
    selected face as the run picks it (streamed)."""
    if run.assessment is None or fmt in ("csv", "jsonl", "hf"):
        yield
        return
    path = run.folder / QUALITY_FILE
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=QUALITY_FILE_COLUMNS)
        w.writeheader()
        run.on_pick = lambda rec, lab, sp: w.writerow({k: csv_safe(v) for k, v in {
            "file": face_file_name(rec), "face_id": rec.face_id, "image": image_name(rec), "face": rec.face, "split": sp,
            "label": lab, **cells(quality_values(run.assessment, rec))}.items()})
        yield
    run.on_pick = None
    run.files["label_quality"] = str(path)


def assessment(store: Store):
    """The project's label issues, consensus and agreement (``labeler.quality``), or None without
    the quality extra (the export then says so in its metadata instead of failing)."""
    from labeler.quality import missing

    if missing():
        return None
    from labeler.store import assess_project

    return assess_project(store)


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

    ``overwrite``: replace an earlier export at ``out`` (its crops, a partial export's marker, the
    csv/jsonl file ``out`` names); else ExportError. ``all_rows`` (csv, jsonl, labelstudio; default
    True): write every face/image, not only the ones the label filters select. For csv/jsonl
    ``out`` may be a ``.csv``/``.jsonl`` file name (README and metadata then go beside it as
    ``<name>.README.md`` and ``<name>.metadata.json``), else a folder. ``url_prefix`` is put before
    the crop path in Label Studio tasks (default: a local-files URL relative to the export folder).
    """
    t0 = time.perf_counter()
    fmt = fmt.lower()
    if fmt not in WRITERS:
        raise ExportError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    writer = WRITERS[fmt]()
    selection = Selection.parse(include, min_agreement, classes, fer_only=fmt == "fer2013")
    size = int(size)
    if size < 8 or size > 2048:
        raise ExportError(f"size must be between 8 and 2048 pixels, not {size}")
    shares(split)
    options = ExportOptions(size=size, all_rows=writer.all_rows_default if all_rows is None else bool(all_rows),
                            url_prefix=url_prefix)
    out = Path(out)
    target = Target.of(out, writer)
    _prepare(target, writer, out, overwrite)
    target.marker.write_text(f"labeler export --format {fmt} into this folder did not finish; "
                             "run it again with --overwrite.\n", encoding="utf-8")

    groups = videos.video_groups(store)  # video frame -> its video: one video, one split
    first = plan(videos.grouped(iter_face_records(store), groups), selection, split, seed)  # pass 1
    videos.spread(first.splits, groups)
    run = ExportRun(store, target.folder, target.data_file, selection, first.splits, options, assessment=assessment(store))
    if selection.include == "human+auto+proposals":
        e = proposal_estimate(store)
        run.accuracy.proposal_estimate = (e.precision or 0.0, e.lower, e.upper, e.how) if e.precision is not None else None
    with _quality_file(run, fmt):
        writer.write(run)  # pass 2
    tracks = videos.write_tracks_csv(store, target.folder, target.data_file, first.splits)
    if tracks is not None:
        run.files["tracks"] = str(tracks)

    summ = metadata.summary(writer, run, first, out, seed, split, time.perf_counter() - t0)
    metadata.write(summ, writer.note, target.metadata, target.readme)
    target.marker.unlink()
    return summ
