"""Benchmark `labeler autolabel` as a user runs it (whole process, fresh database), side by side
with the facenet-pytorch peer pipeline, with peak memory.

    python scripts/bench/bench_autolabel.py FOLDER [FOLDER ...] [--limit 300] [--workers 1,2] [--ray]
        [--no-clean] [--every-image-text] [--rounds 3] [--reference-python REFVENV/bin/python] [--make-reference REFVENV] [--stages]

The images of the folders (recursively, sorted, the first --limit) are copied flat into a temporary
folder so every contender reads the same files. Each round runs, alternating: `labeler autolabel
--workers N` for each N, `labeler autolabel --ray local` (with --ray; a Ray instance with as many
CPUs as the largest N, started and stopped by the run, so its start-up counts), and the peer
(scripts/bench/peer_autolabel.py: facenet-pytorch 2.6.0 MTCNN + the same ONNX FER model per face) in the
reference interpreter. Per contender: median wall time, images/s, CPU seconds of all its processes
(user + system, from getrusage of the children: steadier than wall time when others load the
machine), the load average before and after each run, peak RSS of the largest process (getrusage of
the children, as `/usr/bin/time -v` reports) and of all its processes together (sampled from /proc
every 0.2 s). Then the parity report: the faces our run (max_side cap and all)
kept against those the peer kept, matched per image by IoU, and whether their FER labels agree.
With --reference-python it also runs scripts/eval/mtcnn_parity.py (detector against detector, full
resolution, same arrays). --stages adds decode-only and detect-only images/s in this process.

--make-reference DIR builds the reference venv: a venv whose site-packages see this venv's
(torch, onnxruntime, numpy, Pillow) plus facenet-pytorch 2.6.0 installed without dependencies.
torchvision is not installable against the CPU build of torch here (PyPI's wheel needs the CUDA
libraries), and facenet-pytorch uses only its ``batched_nms``: the venv gets a one-file stand-in
that calls labeler.faces.mtcnn.nms_torchvision (torchvision's algorithm in numpy, exact; so both
sides pay the same NMS cost, and the peer gains from its speed-ups too). Say so next to any figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TV_SHIM = '''"""Stand-in for torchvision.ops.boxes.batched_nms (see scripts/bench/bench_autolabel.py)."""
import numpy as np
import torch

from labeler.faces.mtcnn import nms_torchvision


def nms(boxes, scores, thr):
    b = boxes.detach().cpu().numpy().astype(np.float32)
    return torch.as_tensor(nms_torchvision(b, scores.detach().cpu().numpy(), thr))


def batched_nms(boxes, scores, idxs, thr):
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    off = idxs.to(boxes) * (boxes.max() + 1)
    return nms(boxes + off[:, None], scores, thr)
'''


def make_reference(venv: Path) -> Path:
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    here = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "labeler_venv.pth").write_text(here + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "facenet-pytorch==2.6.0"], check=True)
    ops = Path(site, "torchvision", "ops")
    ops.mkdir(parents=True, exist_ok=True)
    Path(site, "torchvision", "__init__.py").write_text('"""Stand-in: see scripts/bench/bench_autolabel.py."""\n')
    Path(site, "torchvision", "transforms").mkdir(exist_ok=True)
    Path(site, "torchvision", "transforms", "__init__.py").write_text("from . import functional\n")
    Path(site, "torchvision", "transforms", "functional.py").write_text('"""unused by MTCNN.detect"""\n')
    Path(ops, "__init__.py").write_text("from .boxes import batched_nms, nms\n")
    Path(ops, "boxes.py").write_text(TV_SHIM)
    subprocess.run([str(py), "-c", "from facenet_pytorch import MTCNN; MTCNN(keep_all=True)"], check=True)
    print(f"reference venv ready: {py}")
    return py


def _tree_rss(pid: int) -> int:
    """RSS (bytes) of ``pid`` and all its descendants, from /proc."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


PROBE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); u = resource.getrusage(resource.RUSAGE_CHILDREN); "
         "sys.stderr.write('MAXRSS %d CPU %.3f\\n' % (u.ru_maxrss, u.ru_utime + u.ru_stime)); sys.exit(r.returncode)")


def timed(cmd: list[str], env=None) -> tuple[float, int, int, str, float]:
    """(wall s, peak RSS of the largest process, peak RSS of all processes, output, CPU s of all its
    processes (user + system): on a machine others load, the steadier figure)."""
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", PROBE, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak_tree = 0
    while p.poll() is None:
        peak_tree = max(peak_tree, _tree_rss(p.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - t
    out, err = p.communicate()
    if p.returncode:
        raise SystemExit(f"{cmd} failed ({p.returncode}):\n{out}\n{err[-3000:]}")
    probe = next(l.split() for l in err.splitlines() if l.startswith("MAXRSS"))
    return wall, int(probe[1]) * 1024, peak_tree, out, float(probe[3])


def parity(db: Path, peer_jsonl: Path) -> None:
    from labeler.faces.tracks import greedy_match
    from labeler.store import Store, iter_face_records

    ours: dict[str, list] = {}
    whole: set[str] = set()
    for r in iter_face_records(Store(f"sqlite:///{db}")):
        faces = ours.setdefault(Path(r.relpath).name, [])
        if r.face_id is not None and not r.whole_image:
            faces.append(((r.x1, r.y1, r.x2, r.y2), r.model_label))
        elif r.whole_image:
            whole.add(Path(r.relpath).name)
    peer = {}
    for line in peer_jsonl.read_text().splitlines():
        j = json.loads(line)
        peer[j["file"]] = [(tuple(f["box"]), f["label"]) for f in j["faces"]]
    n_o = n_p = n_m = same = ge90 = 0
    ious, diffs = [], []
    for name in sorted(set(ours) | set(peer)):
        a, b = ours.get(name, []), peer.get(name, [])
        n_o += len(a)
        n_p += len(b)
        pairs, only_a, only_b = greedy_match([x[0] for x in a], [y[0] for y in b], min_iou=0.5)
        for i, j, v in pairs:
            n_m += 1
            ious.append(v)
            ge90 += v >= 0.9
            same += a[i][1] == b[j][1]
        if only_a or only_b:
            why = " (ours: one whole-image face, a face crop)" if name in whole else ""
            diffs.append(f"  {name[:70]}: ours {len(a)}, peer {len(b)}, matched {len(pairs)}{why}")
    print(f"\nparity (faces kept, whole-image faces aside): ours {n_o}, peer {n_p}, matched (IoU >= 0.5) {n_m}, "
          f"of which IoU >= 0.9: {ge90}; median IoU {statistics.median(ious) if ious else float('nan'):.3f}; "
          f"same FER label on matched faces: {same}/{n_m}")
    print(f"images where the faces differ: {len(diffs)}")
    print("\n".join(diffs[:30]))


def stages(files: list[Path]) -> None:
    import hashlib

    from labeler.faces.detect import detect_capped, get_detector
    from labeler.ingest.imageio import DecodeError, decode

    t = time.perf_counter()
    decoded = []
    for p in files:
        data = p.read_bytes()
        hashlib.sha256(data).hexdigest()
        try:
            decoded.append(decode(data).rgb)
        except DecodeError:
            pass
    t_dec = time.perf_counter() - t
    print(f"decode only:  {len(files) / t_dec:7.1f} images/s  ({t_dec:.2f} s)")
    det = get_detector("mtcnn")
    t = time.perf_counter()
    nf = sum(len(detect_capped(det, rgb)) for rgb in decoded)
    t_det = time.perf_counter() - t
    print(f"detect only (capped, 1 process): {len(decoded) / t_det:7.1f} images/s  ({t_det:.2f} s, {nf} raw detections)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="*")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--workers", default="1,2", help="comma-separated --workers values to time")
    ap.add_argument("--ray", action="store_true", help="also time --ray local")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-clean", action="store_true",
                    help="also time `--no-clean` (no text/hash/non-photo measurements: the work the peer does)")
    ap.add_argument("--every-image-text", action="store_true",
                    help='also time `[clean] text = "every_image"` (text looked for on every image, not only before auto-accept)')
    ap.add_argument("--threads", type=int, default=2, help="the peer's torch/onnxruntime threads")
    ap.add_argument("--reference-python", default=None)
    ap.add_argument("--make-reference", default=None, metavar="DIR")
    ap.add_argument("--stages", action="store_true")
    args = ap.parse_args()
    ref = args.reference_python
    if args.make_reference:
        ref = str(make_reference(Path(args.make_reference)))
    if not args.folders:
        return
    from labeler.ingest.walk import iter_files

    files = [p for f in args.folders for p in iter_files(Path(f))]
    if args.limit:
        files = files[: args.limit]
    tmp = Path(tempfile.mkdtemp(prefix="bench_autolabel_"))
    src = tmp / "imgs"
    src.mkdir()
    for i, p in enumerate(files):  # a flat copy so that the same files are timed everywhere
        shutil.copyfile(p, src / f"{i:05d}_{p.name}")
    files = sorted(src.iterdir())
    print(f"{len(files)} files from {', '.join(args.folders)}; cpu count {os.cpu_count()}, "
          f"affinity {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")
    if args.stages:
        stages(files)
    labeler = [sys.executable, "-m", "labeler.cli", "autolabel", str(src), "-q"]
    contenders: dict[str, callable] = {}
    for w in [int(x) for x in args.workers.split(",") if x]:
        contenders[f"labeler --workers {w}"] = lambda r, w=w: labeler + ["--db", str(tmp / f"w{w}_{r}.db"), "--workers", str(w)]
    if args.no_clean:
        wmax = max(int(x) for x in args.workers.split(",") if x)
        contenders[f"labeler --workers {wmax} --no-clean"] = lambda r: labeler + [
            "--db", str(tmp / f"nc_{r}.db"), "--workers", str(wmax), "--no-clean"]
    if args.every_image_text:
        wmax = max(int(x) for x in args.workers.split(",") if x)
        (tmp / "every.toml").write_text('[clean]\ntext = "every_image"\n', encoding="utf-8")
        contenders[f"labeler --workers {wmax} text every image"] = lambda r: labeler + [
            "--db", str(tmp / f"ev_{r}.db"), "--workers", str(wmax), "--config", str(tmp / "every.toml")]
    if args.ray:
        wmax = max(int(x) for x in args.workers.split(",") if x)
        contenders["labeler --ray local"] = lambda r: labeler + ["--db", str(tmp / f"ray_{r}.db"), "--ray", "local", "--workers", str(wmax)]
    if ref:
        contenders["peer (facenet-pytorch)"] = lambda r: [ref, str(ROOT / "scripts" / "bench" / "peer_autolabel.py"), str(src),
                                                            str(tmp / f"peer_{r}.jsonl"), "--threads", str(args.threads)]
    res: dict[str, list[tuple[float, int, int, float]]] = {k: [] for k in contenders}
    for r in range(args.rounds):
        for name, cmd in contenders.items():  # alternating: every contender once per round
            load = os.getloadavg()[0]
            wall, rss, tree, _, cpu = timed(cmd(r))
            res[name].append((wall, rss, tree, cpu))
            print(f"round {r + 1} {name:24s} {wall:7.1f} s  {len(files) / wall:5.2f} images/s  CPU {cpu:7.1f} s  peak RSS "
                  f"{rss / 2**20:6.0f} MB (all processes {tree / 2**20:6.0f} MB)  load {load:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    print(f"\n{'median of ' + str(args.rounds):30s}{'s':>8s}{'images/s':>10s}{'CPU s':>8s}{'max RSS MB':>12s}{'all procs MB':>14s}")
    med, cpu_med = {}, {}
    for name, rows in res.items():
        med[name] = statistics.median(x[0] for x in rows)
        cpu_med[name] = statistics.median(x[3] for x in rows)
        print(f"{name:30s}{med[name]:8.1f}{len(files) / med[name]:10.2f}{cpu_med[name]:8.1f}{max(x[1] for x in rows) / 2**20:12.0f}"
              f"{max(x[2] for x in rows) / 2**20:14.0f}")
    if ref:
        peer = "peer (facenet-pytorch)"
        for name in med:
            if name.startswith("labeler"):
                print(f"{name} vs peer: {med[peer] / med[name]:.2f}x wall, {cpu_med[peer] / cpu_med[name]:.2f}x CPU")
        w1 = next(k for k in contenders if k.startswith("labeler --workers"))
        parity(tmp / f"{w1.split()[-1].join(('w', ''))}_0.db", tmp / "peer_0.jsonl")
        print("\n-- detector against detector (scripts/eval/mtcnn_parity.py, full resolution, no cap):", flush=True)
        subprocess.run([ref, str(ROOT / "scripts" / "eval" / "mtcnn_parity.py"), str(src), "--threads", str(args.threads), "--sample", "60"], check=False)
    print(f"\n(files and databases left in {tmp})")


if __name__ == "__main__":
    main()
