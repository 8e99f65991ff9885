"""A partitioned run: the driver lists, the workers read.

`autolabel --ray`, a URI root (``s3://...``, through fsspec) or ``--part K/N`` make the driver
list the files (a local walk and one stat per file, or the file system's listing of a URI) and
send them to the workers in partitions of ``partition`` paths (:class:`labeler.work.FilesJob`):
each worker reads, hashes and decodes its own files and detects, crops and proposes
(:func:`labeler.work.label_files`); back come compact results (facts, boxes, JPEG crops,
probabilities), never pixels. The driver records each partition's files in one transaction
(:func:`labeler.store.record_paths`) and hands the images to the caller, which stores their faces in
batches (``save_detections``).

Dedupe by content stays exact: two paths with one content may both be read (by two workers, or
by two drivers), but the database settles it: the image row is an upsert on its sha256, the
first recorder creates it and only its creator (or a run that finds it undetected) hands it on,
and ``save_detections`` claims an image once. Several drivers may run at once, one per part of
one folder (``--part 1/2`` and ``--part 2/2``; files are split by a hash of their relative path,
so every file has exactly one part), against one PostgreSQL database.

The rules of what a file is and how it is counted are ingest's (labeler.ingest.walk): broken
files, unreadable ones, non-regular files and videos end as in a sequential run. Videos are
hashed and sampled by the driver (from a local path; a video under a URI is listed as not stored).
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from labeler import store as db
from labeler.errors import LabelerError
from labeler.ingest.rules import RuleSet
from labeler.ingest.source import FileRead, is_uri, list_uri
from labeler.ingest.walk import (IngestReport, OnVideo, count_stored, db_path, image_facts, iter_files, path_record, read_key,
                                 record_read, rules_function, triage)
from labeler.store import Store
from labeler.util import progress as _progress
from labeler.work import FilesJob, FilesWork, FileWork, ImageWork, Unordered

#: paths per worker task: enough to make a task's own cost (a few hundred bytes, a millisecond)
#: small beside its images' (a tenth of a second and up each), few enough to keep workers even
PARTITION = 8


@dataclass(frozen=True)
class Part:
    """Part ``index`` (0-based) of ``count``: the files whose relative path hashes to it."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> "Part":
        """``K/N`` (1 <= K <= N), as `--part` takes it."""
        try:
            k, n = (int(x) for x in text.split("/"))
        except ValueError:
            k = n = 0
        if not 1 <= k <= n:
            raise LabelerError(f"--part: expected K/N with 1 <= K <= N (this driver's part of N), found {text!r}; "
                               "e.g. --part 1/2 on one driver and --part 2/2 on another")
        return cls(k - 1, n)

    def takes(self, rel: str) -> bool:
        return self.count == 1 or zlib.crc32(rel.encode("utf-8", "surrogateescape")) % self.count == self.index

    def takes_id(self, row_id: int) -> bool:
        """For work on stored rows (re-proposing faces): by id."""
        return row_id % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"


@dataclass
class FanoutStats:
    """What the driver sent: files, tasks, the bytes of their paths (the rest of a task's arguments
    is counted by the runner, when it counts)."""

    files: int = 0
    tasks: int = 0
    path_bytes: int = 0
    seconds_waiting: float = 0.0  # blocked on the workers (submitting, or waiting for a result)
    seconds_recording: float = 0.0  # recording the files (record_paths), faces not included


@dataclass
class _Entry:
    read: str  # what the worker opens: a local path or a URI
    path: Optional[Path]  # the walked local path (None under a URI)
    apath: str
    rel: str
    mtime: float
    size: int
    st: Optional[os.stat_result] = None  # a local file's stat
    known: Optional[int] = None  # an image already stored whose detection is pending (resume)


@dataclass
class Fanout:
    store: Store
    root: str
    rules: Optional[RuleSet]
    pool: Unordered
    on_work: Callable[[int, ImageWork], None]
    include_folders: bool = False
    part: Part = Part()
    partition: int = PARTITION
    needs_decode: Optional[Callable[[int], bool]] = None
    on_video: Optional[OnVideo] = None
    needs_video: Optional[Callable[[int], bool]] = None
    report: IngestReport = field(default_factory=IngestReport)
    stats: FanoutStats = field(default_factory=FanoutStats)

    def run(self, progress: Optional[bool] = None) -> IngestReport:
        """List, send in partitions, record and hand on what comes back; returns ingest's report."""
        self.handed: set[int] = set()
        self.queued: set[int] = set()
        self.jobs: dict[int, list[_Entry]] = {}
        self.known = db.known_paths(self.store)
        batch: list[_Entry] = []
        for e in _progress(self._listing(), progress, "list"):
            if e is None:
                continue
            batch.append(e)
            if len(batch) >= self.partition:
                self._send(batch)
                batch = []
        if batch:
            self._send(batch)
        t = time.perf_counter()
        done = self.pool.drain()
        self.stats.seconds_waiting += time.perf_counter() - t
        for res in done:
            self._receive(res)
        return self.report

    # ---- listing
    def _listing(self):
        if is_uri(self.root):
            for it in list_uri(self.root):
                if self.part.takes(it.rel):
                    self.report.seen += 1
                    yield self._entry(_Entry(it.uri, None, it.uri, it.rel, it.mtime, it.size))
            return
        root = Path(self.root)
        for path in iter_files(root, self.report):
            if not self.part.takes(os.path.relpath(path, root) if root.is_dir() else path.name):
                continue
            got = triage(self.store, self.report, root, path, self.rules, self.include_folders)
            if got is not None:
                apath, rel, st = got
                yield self._entry(_Entry(str(path), path, apath, rel, st.st_mtime, st.st_size, st))

    def _entry(self, e: _Entry) -> Optional[_Entry]:
        """``e`` to send, or None: an unchanged path needs nothing, or only its video sampled again."""
        prev = self.known.get(db_path(e.apath))
        if not (prev and prev[0] == e.mtime and prev[1] == e.size):
            return e
        self.report.unchanged += 1
        iid = prev[2]
        if self.needs_video and self.needs_video(iid):  # a video a killed run did not finish
            if self.on_video and e.path is not None and iid not in self.handed:
                self.handed.add(iid)
                self.on_video(iid, e.path)
            return None
        if self.needs_decode and iid not in self.queued and self.needs_decode(iid):
            self.queued.add(iid)
            e.known = iid
            return e
        return None

    # ---- sending and receiving
    def _send(self, batch: list[_Entry]) -> None:
        key = self.stats.tasks
        self.stats.tasks += 1
        self.stats.files += len(batch)
        self.stats.path_bytes += sum(len(e.read.encode("utf-8", "surrogateescape")) for e in batch)
        self.jobs[key] = batch
        t = time.perf_counter()
        done = self.pool.put(FilesJob(key, tuple(e.read for e in batch)))
        self.stats.seconds_waiting += time.perf_counter() - t
        for res in done:
            self._receive(res)

    def _receive(self, res: FilesWork) -> None:
        entries = self.jobs.pop(res.key)
        todo = []
        for e, fw in zip(entries, res.files):
            if e.known is not None:  # resumed: recorded before, its detection is pending
                if fw.work is not None and e.known not in self.handed:
                    self.handed.add(e.known)
                    self.on_work(e.known, fw.work)
            elif fw.kind in ("video", "other"):
                self._video_or_other(e, fw)
            else:
                sha, size = read_key(FileRead(fw.kind, fw.sha, fw.size), e.apath)
                facts = image_facts(fw.width, fw.height, fw.format, fw.kind == "image", fw.reason)
                todo.append((fw, path_record(sha, size, facts, e.apath, self.root, e.rel, e.mtime, e.size)))
        if not todo:
            return
        t = time.perf_counter()
        recs = db.record_paths(self.store, [r for _, r in todo], rules_function(self.rules, self.include_folders))
        self.stats.seconds_recording += time.perf_counter() - t
        for (fw, _), rec in zip(todo, recs):
            count_stored(self.report, rec, fw.kind != "image", fw.reason)
            if fw.work is not None and rec.image_id not in self.handed and (
                    rec.created or rec.fixed or (self.needs_decode and self.needs_decode(rec.image_id))):
                self.handed.add(rec.image_id)
                self.on_work(rec.image_id, fw.work)

    def _video_or_other(self, e: _Entry, fw: FileWork) -> None:
        if e.path is None and fw.kind == "video":
            self.report.skip(e.apath, "video under a URI (not sampled: videos are read from a local path)")
            return
        record_read(self.store, self.report, FileRead(fw.kind), e.path, e.apath, self.root, e.rel, e.st, self.rules,
                    self.include_folders, self.on_video, self.needs_video, self.handed)
