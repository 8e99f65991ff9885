"""Benchmark video processing: frames of video per second (decode + sample + detect + FER + track).

    python scripts/bench/bench_video.py [VIDEO ...] [--fps 2] [--threads 2] [--long-seconds 60] [--no-model]
    python scripts/bench/bench_video.py --cli [VIDEO ...] [--fps 2] [--workers 1]

Without VIDEO it times sample_data/video/two_shots.mp4 and a longer clip generated into a temporary
folder (the sample clip's frames looped to ``--long-seconds`` at 25 fps, upscaled to 640x360, so
decoding and detection see a more usual size). For each clip it prints the decode+sample-only rate
and the full rate, as video frames per second and as seconds of video per second.

``--cli`` times the whole command instead, as a user runs it: ``labeler autolabel FOLDER`` in a
fresh process on a fresh database (model loading, ingest, hashing, storing frames, faces and
tracks included), one clip per run, with ``[video] fps`` from ``--fps``; it prints the decoded
video frames per second of wall time and the machine's load (``uptime``) before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
        from labeler.fer.resolver import load_model

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


def bench_cli(path: Path, fps: float, workers: int, tmp: Path) -> None:
    import re
    import shutil
    import subprocess

    from labeler.ingest.video import probe

    d = tmp / f"cli_{path.stem}"
    (d / "in").mkdir(parents=True)
    shutil.copyfile(path, d / "in" / path.name)
    (d / "video.toml").write_text(f"[video]\nfps = {fps}\n")
    cmd = [sys.executable, "-m", "labeler", "autolabel", str(d / "in"), "--db", str(d / "bench.db"), "--config",
           str(d / "video.toml"), "--workers", str(workers), "-q"]
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr[-500:]}")
    m = re.search(r"videos processed:\s+1 \((\d+) frames sampled of (\d+) decoded, (\d+) faces, (\d+) tracks, ([\d.]+) s\)", out.stdout)
    if not m:
        raise SystemExit(f"no video line in the output:\n{out.stdout}")
    sampled, decoded, faces, tracks, video_s = int(m[1]), int(m[2]), int(m[3]), int(m[4]), float(m[5])
    info = probe(path)
    seconds = decoded / (info.fps or 1)
    print(f"{path.name}: {info.width}x{info.height} {info.codec} {info.fps:g} fps, {decoded} frames ({seconds:.1f} s), "
          f"{sampled} sampled at {fps:g} fps + cuts, {faces} faces, {tracks} tracks")
    print(f"  whole command: {wall:6.1f} s wall -> {decoded / wall:7.1f} video frames/s ({seconds / wall:5.2f} s of video per s, "
          f"{sampled / wall:4.1f} sampled frames/s); the video itself {video_s:.1f} s -> {decoded / video_s:7.1f} frames/s")
    print(f"  load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", type=Path)
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long-seconds", type=float, default=60.0)
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--cli", action="store_true", help="time `labeler autolabel` as a whole, in a fresh process")
    ap.add_argument("--workers", type=int, default=1, help="--cli: autolabel --workers (videos run in the main process)")
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
            if args.cli:
                bench_cli(v, args.fps, args.workers, Path(tmp))
            else:
                bench(v, args.fps, args.threads, not args.no_model)


if __name__ == "__main__":
    main()
