"""Start the review app (`labeler ui`): ``streamlit run labeler/ui/app.py`` as a child process.

No Streamlit import here, so the CLI stays light; the app is bound to localhost unless ``host``
says otherwise. The database URL goes to the child in its environment (``LABELER_DB``), never on
its command line (where ``ps`` would show a password), and is printed with the password masked.
SIGTERM, SIGINT and SIGHUP sent to the launcher are forwarded to the child, which is waited for (and
killed if it has not stopped after :data:`STOP_WAIT_S`), so no Streamlit server outlives `labeler ui`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

UI_SCRIPT = Path(__file__).resolve().parent / "app.py"
#: seconds the child has to stop after a forwarded signal before it is killed
STOP_WAIT_S = 10.0
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def command(port: int = 8501, host: str = "127.0.0.1") -> list[str]:
    """The command line that serves the app (no database URL on it)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(UI_SCRIPT),
        "--server.address", host, "--server.port", str(int(port)), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
    ]


def child_env(db_url: Optional[str], config: Optional[str] = None) -> dict[str, str]:
    """The child's environment: ours, with ``LABELER_DB`` set to the resolved database URL and
    ``LABELER_CONFIG`` to the project's TOML (when given)."""
    from labeler.store import resolve_url

    env = {**os.environ, "LABELER_DB": resolve_url(db_url)}
    if config:
        env["LABELER_CONFIG"] = str(Path(config).resolve())
    return env


def launch(db_url: Optional[str] = None, port: int = 8501, host: str = "127.0.0.1", config: Optional[str] = None) -> int:
    """Serve the review app until interrupted or terminated; returns streamlit's exit status (0 when
    it was stopped by a signal given to the launcher)."""
    from labeler.store import mask_url

    env = child_env(db_url, config)
    print(f"review app: http://{host}:{port}  (database: {mask_url(env['LABELER_DB'])}; Ctrl+C to stop)", flush=True)
    proc = subprocess.Popen(command(port, host), env=env)
    stop_at: list[float] = []

    def forward(sig, _frame) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
        if not stop_at:
            stop_at.append(time.monotonic() + STOP_WAIT_S)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        while True:
            try:
                rc = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stop_at and time.monotonic() > stop_at[0]:
                    proc.kill()
    finally:
        if proc.poll() is None:  # an exception of our own: do not leave the server behind
            proc.kill()
            proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stop_at else rc
