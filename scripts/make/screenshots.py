"""The screenshots of the docs (README, docs/guide.md), made anew from sample_data in headless Chromium:

    python scripts/make/screenshots.py            # writes docs/img/review.png, verify.png, overview.png

A fresh database of sample_data (`labeler autolabel`, the walk-through's settings), the review app on a
free port, Debian's chromium through Playwright (pip install playwright; apt-get install chromium)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "img"
VIEW = {"width": 1280, "height": 800}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    work = Path(tempfile.mkdtemp(prefix="labeler_shots_"))
    db = f"sqlite:///{work / 'sample.db'}"
    cfg = ROOT / "docs" / "walkthrough.toml"
    subprocess.run([sys.executable, "-m", "labeler.cli", "autolabel", str(ROOT / "sample_data"), "--db", db, "--config", str(cfg),
                    "-q"], check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    env = dict(os.environ, LABELER_DB=db, LABELER_CONFIG=str(cfg), LABELER_RETRAIN_EVERY="0")
    app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "labeler" / "ui" / "app.py"),
                            "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
                            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal", "--", "--db", db],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
            page = b.new_page(viewport=VIEW)
            for name, path, ready in (("review", "review", ".lbl-card[data-face]"), ("verify", "verify", ".lbl-grid"),
                                      ("overview", "overview", "[data-testid=stMetric]")):
                page.goto(f"http://127.0.0.1:{port}/{path}?annotator=docs")
                page.wait_for_selector(ready, timeout=60_000)
                page.wait_for_function("() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'",
                                       timeout=60_000)
                page.wait_for_timeout(1500)  # images paint
                page.screenshot(path=str(OUT / f"{name}.png"))
                print(f"wrote {OUT / (name + '.png')}")
            b.close()
    finally:
        app.terminate()
        app.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
