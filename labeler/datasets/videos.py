"""Videos in an export: the frames of one video (so every face track of it) stay in one split, and
a per-track CSV (``tracks.csv``, or ``<name>.tracks.csv`` beside a csv/jsonl file) is written beside
the data set: video, track, start/end, the track's label and where it comes from, the mean and
attention-pooled probabilities of its frames, its segments and its split."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Iterable, Iterator, Optional

from labeler.datasets.common import json_cell, num
from labeler.store import Store, frame_groups, track_records

TRACK_COLUMNS = ["video", "track", "track_id", "shot", "start_s", "end_s", "frames", "label", "source", "human_frames",
                 "split", "probs", "attention_probs", "segments"]


def grouped(records: Iterable, groups: dict[int, int]) -> Iterator:
    """The records of pass 1 with each video frame's image id replaced by its video's: the split
    plan then keeps a whole video (every track, every frame) in one split."""
    for rec in records:
        vid = groups.get(rec.image_id)
        yield rec if vid is None else dataclasses.replace(rec, image_id=vid)


def spread(splits: dict[int, str], groups: dict[int, int]) -> None:
    """Give every frame the split its video got (pass 2 looks faces up by their frame's image id)."""
    for frame, vid in groups.items():
        if vid in splits:
            splits[frame] = splits[vid]


def video_groups(store: Store) -> dict[int, int]:
    return frame_groups(store)


def tracks_path(folder: Path, data_file: Optional[Path]) -> Path:
    """Where the per-track CSV goes: ``tracks.csv`` in the export folder, or ``<data file>.tracks.csv``."""
    return data_file.with_name(data_file.name + ".tracks.csv") if data_file is not None else folder / "tracks.csv"


def write_tracks_csv(store: Store, folder: Path, data_file: Optional[Path], splits: dict[int, str]) -> Optional[Path]:
    """The per-track CSV beside the export; None (nothing written) when the database has no track."""
    recs = track_records(store)
    if not recs:
        return None
    path = tracks_path(folder, data_file)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=TRACK_COLUMNS)
        w.writeheader()
        for r in recs:
            w.writerow({"video": r.video, "track": r.track_no, "track_id": r.track_id, "shot": r.shot,
                        "start_s": num(r.start_ms / 1000.0), "end_s": num(r.end_ms / 1000.0), "frames": r.n_faces,
                        "label": r.label or "", "source": r.source, "human_frames": r.n_human,
                        "split": splits.get(r.video_image_id, ""), "probs": json_cell(r.mean),
                        "attention_probs": json_cell(r.attention), "segments": json_cell(list(r.segments))})
    return path
