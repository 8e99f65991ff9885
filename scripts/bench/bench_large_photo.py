"""Peak memory and faces found when `labeler autolabel` meets a large phone/camera photo.

    .venv/bin/python scripts/bench/bench_large_photo.py [--sizes 8000x6000,16320x12240] [--work /tmp/bench_large]

For each size, writes one JPEG (quality 90) of that size: the sample_data cup photo tiled over
the canvas, with the sample astronaut portrait upscaled to a third of the short side (a real face)
pasted in, then runs `labeler autolabel` on a folder holding only it, in a fresh process under
`/usr/bin/time -v` (one worker), and reports its peak RSS, wall time, the stored image's size and
status, and the faces stored with their boxes (full-size pixels) beside where the face was pasted.
Target (issue 35): every photo stored, its face found, peak RSS < 1 GB.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT_MB = 1024


def face_photo(width: int, height: int, path: Path, quality: int = 90) -> tuple[int, int, int, int]:
    """Write the test photo; returns the box (x1, y1, x2, y2) the portrait was pasted into."""
    from PIL import Image

    tile = Image.open(ROOT / "sample_data" / "coffee_cup.jpg").convert("RGB")
    canvas = Image.new("RGB", (width, height))
    for y in range(0, height, tile.height):
        for x in range(0, width, tile.width):
            canvas.paste(tile, (x, y))
    side = min(width, height) // 3
    face = Image.open(ROOT / "sample_data" / "smiling_astronaut.png").convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    x0, y0 = (width - side) // 2, (height - side) // 2
    canvas.paste(face, (x0, y0))
    del face
    canvas.save(path, "JPEG", quality=quality)
    return x0, y0, x0 + side, y0 + side


def run(size: str, work: Path) -> dict:
    from labeler.store import Face, Image, Store

    w, h = (int(v) for v in size.lower().split("x"))
    folder = work / size
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    photo = folder / "photo" / f"IMG_{size}.jpg"
    photo.parent.mkdir()
    pasted = face_photo(w, h, photo)
    db = folder / "bench.db"
    cmd = ["/usr/bin/time", "-v", str(ROOT / ".venv" / "bin" / "labeler"), "autolabel", str(photo.parent), "--db",
           f"sqlite:///{db}", "--workers", "1", "-q"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"autolabel failed ({r.returncode}): {r.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
    store = Store(f"sqlite:///{db}")
    with store.session() as s:
        img = s.query(Image).one()
        faces = [(round(f.x1), round(f.y1), round(f.x2), round(f.y2)) for f in s.query(Face).order_by(Face.idx)]
        out = {"size": size, "megapixels": round(w * h / 1e6, 1), "file_mb": round(photo.stat().st_size / 2**20, 1),
               "status": img.status, "stored_size": f"{img.width}x{img.height}", "error": img.error,
               "faces": faces, "pasted": pasted, "peak_rss_mb": round(rss), "wall_s": round(wall, 1)}
    store.engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8000x6000,16320x12240")
    ap.add_argument("--work", default="/tmp/bench_large")
    args = ap.parse_args()
    ok = True
    for size in args.sizes.split(","):
        r = run(size, Path(args.work))
        found = any(abs((f[0] + f[2]) / 2 - (r["pasted"][0] + r["pasted"][2]) / 2) < (r["pasted"][2] - r["pasted"][0]) / 4
                    for f in r["faces"])
        ok &= found and r["status"] == "ingested" and r["peak_rss_mb"] < LIMIT_MB
        print(f"{r['size']} ({r['megapixels']} MP, {r['file_mb']} MB JPEG): {r['status']} as {r['stored_size']}, "
              f"{len(r['faces'])} face(s) {r['faces']} (portrait pasted at {r['pasted']}, found: {found}), "
              f"peak RSS {r['peak_rss_mb']} MB, {r['wall_s']} s")
    print("OK" if ok else f"NOT MET: a photo broken, its face not found, or peak RSS >= {LIMIT_MB} MB")


if __name__ == "__main__":
    main()
