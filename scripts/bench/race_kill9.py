"""Two `labeler autolabel` runs of one folder on one database, the first killed with SIGKILL.

    .venv/bin/python scripts/bench/race_kill9.py [--photos 300] [--work /tmp/race_kill9] [--start-at 40] [--kill-at 200]

Writes ``--photos`` distinct JPEGs (sample_data photos with and without faces, random sizes and
qualities), starts run A, starts run B once the database holds ``--start-at`` paths, kills A
(``kill -9``) once it holds ``--kill-at``, waits for B and prints B's exit status, its stderr, its
"finished here" line and how many of the images are detected. Issue 35: B must leave none undetected,
or say on stderr what is left and how to finish it.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def photos(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    names = ["smiling_astronaut.png", "happy_team_photo.jpg", "笑顔_laughing-woman.jpg", "coffee_cup.jpg", "shocked_cat.jpg"]
    ims = [Image.open(ROOT / "sample_data" / n).convert("RGB") for n in names]
    rng = np.random.default_rng(0)
    for i in range(n):
        im, s = ims[i % len(ims)], rng.uniform(0.5, 1.0)
        im.resize((int(im.width * s), int(im.height * s))).save(folder / f"img_{i:04d}.jpg", quality=int(rng.integers(70, 95)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--work", default="/tmp/race_kill9")
    ap.add_argument("--start-at", type=int, default=40)
    ap.add_argument("--kill-at", type=int, default=200)
    args = ap.parse_args()
    from labeler.store import Image, Store, status_counts

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    photos(work / "in", args.photos)
    url = f"sqlite:///{work / 'r.db'}"
    store = Store(url)
    cmd = [str(ROOT / ".venv" / "bin" / "labeler"), "autolabel", str(work / "in"), "--db", url, "-q", "--workers", "1"]

    def wait_for(n: int, proc: subprocess.Popen) -> None:
        while status_counts(store)["paths"] < n and proc.poll() is None:
            time.sleep(0.2)

    a = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(args.start_at, a)
    b = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(args.kill_at, b)
    a.send_signal(signal.SIGKILL)
    out, err = b.communicate()
    a.wait()
    with store.session() as s:
        ingested = s.query(Image).filter(Image.status == "ingested").count()
        detected = s.query(Image).filter(Image.status == "ingested", Image.detected.is_(True)).count()
    print(f"run A: {'killed (SIGKILL)' if a.returncode == -signal.SIGKILL else f'ended by itself ({a.returncode})'}; "
          f"run B: exit {b.returncode}")
    print(*[line for line in out.splitlines() if line.startswith(("images detected", "finished here", "not detected"))], sep="\n")
    print(f"stderr of B: {err.strip() or '(nothing)'}")
    print(f"detected: {detected} of {ingested} images")
    sys.exit(0 if detected == ingested or err.strip() else 1)


if __name__ == "__main__":
    main()
