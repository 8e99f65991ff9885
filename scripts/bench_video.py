"""Benchmark video processing: frames of video per second (decode + sample + detect + FER + track).

    python scripts/bench_video.py [VIDEO ...] [--fps 2] [--threads 2] [--long-seconds 60] [--no-model]

Without VIDEO it times sample_data/video/two_shots.mp4 and a longer clip generated into a temporary
folder (the sample clip's frames looped to ``--long-seconds`` at 25 fps, upscaled to 640x360, so
decoding and detection see a more usual size). For each clip it prints the decode+sample-only rate
and the full rate, as video frames per second and as seconds of video per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_long(path: Path, seconds: float, fps: int = 25, size: tuple[int, int] = (640, 360)) -> Path:
    import cv2

    from labeler.ingest.video import sample_video, SampleConfig

    src, _ = sample_video(ROOT / "sample_data" / "video" / "two_shots.mp4", SampleConfig(fps=1000))
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(int(seconds * fps)):
        rgb = src[(i * 10 // fps) % len(src)].rgb  # the 10 fps source, played at 25 fps
        wr.write(cv2.cvtColor(cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR), cv2.COLOR_RGB2BGR))
    wr.release()
    return path


def bench(path: Path, fps: float, threads: int, use_model: bool) -> None:
    from labeler.faces import detect as fd
    from labeler.faces import tracks as T
    from labeler.ingest.video import SampleConfig, VideoSampler

    cfg = SampleConfig(fps=fps)
    t0 = time.perf_counter()
    s = VideoSampler(path, cfg)
    n_sampled = sum(1 for _ in s)
    t_decode = time.perf_counter() - t0
    out = s.outcome
    det = fd.get_detector("mtcnn", threads=threads)
    model = None
    if use_model:
        from labeler.fer.model import load_model

        model = load_model(intra_op_num_threads=threads)
    t0 = time.perf_counter()
    s = VideoSampler(path, cfg)
    tracker, tracks, faces = T.Tracker(), [], 0
    for f in s:
        ff = T.frame_faces(f.rgb, f.index, f.t_ms, det, model)
        faces += len(ff)
        tracks += tracker.update(f.t_ms, ff, cut=f.why == "cut")
    tracks += tracker.finish()
    t_full = time.perf_counter() - t0
    info, video_s = out.info, out.decoded / (out.info.fps or 1)
    print(f"{path.name}: {info.width}x{info.height} {info.codec} {info.fps:g} fps, {out.decoded} frames "
          f"({video_s:.1f} s), {n_sampled} sampled at {fps:g} fps + cuts ({len(out.cuts)}), {faces} faces, {len(tracks)} tracks")
    print(f"  decode+sample only : {out.decoded / t_decode:8.1f} video frames/s  ({video_s / t_decode:6.2f} s of video per s)")
    print(f"  full{' (no FER model)' if not use_model else ''}: {out.decoded / t_full:8.1f} video frames/s  "
          f"({video_s / t_full:6.2f} s of video per s; {n_sampled / t_full:5.1f} sampled frames/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", type=Path)
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long-seconds", type=float, default=60.0)
    ap.add_argument("--no-model", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    sys.path.insert(0, str(ROOT))
    import cv2

    cv2.setNumThreads(args.threads)
    print(f"cpus visible: {len(os.sched_getaffinity(0))}, threads: {args.threads}")
    videos = list(args.videos)
    with tempfile.TemporaryDirectory() as tmp:
        if not videos:
            videos = [ROOT / "sample_data" / "video" / "two_shots.mp4"]
            if args.long_seconds > 0:
                videos.append(make_long(Path(tmp) / f"looped_{args.long_seconds:g}s_640x360.mp4", args.long_seconds))
        for v in videos:
            bench(v, args.fps, args.threads, not args.no_model)


if __name__ == "__main__":
    main()
