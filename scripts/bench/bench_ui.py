"""Benchmark the review app in a real Chromium: the card, and the grid.

    python scripts/bench/bench_ui.py --faces 5000            # a generated 5,000-face database
    python scripts/bench/bench_ui.py --faces 100000          # ... 100,000 faces
    python scripts/bench/bench_ui.py --db big.db             # a copy of an existing SQLite database
    python scripts/bench/bench_ui.py --card fast             # only the browser card (server: only the old one)

The generated database is written directly through the store's tables in large transactions
(seconds, not an autolabel run): photos of 1 to 20 faces (most single, a few crowds), small generated
crops (96 px JPEG) and photos (a few hundred distinct JPEG files, linked under as many paths as there
are images), a model proposal and a routing decision for every face (about 40% to review), a
keyword rule on some images, and human labels on 3% of the faces.

Then streamlit serves the app (as `labeler ui` does), headless Chromium (Debian's ``chromium``,
through Playwright) names an annotator and:

- **card**: presses class keys; each sample is the time from the key press until the next card is
  *fully ready*. ``--card both`` (default) times the server-drawn card (``?card=server``) and then
  the browser card (the app's default) in the same run, on fresh pages of the same server:
  - server card: its header shows the new face, the script (fragment) run has finished, no element
    is stale (faded), every image on the card has loaded and the label buttons are enabled;
  - browser card (``FAST_READY_JS``): its header shows the new face and its keys act, both images
    are this face's and have loaded, the label buttons are enabled, nothing on it names another
    face and it is not faded. The rerun that stores the decision may still run; at the end the
    bench waits until the card has nothing in flight and fails unless the labels stored by the
    annotator equal the keys pressed, with no face labeled twice;
- **grid**: on the Verify page confirms ``--grid-pages`` pages in a row (default 20) by keys as a
  scripted annotator would (arrows and space to mark two faces, Enter to confirm); reports the time
  from Enter until the next page is fully shown (its images loaded, no script run under way), median
  and p90, and faces settled per minute (wall clock, page load included; the annotator's own looking
  time is not simulated). It fails unless the rows stored are exactly the pages' faces, in order:
  ``verify`` for the unmarked ones, ``reject`` for the marked ones.

BENCH_UI_LOG=FILE keeps the app server's stderr in FILE.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from labeler import store as S  # noqa: E402
from labeler.types import LABELS  # noqa: E402

CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
READY_JS = """(old) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testScriptState === 'running') return false;
  const m = /Face #(\\d+) ·/.exec(document.body.innerText);
  if (!m || m[1] === String(old)) return false;
  if (!window.__hdr) window.__hdr = performance.now();
  if (document.querySelector('[data-stale="true"]')) return false;
  const main = document.querySelector('[data-testid="stMain"]');
  const imgs = Array.from(main.querySelectorAll('img'));
  if (imgs.length < 2 || !imgs.every(i => i.complete && i.naturalWidth > 0)) return false;
  const btns = Array.from(main.querySelectorAll('button')).filter(b => /^(angry|disgust|fear|happy|sad|surprise|neutral)$/.test(b.innerText.trim().split('\\n')[0].trim()));
  return btns.length === 7 && btns.every(b => !b.disabled);
}"""
CARD_ID_JS = "() => { const m = /Face #(\\d+) ·/.exec(document.body.innerText); return m ? m[1] : null; }"
#: the browser card (``labeler.ui.fastcard``): fully ready = the root shows the new face and its keys act,
#: its header names that face, both images (this face's, not the last card's) have loaded, the seven
#: label buttons are enabled, and nothing on it is stale: every element that names a face names this one
#: and the card is not faded (the product of the opacities up the tree). The rerun that stores the
#: decision may still run: that is the point; every decision is checked in the database at the end.
FAST_READY_JS = """(old) => {
  const c = document.querySelector('.lbl-card');
  if (!c) return false;
  const id = c.dataset.face;
  if (!id || id === String(old) || c.dataset.live !== '1') return false;
  const h = c.querySelector('.lbl-head');
  if (!h || !h.textContent.startsWith(`Face #${id} ·`)) return false;
  if (!window.__hdr) window.__hdr = performance.now();
  if (Array.from(c.querySelectorAll('[data-face]')).some(e => e.dataset.face !== id)) return false;
  const imgs = Array.from(c.querySelectorAll('img'));
  if (imgs.length < 2 || !imgs.every(i => i.complete && i.naturalWidth > 0)) return false;
  let o = 1;
  for (let e = c; e; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity);
  if (o < 0.99) return false;
  const btns = Array.from(c.querySelectorAll('button.lbl-lab'));
  return btns.length === 7 && btns.every(b => !b.disabled);
}"""
FAST_ID_JS = "() => { const c = document.querySelector('.lbl-card'); return c ? c.dataset.face : null; }"
SYNCED_JS = "() => { const c = document.querySelector('.lbl-card'); return !!c && c.dataset.inflight === '0'; }"
GRID_JS = """(old) => {
  const g = document.querySelector('.lbl-grid');
  if (!g || g.dataset.ready !== '1' || g.dataset.page === old) return false;
  const app = document.querySelector('[data-testid="stApp"]');
  if (app.dataset.testScriptState === 'running' || document.querySelector('[data-stale="true"]')) return false;
  return Array.from(g.querySelectorAll('img')).every(i => i.complete && i.naturalWidth > 0);
}"""


def _jpeg(im, quality: int = 80) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _art(rng: random.Random, size: tuple[int, int], faces: int):
    """A synthetic picture: a background and ``faces`` face-like ellipses."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, tuple(rng.randrange(40, 200) for _ in range(3)))
    d = ImageDraw.Draw(im)
    for _ in range(faces):
        w = rng.randrange(size[0] // 10, size[0] // 4)
        x, y = rng.randrange(0, size[0] - w), rng.randrange(0, size[1] - w)
        d.ellipse([x, y, x + w, y + int(w * 1.2)], fill=tuple(rng.randrange(150, 255) for _ in range(3)), outline=(0, 0, 0))
    return im


def generate(db_url: str, faces: int, work: Path, seed: int = 0) -> int:
    """Write a database of about ``faces`` faces (see the module doc); returns the face count."""
    rng = random.Random(seed)
    photos_dir, links = work / "photos", work / "links"
    photos_dir.mkdir(parents=True, exist_ok=True)
    links.mkdir(parents=True, exist_ok=True)
    photos = []
    for k in range(300):
        p = photos_dir / f"photo{k:03d}.jpg"
        _art(rng, (800, 600), rng.randrange(1, 6)).save(p, "JPEG", quality=80)
        photos.append(p)
    crops = [_jpeg(_art(rng, (96, 96), 1), 75) for _ in range(200)]
    st = S.Store(db_url)
    made, img_no = 0, 0
    while made < faces:
        with st.session() as s:
            batch_imgs, batch_faces = [], []
            while made < faces and len(batch_faces) < 20_000:
                r = rng.random()
                n = 1 if r < 0.7 else (rng.randrange(2, 6) if r < 0.97 else rng.randrange(10, 21))
                n = min(n, faces - made)
                rule = rng.choice(LABELS) if rng.random() < 0.3 else None
                img = S.Image(sha256=hashlib.sha256(f"{seed}:{img_no}".encode()).hexdigest(), size_bytes=1000, width=800, height=600,
                              format="JPEG", status="ingested", detected=True, rule_state="labeled" if rule else "none",
                              rule_label=rule, rule_words=f'[["{rule}", "{rule}"]]' if rule else "[]")
                link = links / f"{img_no // 1000:03d}" / f"img{img_no:07d}_{rule or 'photo'}.jpg"
                link.parent.mkdir(exist_ok=True)
                if not link.exists():
                    os.symlink(photos[img_no % len(photos)], link)
                img.paths = [S.ImagePath(path=str(link), root=str(links), relpath=str(link.relative_to(links)))]
                batch_imgs.append(img)
                for i in range(n):
                    x = 40 + (i % 6) * 120
                    y = 40 + (i // 6) * 150
                    batch_faces.append((img, S.Face(idx=i, x1=x, y1=y, x2=x + 90, y2=y + 110, det_score=0.99, flags="",
                                                    crop=rng.choice(crops), quality={"size": 90.0})))
                img_no += 1
                made += n
            s.add_all(batch_imgs)
            s.flush()
            for img, f in batch_faces:
                f.image_id = img.id
            s.add_all([f for _i, f in batch_faces])
            s.flush()
            rows = []
            for img, f in batch_faces:
                top = rng.choice(LABELS)
                p = rng.uniform(0.3, 0.999)
                probs = {lab: (1 - p) / (len(LABELS) - 1) for lab in LABELS}
                probs[top] = p
                rows.append(S.Proposal(face_id=f.id, source_kind="model", source="bench@1", label=top, prob=p, probs=probs))
                review = rng.random() < 0.4
                kind = rng.choice(("disagree", "multi_face", "low_confidence", "quality")) if review else "agree"
                rows.append(S.DecisionRow(image_id=img.id, face_id=f.id, route="review" if review else "auto", kind=kind, label=top,
                                          reason=f"bench: {kind}", priority=round(rng.uniform(0, 4), 3), source="bench"))
                if rng.random() < 0.03:
                    rows.append(S.Annotation(face_id=f.id, annotator="seed", action="label", labels=[top], source="ui"))
            s.add_all(rows)
        print(f"  {made} faces", flush=True)
    st.engine.dispose()
    return made


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(db_url: str, port: int, config_home: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "labeler" / "ui" / "app.py"), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal", "--", "--db", db_url]
    env = dict(os.environ, LABELER_DB=db_url, XDG_CONFIG_HOME=str(config_home))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.environ.get("BENCH_UI_LOG", os.devnull), "w"), cwd=ROOT, env=env)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("streamlit did not start")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def _count(db_url: str, action: str) -> int:
    st = S.Store(db_url)
    with st.session() as s:
        n = s.query(S.Annotation).filter(S.Annotation.annotator == "bench", S.Annotation.action == action).count()
    st.engine.dispose()
    return n


def time_card(b, url: str, db_url: str, mode: str, n: int, warmup: int, audits: bool) -> list[float]:
    """Press ``n + warmup`` class keys on a fresh page of the ``mode`` card ("server" or "fast");
    returns the ``n`` timed samples. The fast card's decisions must all be in the database at the
    end (count and distinct faces), else the run fails."""
    ready, card_id = (FAST_READY_JS, FAST_ID_JS) if mode == "fast" else (READY_JS, CARD_ID_JS)
    page = b.new_page(viewport={"width": 1400, "height": 1000})
    before = _count(db_url, "label")
    page.goto(url + "?annotator=bench" + ("" if audits else "&audits=0") + ("&card=server" if mode == "server" else ""))
    page.wait_for_function(ready, arg=-1, timeout=300_000)
    out, hdr, keys = [], [], "1234567"
    for i in range(n + warmup):
        old = page.evaluate(card_id)
        page.evaluate("() => { window.__hdr = 0; window.__t0 = performance.now(); }")
        t0 = time.perf_counter()
        page.keyboard.press(keys[i % len(keys)])
        try:
            page.wait_for_function(ready, arg=old, timeout=60_000, polling="raf")
        except Exception:
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "bench_ui_timeout.png"))
            print(page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').innerText.slice(0, 800)"))
            raise
        dt = (time.perf_counter() - t0) * 1000
        if i >= warmup:
            out.append(dt)
            hdr.append(page.evaluate("() => window.__hdr - window.__t0"))
    if mode == "fast":  # the reruns that store the decisions may still be running: wait for them, then count
        page.wait_for_function(SYNCED_JS, timeout=120_000)
    else:
        page.wait_for_function("() => document.querySelector('[data-testid=\"stApp\"]').dataset.testScriptState !== 'running'")
    page.close()
    stored = _count(db_url, "label") - before
    st = S.Store(db_url)
    with st.session() as s:
        rows = s.query(S.Annotation.face_id).filter(S.Annotation.annotator == "bench", S.Annotation.action == "label").all()
    st.engine.dispose()
    dup = len(rows) - len({r for (r,) in rows})
    print(f"card ({mode}): fully ready median {statistics.median(out):.0f} ms, p90 {pct(out, 0.9):.0f} ms, min {min(out):.0f}, "
          f"max {max(out):.0f} (new header first seen: median {statistics.median(hdr):.0f} ms, p90 {pct(hdr, 0.9):.0f} ms); "
          f"{n + warmup} keys pressed, {stored} labels stored, {dup} faces labeled twice", flush=True)
    if stored != n + warmup or dup:
        raise SystemExit(f"card ({mode}): {n + warmup} keys pressed but {stored} labels stored ({dup} faces twice): a decision was lost")
    return out


def _grid_rows(db_url: str) -> list[tuple[int, str]]:
    """The bench annotator's grid rows (verify / reject), in the order stored."""
    st = S.Store(db_url)
    with st.session() as s:
        rows = [(f, a) for f, a in s.query(S.Annotation.face_id, S.Annotation.action).filter(
            S.Annotation.annotator == "bench", S.Annotation.action.in_(("verify", "reject"))).order_by(S.Annotation.id)]
    st.engine.dispose()
    return rows


def drive(url: str, db_url: str, cards: list[str], n: int, warmup: int, grid_pages: int,
          audits: bool = False) -> tuple[dict[str, list[float]], tuple[int, float]]:
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise SystemExit("chromium not found (apt-get install chromium)")
    times: dict[str, list[float]] = {}
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROME_ARGS)
        for mode in cards if n else []:
            times[mode] = time_card(b, url, db_url, mode, n, warmup, audits)
        settled, minutes, page_ms = 0, 0.0, []
        if grid_pages:
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "verify?annotator=bench")
            try:
                page.wait_for_function(GRID_JS, arg="", timeout=300_000)
            except Exception:
                page.screenshot(path=str(Path(tempfile.gettempdir()) / "bench_ui_timeout.png"))
                raise
            before = len(_grid_rows(db_url))
            expect: list[tuple[int, str]] = []
            t0 = time.perf_counter()
            for _ in range(grid_pages):
                token = page.evaluate("() => document.querySelector('.lbl-grid').dataset.page")
                shown = [int(x) for x in page.evaluate("() => Array.from(document.querySelectorAll('.lbl-tile')).map(t => t.dataset.face)")]
                for key in ("ArrowRight", "ArrowRight", "Space", "ArrowDown", "Space"):  # two wrong faces marked
                    page.keyboard.press(key)
                marked = {int(x) for x in page.evaluate("() => document.querySelector('.lbl-grid').dataset.marked").split(",") if x}
                t1 = time.perf_counter()
                page.keyboard.press("Enter")
                page.wait_for_function(GRID_JS, arg=token, timeout=120_000, polling="raf")
                page_ms.append((time.perf_counter() - t1) * 1000)
                expect += [(f, "reject" if f in marked else "verify") for f in shown]
                settled += len(shown)
            minutes = (time.perf_counter() - t0) / 60
            page.close()
            got = _grid_rows(db_url)[before:]
            print(f"grid: Enter -> next page fully shown: median {statistics.median(page_ms):.0f} ms, p90 {pct(page_ms, 0.9):.0f} ms, "
                  f"min {min(page_ms):.0f}, max {max(page_ms):.0f}; {grid_pages} pages confirmed, {len(expect)} faces on them, "
                  f"{len(got)} verify/reject rows stored", flush=True)
            if got != expect:
                lost = len({f for f, _a in expect} - {f for f, _a in got})
                raise SystemExit(f"grid: {grid_pages} pages of {len(expect)} faces confirmed but {len(got)} rows stored "
                                 f"({lost} faces of the pages not stored, or stored out of order): a page was lost")
        b.close()
    return times, (settled, minutes)


class Retrainer:
    """Retrainings one after another in their own processes (``python -m labeler.training.background``) on a
    labeled copy of sample_data, until stopped: the load the app's background retraining puts on the machine."""

    def __init__(self, work: Path) -> None:
        import threading

        self.url = _labeled_sample(work)
        self.runs = 0
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._proc = subprocess.Popen([sys.executable, "-m", "labeler.training.background", self.url],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._proc.wait()
            self.runs += 1

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        self._thread.join(30)


def _labeled_sample(work: Path) -> str:
    """sample_data autolabeled, every face waiting for review labeled with its proposal, the tracks labeled."""
    from labeler.store.video import track_ids

    db = work / "retrain_sample.db"
    url = f"sqlite:///{db}"
    if not db.exists():
        subprocess.run([sys.executable, "-m", "labeler.cli", "autolabel", str(ROOT / "sample_data"), "--db", url, "-q"],
                       check=True, stdout=subprocess.DEVNULL)
        st = S.Store(url)
        for f in S.review_queue(st, "bench", limit=1000):
            S.add_annotation(st, f, "bench", "label", [S.face_card(st, f)["model_label"] or "happy"])
        for t in track_ids(st, only_open=True):
            S.label_track(st, t, "happy", "bench")
        st.engine.dispose()
    return url


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="an SQLite database file to use (a copy of it) instead of a generated one")
    ap.add_argument("--faces", type=int, default=5000)
    ap.add_argument("--decisions", type=int, default=60, help="timed card key presses")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--card", choices=("fast", "server", "both"), default="both",
                    help="which review card to time: the browser card (default of the app), the server-drawn one, or both")
    ap.add_argument("--grid-pages", type=int, default=20,
                    help="grid pages the scripted annotator confirms in a row (0: none); fails unless exactly their faces are stored")
    ap.add_argument("--audits", action="store_true",
                    help="leave 'Audit samples first' on: the audit samples are computed in the background meanwhile")
    ap.add_argument("--workdir", help="keep the database and photos here (default: a temp folder, removed)")
    ap.add_argument("--retraining", choices=("off", "on", "both"), default="off",
                    help="on: a retraining runs again and again in its own process while the keys are pressed (what the "
                         "app starts every LABELER_RETRAIN_EVERY labels: labeler.training.background, on a labeled sample "
                         "database); both: the same bench without it, then with it, each on a fresh copy")
    a = ap.parse_args()

    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_ui_"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / f"bench{a.faces}.db"
    url = f"sqlite:///{db}"
    try:
        t0 = time.perf_counter()
        if a.db:
            shutil.copyfile(a.db.removeprefix("sqlite:///"), db)
        elif not db.exists():
            print(f"generating {a.faces} faces ...", flush=True)
            generate(url, a.faces, work)
        st = S.Store(url)
        c = S.status_counts(st)
        st.engine.dispose()
        print(f"database: {db}: {c['faces']} faces, {c.get('route_review', 0)} to review, {c.get('route_auto', 0)} auto "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
        passes = {"off": [False], "on": [True], "both": [False, True]}[a.retraining]
        for retrain in passes:
            run_url = url
            if len(passes) > 1:  # each pass on a fresh copy of the same database
                copy = work / f"pass_{int(retrain)}.db"
                shutil.copyfile(db, copy)
                run_url = f"sqlite:///{copy}"
            trainer = Retrainer(work) if retrain else None
            port = free_port()
            proc = start_app(run_url, port, work / "config")
            try:
                cards = ["server", "fast"] if a.card == "both" else [a.card]
                times, (settled, minutes) = drive(f"http://127.0.0.1:{port}/", run_url, cards, a.decisions, a.warmup,
                                                  a.grid_pages, a.audits)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                if trainer is not None:
                    trainer.stop()
            verified = _count(run_url, "verify")
            tag = f" [retraining running: {trainer.runs} runs]" if trainer is not None else (" [no retraining]" if len(passes) > 1 else "")
            for mode, ms in times.items():
                print(f"card ({mode}){tag}: {len(ms)} key presses timed; key press -> next card fully ready: "
                      f"median {statistics.median(ms):.0f} ms, p90 {pct(ms, 0.9):.0f} ms, min {min(ms):.0f} ms, max {max(ms):.0f} ms")
            if settled:
                print(f"grid{tag}: {settled} faces on {a.grid_pages} pages settled in {minutes * 60:.1f} s "
                      f"({verified} verified): {settled / minutes:.0f} faces per minute")
        return 0
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
