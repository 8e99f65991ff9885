"""Retraining while people label: after every N human decisions the review app starts this in its
own process (the page's keys never wait for it), the promotion gate decides, and where a new model
was promoted every face without a human label is proposed again and re-routed, so the queue
re-ranks on better proposals. Audit answers are never training labels (``labeler.training.data``),
so conformal auto-accept keeps its guarantee across models.

    python -m labeler.training.background DB_URL     # what the app runs; one at a time per database

Its state is a ``settings`` row (``background_retrain``: running with the process id, or the last
result), read by the app's sidebar.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Optional

#: the settings key of the state
KEY = "background_retrain"
#: human decisions between two retrainings in the review app (``LABELER_RETRAIN_EVERY``; 0: never)
DEFAULT_EVERY = 100


def every() -> int:
    """``LABELER_RETRAIN_EVERY`` (default 100; 0 turns background retraining off)."""
    raw = os.environ.get("LABELER_RETRAIN_EVERY", str(DEFAULT_EVERY)).strip()
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"LABELER_RETRAIN_EVERY: expected a whole number of decisions (0 = off), found {raw!r}")
    if n < 0:
        raise ValueError(f"LABELER_RETRAIN_EVERY: expected 0 or more decisions, found {n}")
    return n


def state(store) -> dict[str, Any]:
    try:
        return json.loads(store.get_setting(KEY) or "{}")
    except ValueError:
        return {}


def running(store) -> bool:
    st = state(store)
    if st.get("state") != "running":
        return False
    try:
        os.kill(int(st.get("pid", 0)), 0)  # (the app and the retraining run on one machine)
        return True
    except (OSError, ValueError):
        return False


def _labeled(store) -> int:
    """Faces with a human label now (labeler.store.status_counts)."""
    from labeler.store import status_counts

    return status_counts(store).get("human_labeled_faces", 0)


def due(store, n: Optional[int] = None) -> bool:
    """Whether ``n`` (default :func:`every`) more faces have a human label than when the last
    retraining started (and none runs)."""
    n = every() if n is None else n
    if n <= 0 or running(store):
        return False
    return _labeled(store) - int(state(store).get("labeled", 0)) >= n


def start(store, url: str) -> Optional[subprocess.Popen]:
    """Start a retraining process for the database at ``url`` unless one runs; returns it (or None)."""
    if running(store):
        return None
    labeled = _labeled(store)
    proc = subprocess.Popen([sys.executable, "-m", "labeler.training.background", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    store.set_setting(KEY, json.dumps({"state": "running", "pid": proc.pid, "started": time.time(), "labeled": labeled}))
    return proc


def retrain_and_repropose(store) -> dict[str, Any]:
    """Train a head on the human labels; if the gate promotes it, re-propose and re-route. Returns what happened."""
    from labeler.cleanup import reroute_checked
    from labeler.config import load_config
    from labeler.ingest.rules import load_rules
    from labeler.pipeline import Autolabeler
    from labeler.training import train

    t0 = time.time()
    res = train(store, mode="head")
    out: dict[str, Any] = {"model": res.ident, "promoted": bool(res.promoted), "reason": res.reason}
    if res.promoted:
        cfg = load_config(os.environ.get("LABELER_CONFIG") or None)  # the app's --config, inherited
        out["reproposed"] = Autolabeler(store, cfg, load_rules(), workers=1).repropose(only_stale=True, progress=False)
        out["rerouted"] = reroute_checked(store, cfg.routing)[1]
    out["seconds"] = round(time.time() - t0, 1)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    from labeler.store import Store

    url = (argv or sys.argv[1:])[0]
    store = Store(url, existing=True)
    labeled = _labeled(store)
    store.set_setting(KEY, json.dumps({"state": "running", "pid": os.getpid(), "started": time.time(), "labeled": labeled}))
    try:
        done = retrain_and_repropose(store)
        store.set_setting(KEY, json.dumps({"state": "done", "finished": time.time(), "labeled": labeled, **done}))
        return 0
    except Exception as e:  # too few labels yet, or a model that cannot be trained: said, not raised
        store.set_setting(KEY, json.dumps({"state": "failed", "finished": time.time(), "labeled": labeled, "why": str(e)[:300]}))
        return 1


if __name__ == "__main__":
    sys.exit(main())
