"""`autolabel` for one video: sample frames (labeler.ingest.video), detect, crop and propose on each
sampled frame as on a photo (labeler.work.process_image), link the faces into tracks with the FER
model's embedding (labeler.faces.tracks), aggregate each track's probabilities (statistics and
attention) and find its segments, then store it all in one transaction (labeler.store.save_video).

A killed run leaves nothing of a video half-stored: the next run processes it again from the
start; a video stored to the end is never redone. Faces are held in memory (crops, ~3 KB each)
until the video is stored; frames are not (one decoded frame at a time).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from labeler import store as db
from labeler import work
from labeler.config import Config
from labeler.faces import tracks as T
from labeler.ingest.imageio import decode_crop
from labeler.ingest.video import SampleConfig, VideoSampler
from labeler.store.video import NewFrame, NewTrack, NewVideo, TrackMember
from labeler.types import NewFace, NewProposal

@dataclass(frozen=True)
class FrameMeta:
    """A sampled frame without its pixels (what is kept while its work is done elsewhere)."""

    index: int
    t_ms: float
    shot: int
    why: str
    width: int
    height: int


@dataclass(frozen=True)
class VideoDone:
    """What processing one video gave (for the autolabel report)."""

    image_id: int
    status: str  # ok | truncated | broken
    reason: str
    frames: int
    faces: int
    tracks: int
    decoded: int
    seconds: float
    stored: bool


class VideoLabeler:
    """Processes videos with the autolabeler's detector and FER model, in this process."""

    def __init__(self, store, cfg: Config, detector, model, detector_ident: str):
        self.store, self.cfg, self.detector, self.model, self.detector_ident = store, cfg, detector, model, detector_ident
        self.settings = work.frame_settings(work.WorkSettings(cfg.detect, cfg.crop, "", cfg.model.flip))
        v = cfg.video
        self.sample = SampleConfig(fps=v.fps, cut_threshold=v.cut_threshold)
        self.track_cfg = T.TrackConfig(max_gap_ms=v.max_gap_ms)

    def _frame(self, f: FrameMeta, res: work.ImageWork) -> tuple[NewFrame, list[T.FrameFace]]:
        """One sampled frame's work as stored faces and as the tracker's faces (with the embedding)."""
        labels = list(self.model.labels)
        emb = None
        if res.faces and getattr(self.model, "embedding_name", None):
            emb = np.asarray(self.model.embed([decode_crop(fw.crop) for fw in res.faces]))
        faces, ffs = [], []
        det = self.cfg.detect
        for k, fw in enumerate(res.faces):
            pr = np.asarray(fw.probs, dtype=np.float64)
            top = labels[int(np.argmax(pr))]
            prop = NewProposal("model", self.model.ident, top, float(pr.max()), {lab: round(float(x), 6) for lab, x in zip(labels, pr)}, "")
            faces.append(NewFace(box=fw.det.box, score=fw.det.score, landmarks=fw.det.landmarks, whole_image=False,
                                 quality=dict(fw.quality), flags=fw.flags, crop=fw.crop, proposals=(prop,), decision=None))
            q = T.quality_weight(fw.quality, det.small_px, det.blur_var, det.max_yaw_deg)
            ffs.append(T.FrameFace(f.index, f.t_ms, tuple(float(x) for x in fw.det.box), float(fw.det.score), pr,
                                   None if emb is None else emb[k], q))
        return NewFrame(f.index, float(f.t_ms), f.shot, f.why, f.width, f.height, tuple(faces)), ffs

    def process(self, image_id: int, path: str | Path, runner: Optional[work.Runner] = None) -> VideoDone:
        """Sample, detect, track and store one video. With ``runner`` (autolabel's worker processes or
        Ray tasks) the sampled frames are detected and proposed there, in order, a few at a time;
        decoding, tracking and storing stay here."""
        t0 = time.perf_counter()
        sampler = VideoSampler(path, self.sample)
        tracker = T.Tracker(self.track_cfg)
        frames: list[NewFrame] = []
        where: dict[int, tuple[int, int]] = {}  # id(FrameFace) -> (frame position, face position)
        keep: list[T.FrameFace] = []  # holds the FrameFaces alive (their ids are keys above)
        ended: list[T.Track] = []

        def take(meta: FrameMeta, res: work.ImageWork) -> None:
            nf, ffs = self._frame(meta, res)
            for k, ff in enumerate(ffs):
                where[id(ff)] = (len(frames), k)
                keep.append(ff)
            frames.append(nf)
            ended.extend(tracker.update(meta.t_ms, ffs, cut=meta.why == "cut"))

        queue = work.Ordered(runner, work.label_frame, window=2 * runner.workers) if runner is not None else None
        waiting: deque[FrameMeta] = deque()  # frames sent to the runner, oldest first (no pixels)
        for f in sampler:
            h, w = f.rgb.shape[:2]
            meta = FrameMeta(f.index, f.t_ms, f.shot, f.why, w, h)
            job = work.ImageJob(f.index, f.rgb)
            if queue is None:
                take(meta, work.process_image(job, self.settings, self.detector, self.model))
                continue
            waiting.append(meta)
            for res in queue.put(job, f.rgb.nbytes):
                take(waiting.popleft(), res)
        for res in queue.drain() if queue is not None else ():
            take(waiting.popleft(), res)
        ended += tracker.finish()
        out = sampler.outcome
        if out.status == "broken" or out.info is None:
            db.mark_video_broken(self.store, image_id, out.reason)
            return VideoDone(image_id, "broken", out.reason, 0, 0, 0, out.decoded, time.perf_counter() - t0, False)
        labels = tuple(self.model.labels)
        tracks = []
        for no, tr in enumerate(sorted(ended, key=lambda t: t.track_id), start=1):
            stats, att = T.track_aggregates(tr, labels)
            segs = T.segments(tr.faces, labels)
            seg_of = [k for k, sg in enumerate(segs) for _ in range(sg.first, sg.last + 1)]
            members = tuple(TrackMember(*where[id(ff)], seg_of[i] if i < len(seg_of) else 0,
                                        att.weights[i] if i < len(att.weights) else 0.0)
                            for i, ff in enumerate(tr.faces))
            tracks.append(NewTrack(no, tr.shot, stats, att, tuple(segs), members, tr.faces[0].frame_index,
                                   tr.faces[-1].frame_index, tr.start_ms, tr.end_ms))
        info = out.info
        v = NewVideo(image_id, info.container, info.codec, info.width, info.height, info.fps, info.frame_count,
                     info.duration_ms, self.sample.fps, out.status, out.reason, out.decoded, out.cuts, self.model.ident,
                     tuple(frames), tuple(tracks))
        stored = db.save_video(self.store, v, self.detector_ident)
        return VideoDone(image_id, out.status, out.reason, len(frames), sum(len(fr.faces) for fr in frames), len(tracks),
                         out.decoded, time.perf_counter() - t0, stored)



def report_lines(done: list[VideoDone]) -> list[str]:
    """The autolabel report's lines about videos."""
    ok = [d for d in done if d.stored]
    out = [f"videos processed:  {len(ok)} ({sum(d.frames for d in ok)} frames sampled of {sum(d.decoded for d in ok)} decoded, "
           f"{sum(d.faces for d in ok)} faces, {sum(d.tracks for d in ok)} tracks, {sum(d.seconds for d in ok):.1f} s)"]
    for d in done:
        if d.status != "ok":
            out.append(f"  video {d.status}: image {d.image_id}: {d.reason}")
    return out


def status_lines(store, counts: dict) -> list[str]:
    """`labeler status` lines about videos (none when the database holds no video)."""
    v = db.video_counts(store)
    if not (v["videos"] or v["videos_waiting"]):
        return []
    rows = (("videos", "videos processed"), ("videos_truncated", "  of which truncated"),
            ("videos_waiting", "videos not processed yet"), ("video_frames", "sampled video frames"),
            ("tracks", "face tracks (labeling units)"), ("tracks_labeled", "  of which labeled (every face)"),
            ("route_track", "video faces (labeled by track)"))
    return [f"{text:32s} {v.get(key, counts.get(key, 0)):7d}" for key, text in rows]
