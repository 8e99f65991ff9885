"""The data report of a project: its faces as :class:`labeler.reports.datareport.FaceStats`, read
from the store, and the HTML page (`labeler report`, the UI's Overview).

Per face: the accepted label, else the model's proposal; size, blur and yaw from the detector's
quality record; brightness (mean grey) and colour from the stored crop (a crop whose channels differ
by at most 2 grey levels everywhere counts as grayscale); flags: the face's own (quality, ``text``),
``nonphoto`` where its image scores at or above the non-photo threshold, ``near_dup`` where its
image has a near copy; source: the first folder of the image's path under the folder given to ingest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from labeler import store as db
from labeler.faces.nonphoto import THRESHOLD as NONPHOTO_THRESHOLD
from labeler.reports.datareport import FaceStats, Summary, build_report, summarise
from labeler.store import Store


def _crop_facts(crop: Optional[bytes]) -> tuple[float, bool]:
    """(mean grey, grayscale) of a stored crop; (nan, False) without one."""
    if not crop:
        return float("nan"), False
    img = cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return float("nan"), False
    spread = img.max(axis=2).astype(np.int16) - img.min(axis=2).astype(np.int16)
    return float(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).mean()), bool(spread.max() <= 2)


def face_stats(store: Store, chunk: int = 500) -> Iterator[FaceStats]:
    """One FaceStats per stored face, streamed."""
    groups = db.dup_groups(store).groups
    batch: list = []

    def flush() -> Iterator[FaceStats]:
        crops = db.face_crops(store, [r.face_id for r in batch])
        for r in batch:
            q = r.quality or {}
            bright, gray = _crop_facts(crops.get(r.face_id))
            flags = list(r.flags)
            if r.nonphoto is not None and r.nonphoto >= NONPHOTO_THRESHOLD:
                flags.append("nonphoto")
            if r.dup_group in groups:
                flags.append("near_dup")
            parts = Path(r.relpath).parts
            yield FaceStats(label=r.label or r.model_label, size=float(q.get("size", float("nan"))),
                            blur=float(q.get("blur", float("nan"))), brightness=bright, grayscale=gray,
                            yaw=q.get("yaw"), flags=tuple(flags), source=parts[0] if len(parts) > 1 else "")
        batch.clear()

    for r in db.iter_face_records(store):
        if r.face_id is None:
            continue
        batch.append(r)
        if len(batch) >= chunk:
            yield from flush()
    yield from flush()


def project_summary(store: Store, name: str = "this project") -> Summary:
    return summarise(face_stats(store), name)


def write_report(store: Store, out: Path | str, title: str = "Data report") -> Summary:
    """Write the HTML data report of the project to ``out``; returns its summary."""
    s = project_summary(store)
    Path(out).write_text(build_report(s, title=title), encoding="utf-8")
    return s
