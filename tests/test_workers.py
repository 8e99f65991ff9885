"""`autolabel --workers N`: the work runs in worker processes, the main process stores the results
in input order; the same faces, proposals and routes as one worker; a killed run resumes and a
rerun adds nothing (as with one worker)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from labeler.config import Config, ModelConfig
from labeler.ingest.rules import load_rules
from labeler.pipeline import Autolabeler
from labeler.store import Store, iter_face_records
from labeler.store.schema import DecisionRow, Face, Image, ImagePath, Proposal
from labeler.work import Ordered, default_workers

from .conftest import SAMPLE


def faces_by_content(url: str) -> list[tuple]:
    """What a run found and decided, keyed by content (ids and paths differ between runs)."""
    out = []
    for r in iter_face_records(Store(url)):
        box = None if r.x1 is None else tuple(round(v, 2) for v in (r.x1, r.y1, r.x2, r.y2))
        probs = tuple(sorted((k, round(v, 4)) for k, v in (r.model_probs or {}).items()))
        out.append((r.sha256, r.face, box, r.whole_image, r.flags, r.model_label, probs, r.route, r.kind, r.label))
    return sorted(out, key=repr)


def _counts(url):
    s = Store(url)
    with s.session() as x:
        return tuple(x.scalar(select(func.count()).select_from(t)) for t in (Image, ImagePath, Face, Proposal, DecisionRow))


def test_two_workers_find_and_decide_what_one_worker_does(tmp_path, sample_db_path):
    url = f"sqlite:///{tmp_path / 'w2.db'}"
    rep = Autolabeler(Store(url), Config(), load_rules(), workers=2).run(SAMPLE, progress=False)
    assert rep.faces > 5 and rep.routes.get("broken", 0) >= 1
    assert faces_by_content(url) == faces_by_content(f"sqlite:///{sample_db_path}")
    assert _counts(url) == _counts(f"sqlite:///{sample_db_path}")


def test_killed_run_with_workers_resumes_and_a_rerun_adds_nothing(tmp_path, sample_db_path):
    src = tmp_path / "in"
    shutil.copytree(SAMPLE, src)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    al = Autolabeler(Store(url), Config(model=ModelConfig(batch_images=3)), load_rules(), workers=2)
    real_flush, calls = al.flush, {"n": 0}

    def dying_flush():
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while committing the second batch; workers still busy
        real_flush()

    al.flush = dying_flush
    with pytest.raises(KeyboardInterrupt):
        al.run(src, progress=False)
    assert 0 < _counts(url)[2] < _counts(f"sqlite:///{sample_db_path}")[2]
    Autolabeler(Store(url), Config(), load_rules(), workers=2).run(src, progress=False)
    assert _counts(url) == _counts(f"sqlite:///{sample_db_path}")
    Autolabeler(Store(url), Config(), load_rules(), workers=2).run(src, progress=False)
    assert _counts(url) == _counts(f"sqlite:///{sample_db_path}")


class _LoggingRunner:
    """Runs jobs when their result is asked for, in whatever order that is, and logs it."""

    workers = 2

    def __init__(self):
        self.inflight, self.log = set(), []

    def submit(self, fn, job):
        self.inflight.add(job)
        self.log.append(("submit", job, len(self.inflight)))
        return job

    def result(self, job):
        self.inflight.discard(job)
        return job * 10

    def close(self):
        pass


def test_ordered_returns_results_in_input_order_with_a_bounded_window():
    r = _LoggingRunner()
    q = Ordered(r, fn=None, window=3)
    got = []
    for i in range(10):
        got += q.put(i)
    got += q.drain()
    assert got == [i * 10 for i in range(10)]
    assert max(n for _, _, n in r.log) == 4  # the window, plus the one just submitted
    assert not q.inflight and not r.inflight


def test_ordered_bounds_the_bytes_in_flight():
    q = Ordered(_LoggingRunner(), fn=None, window=10, max_bytes=100)
    assert q.put(0, nbytes=60) == []
    assert q.put(1, nbytes=60) == [0]  # 120 bytes > 100: the oldest comes back first
    assert q.put(2, nbytes=30) == []
    assert q.put(3, nbytes=200) == [10, 20, 30]  # bigger than the cap alone: everything up to it is waited for
    assert q.drain() == [] and q.bytes == 0


def test_default_workers_follows_the_cores_this_process_may_use(monkeypatch):
    """A process pinned to one core (taskset, a container's cpuset) gets one worker, not one per core
    of the machine; without sched_getaffinity (not Linux) the CPU count, and never 0."""
    import os
    import subprocess
    import sys

    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from labeler.work import default_workers; print(default_workers())")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "1"
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert default_workers() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # undeterminable
    assert default_workers() == 1


def test_cli_refuses_zero_workers(tmp_path, capsys):
    from labeler.cli import main

    rc = main(["autolabel", str(SAMPLE / "crops"), "--db", str(tmp_path / "x.db"), "--workers", "0", "-q"])
    assert rc == 2
    assert "--workers: expected 1 or more" in capsys.readouterr().err


def test_cli_two_workers(tmp_path, capsys):
    from labeler.cli import main

    src = tmp_path / "one"
    src.mkdir()
    shutil.copy(SAMPLE / "happy_team_photo.jpg", src)
    assert main(["autolabel", str(src), "--db", str(tmp_path / "x.db"), "--workers", "2", "-q"]) == 0
    out = capsys.readouterr().out
    assert "images detected:   1" in out and "faces:             0" not in out
