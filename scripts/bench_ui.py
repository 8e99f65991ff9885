"""Benchmark the review app: time from a label key press to the next card being interactive.

    python scripts/bench_ui.py                      # build a >=5,000-face database from sample_data/
    python scripts/bench_ui.py --source-db s.db     # synthesise from an existing (small) database
    python scripts/bench_ui.py --db big.db          # use a big database as is (a copy of it)

The synthetic database duplicates every image of the source (new ``images`` row with a new sha256,
a new path that is a symlink to the original file, faces with the same boxes and crops, the newest
model/rule proposals and decision) until it holds ``--faces`` faces. Then streamlit serves the app,
headless Chromium (Debian's ``chromium``, through Playwright) names an annotator and presses class
keys; each sample is the time from the key press until the next card's header is shown, the script
has finished and every image on the card has loaded. Prints the median and p90 in milliseconds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labeler import store as S  # noqa: E402

CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
NEXT_CARD_JS = """(old) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testScriptState === 'running') return false;
  const m = /Face #(\\d+) ·/.exec(document.body.innerText);
  if (!m || m[1] === String(old)) return false;
  const imgs = Array.from(document.querySelectorAll('[data-testid="stMain"] img'));
  return imgs.length >= 2 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""
CARD_ID_JS = "() => { const m = /Face #(\\d+) ·/.exec(document.body.innerText); return m ? m[1] : null; }"


def build_sample_db(path: Path) -> None:
    from labeler.config import Config
    from labeler.pipeline import Autolabeler
    from labeler.ingest.rules import load_rules

    st = S.Store(f"sqlite:///{path}")
    Autolabeler(st, Config(), load_rules()).run(ROOT / "sample_data", progress=False)
    st.engine.dispose()


def synthesise(db_path: Path, want_faces: int, link_root: Path) -> int:
    """Duplicate the images of ``db_path`` (with their faces, newest proposals and decision) until
    it holds ``want_faces`` faces. Returns the face count."""
    st = S.Store(f"sqlite:///{db_path}")
    with st.session() as s:
        n = s.query(S.Face).count()
        imgs = [i for i in s.query(S.Image).order_by(S.Image.id).all() if i.faces]
        src = []
        for img in imgs:
            p = img.paths[0]
            faces = []
            for f in img.faces:
                props = [s.query(S.Proposal).filter(S.Proposal.face_id == f.id, S.Proposal.source_kind == kind)
                         .order_by(S.Proposal.id.desc()).first() for kind in ("model", "rule")]
                dec = s.query(S.DecisionRow).filter(S.DecisionRow.face_id == f.id).order_by(S.DecisionRow.id.desc()).first()
                faces.append((f, [x for x in props if x is not None], dec))
            src.append((img, p, faces))
    per_copy = sum(len(fs) for _i, _p, fs in src)
    if not per_copy:
        raise SystemExit("the source database has no faces")
    copies = max(0, -(-(want_faces - n) // per_copy))
    cols = lambda obj, skip: {c.key: getattr(obj, c.key) for c in obj.__table__.columns if c.key not in skip}  # noqa: E731
    for k in range(copies):
        with st.session() as s:
            for img, p, faces in src:
                ni = S.Image(**cols(img, {"id", "sha256", "created_at"}),
                             sha256=hashlib.sha256(f"{img.sha256}:{k}".encode()).hexdigest())
                s.add(ni)
                s.flush()
                link = link_root / f"dup{k:04d}" / (p.relpath or os.path.basename(p.path))
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    os.symlink(p.path, link)
                s.add(S.ImagePath(image_id=ni.id, path=str(link), root=str(link_root), relpath=str(link.relative_to(link_root)),
                                  mtime=p.mtime, size_bytes=p.size_bytes))
                for f, props, dec in faces:
                    nf = S.Face(**cols(f, {"id", "image_id", "created_at"}), image_id=ni.id)
                    s.add(nf)
                    s.flush()
                    for pr in props:
                        s.add(S.Proposal(**cols(pr, {"id", "face_id", "created_at"}), face_id=nf.id))
                    if dec is not None:
                        s.add(S.DecisionRow(**cols(dec, {"id", "face_id", "image_id", "created_at"}), face_id=nf.id, image_id=ni.id))
    with st.session() as s:
        total = s.query(S.Face).count()
    st.engine.dispose()
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(db_url: str, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "labeler" / "ui" / "app.py"), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--", "--db", db_url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("streamlit did not start")


def drive(url: str, n: int, warmup: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise SystemExit("chromium not found (apt-get install chromium)")
    out = []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROME_ARGS)
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_label("Your name").fill("bench")
        page.get_by_role("button", name="Start").click()
        page.wait_for_function(NEXT_CARD_JS, arg=-1, timeout=60_000)
        keys = "1234567"
        for i in range(n + warmup):
            old = page.evaluate(CARD_ID_JS)
            t0 = time.perf_counter()
            page.keyboard.press(keys[i % len(keys)])
            page.wait_for_function(NEXT_CARD_JS, arg=old, timeout=30_000, polling="raf")
            dt = (time.perf_counter() - t0) * 1000
            if i >= warmup:
                out.append(dt)
        b.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="a big SQLite database file to use (a copy of it)")
    ap.add_argument("--source-db", help="a small SQLite database file to synthesise from (default: autolabel sample_data/)")
    ap.add_argument("--faces", type=int, default=5000)
    ap.add_argument("--decisions", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workdir", help="keep the database and links here (default: a temp folder, removed)")
    a = ap.parse_args()

    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_ui_"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "bench.db"
    try:
        t0 = time.perf_counter()
        if a.db:
            shutil.copyfile(a.db.removeprefix("sqlite:///"), db)
        else:
            if a.source_db:
                shutil.copyfile(a.source_db.removeprefix("sqlite:///"), db)
            elif not db.exists():
                print("building the sample database (autolabel sample_data/) ...", flush=True)
                build_sample_db(db)
            print(f"synthesising up to {a.faces} faces ...", flush=True)
            synthesise(db, a.faces, work / "images")
        st = S.Store(f"sqlite:///{db}")
        c = st.counts()
        st.engine.dispose()
        print(f"database: {db}: {c['faces']} faces, {c.get('route_review', 0)} to review, {c.get('route_auto', 0)} auto "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
        if c.get("route_review", 0) < a.decisions + a.warmup + 1:
            raise SystemExit("not enough faces to review for the requested decisions")
        port = free_port()
        proc = start_app(f"sqlite:///{db}", port)
        try:
            ms = drive(f"http://127.0.0.1:{port}/", a.decisions, a.warmup)
        finally:
            proc.terminate()
            proc.wait(10)
        st = S.Store(f"sqlite:///{db}")
        with st.session() as s:
            written = s.query(S.Annotation).filter(S.Annotation.annotator == "bench").count()
        st.engine.dispose()
        ms_sorted = sorted(ms)
        p90 = ms_sorted[min(len(ms_sorted) - 1, int(round(0.9 * (len(ms_sorted) - 1))))]
        print(f"decisions timed: {len(ms)} (annotations written: {written})")
        print(f"key press -> next card interactive: median {statistics.median(ms):.0f} ms, p90 {p90:.0f} ms, "
              f"min {ms_sorted[0]:.0f} ms, max {ms_sorted[-1]:.0f} ms")
        return 0
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
