"""Start the review app (`labeler ui`): ``streamlit run labeler/ui/app.py`` as a child process.

No Streamlit import here, so the CLI stays light; the app is bound to localhost unless ``host``
says otherwise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Optional

UI_SCRIPT = Path(__file__).resolve().parent / "app.py"


def command(db_url: Optional[str], port: int = 8501, host: str = "127.0.0.1") -> list[str]:
    """The command line that serves the app."""
    from labeler.store import resolve_url

    return [
        sys.executable, "-m", "streamlit", "run", str(UI_SCRIPT),
        "--server.address", host, "--server.port", str(int(port)), "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--", "--db", resolve_url(db_url),
    ]


def launch(db_url: Optional[str] = None, port: int = 8501, host: str = "127.0.0.1") -> int:
    """Serve the review app until interrupted; returns the exit status of streamlit."""
    cmd = command(db_url, port, host)
    print(f"review app: http://{host}:{port}  (database: {cmd[-1]}; Ctrl+C to stop)", flush=True)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0
