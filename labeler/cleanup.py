"""`labeler clean`: the cleaning measurements for images stored before they existed (the backfill).

New images are measured by `labeler autolabel` itself (labeler.work.process_image), text on them
only where a face of theirs is about to be auto-accepted (config ``[clean] text``; :func:`check_text`).
The backfill measures every detected image whose ``phash`` is still NULL (with ``--text``, every
image text was not looked for on too): it reads the image again from the first of its paths that
still reads, runs :func:`labeler.faces.cleaning.measure` on it with the stored face boxes, stores
the values, then recomputes the near-duplicate groups and re-routes (a face that now carries the
text flag leaves auto-accept; decisions are appended, never changed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from labeler import store as db
from labeler import work
from labeler.faces.cleaning import measure, text_detector
from labeler.inflight import Runner, Unordered
from labeler.ingest.imageio import Decoded
from labeler.ingest.paths import fs_path, shown
from labeler.ingest.source import is_uri, read_file
from labeler.routing import RoutingPolicy
from labeler.store import Store
from labeler.util import progress as _progress


@dataclass
class CleanReport:
    measured: int = 0
    text_faces: int = 0
    unreadable: list[str] = field(default_factory=list)  # images none of whose paths still read
    regrouped: int = 0
    groups: int = 0  # near-duplicate groups with two or more images
    in_groups: int = 0
    rerouted: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"images measured:      {self.measured}" + (f" ({self.seconds / self.measured:.2f} s each)" if self.measured else ""),
               f"faces with text:      {self.text_faces} (newly measured)",
               f"near-duplicate groups: {self.groups} ({self.in_groups} images)"]
        if self.unreadable:
            out.append(f"not measured, no path reads any more: {len(self.unreadable)} (e.g. {shown(self.unreadable[0])})")
        if self.rerouted:
            out.append(f"re-routed: {self.rerouted} faces")
        return out

    def check_lines(self) -> list[str]:
        """What :func:`check_text` did, for `labeler route` (nothing when it had nothing to do)."""
        out = [f"text looked for before auto-accept: {self.measured} images, found on or beside {self.text_faces} faces"]
        if self.unreadable:
            out.append(f"not looked for, no path reads any more: {len(self.unreadable)} images (e.g. {shown(self.unreadable[0])}); "
                       "their faces stay in review")
        return out if self.measured or self.unreadable else []


def _read(paths) -> Optional[Decoded]:
    for p in paths:
        got = read_file(p if is_uri(p) else fs_path(p))  # a URI, or a stored local path (non-UTF-8 names escaped)
        if got.decoded is not None:
            return got.decoded
    return None


def _measure(store: Store, jobs, rep: CleanReport, threads: int, progress: Optional[bool], what: str) -> None:
    """Measure ``jobs`` (everything, text included) and store the values, each image committed on its own."""
    t0 = time.perf_counter()
    det = text_detector(threads) if jobs else None
    for job in _progress(jobs, progress, what):
        img = _read(job.paths)
        if img is None:
            rep.unreadable.append(job.paths[0] if job.paths else f"image {job.image_id}")
            continue
        c = measure(img.rgb, [tuple(v / img.scale for v in b) for _, b in job.faces], detector=det)  # boxes: full size
        rep.text_faces += db.save_clean(store, job.image_id, c, [fid for fid, _ in job.faces])
        rep.measured += 1
    rep.seconds += time.perf_counter() - t0


def _measure_on(runner: Runner, store: Store, jobs, rep: CleanReport) -> None:
    """:func:`_measure` by the workers of a partitioned run: they read and measure the images."""
    t0 = time.perf_counter()
    faces = {j.image_id: j for j in jobs}
    pool = Unordered(runner, work.measure_stored, window=2 * runner.workers)
    done = [r for j in jobs for r in pool.put(work.MeasureJob(j.image_id, j.paths, tuple(b for _, b in j.faces)))]
    for iid, c in done + pool.drain():
        job = faces[iid]
        if c is None:
            rep.unreadable.append(job.paths[0] if job.paths else f"image {iid}")
            continue
        rep.text_faces += db.save_clean(store, iid, c, [fid for fid, _ in job.faces])
        rep.measured += 1
    rep.seconds += time.perf_counter() - t0


def check_text(store: Store, policy: RoutingPolicy = RoutingPolicy(), threads: int = 2,
               progress: Optional[bool] = None, runner: Optional[Runner] = None) -> CleanReport:
    """Look for text on the images whose faces routing would auto-accept but for their text check
    (``labeler.store.awaiting_text``: autolabel looks for text only there, by default), so that the
    re-route after it auto-accepts those without text and sends those with text to review. Does
    not re-route: its callers do (`labeler route`, the end of `labeler autolabel`, `labeler clean`).
    An image none of whose paths still reads stays unmeasured, and its faces stay in review. With
    ``runner`` (a partitioned autolabel run's) the workers read and measure the images."""
    rep = CleanReport()
    # a face found with text leaves the candidates, which can move the conformal threshold and bring
    # other faces up to it: look again until a pass finds nothing new to look at (bounded)
    for _ in range(5):
        before = rep.measured
        jobs = db.clean_jobs(store, db.awaiting_text(store, policy))
        if runner is None:
            _measure(store, jobs, rep, threads, progress, "text check")
        else:
            _measure_on(runner, store, jobs, rep)
        if rep.measured == before or policy.method == "bucket":
            break
    return rep


def reroute_checked(store: Store, policy: RoutingPolicy = RoutingPolicy(), threads: int = 2,
                    progress: Optional[bool] = False, runner: Optional[Runner] = None) -> tuple[CleanReport, int]:
    """:func:`check_text`, then re-route every face (``labeler.store.reroute``): the faces routed
    again, and what the text check did."""
    rep = check_text(store, policy, threads, progress, runner)
    return rep, db.reroute(store, policy)


def backfill(store: Store, policy: RoutingPolicy = RoutingPolicy(), threads: int = 2,
             progress: Optional[bool] = None, text: bool = False) -> CleanReport:
    """Measure every stored image not measured yet (with ``text``: and every image text was not
    looked for on yet), then the text of those a re-route would auto-accept; regroup; re-route.
    Resumable: each image is committed on its own, and a rerun only takes those still NULL."""
    rep = CleanReport()
    _measure(store, db.images_to_clean(store, text=text), rep, threads, progress, "clean")
    more = check_text(store, policy, threads, progress)
    rep.measured += more.measured
    rep.text_faces += more.text_faces
    rep.unreadable += more.unreadable
    rep.seconds += more.seconds
    rep.regrouped = db.regroup(store)
    g = db.dup_groups(store)
    rep.groups, rep.in_groups = len(g.groups), sum(len(m) for m in g.groups.values())
    if rep.measured:
        rep.rerouted = db.reroute(store, policy)
    return rep
