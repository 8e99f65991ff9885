"""The same run on a real PostgreSQL server gives what it gives on SQLite (autolabel, status, export).

The server is Debian's package started by scripts/pg_server.sh (installed first when we are root and
apt-get works, as in CI), bound to 127.0.0.1 in a temp folder. Skipped, with the reason, where no server
or no driver (`psycopg`) can be had."""

from __future__ import annotations

import csv
import glob
import shutil
import uuid

import pytest

from labeler.cli import main

from .conftest import SAMPLE

pytestmark = pytest.mark.slow


def _new_database(pg_server: str) -> tuple[str, callable]:
    """An empty database (no schema) on the server, and the function that drops it."""
    import sqlalchemy as sa

    name = "labeler_test_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return pg_server.rsplit("/", 1)[0] + "/" + name, drop


@pytest.fixture
def pg_url(pg_server):
    """A new, empty database: the first use below runs the migrations (conftest's pg_url is a copy
    of a migrated template)."""
    url, drop = _new_database(pg_server)
    yield url
    drop()


def _export(db: str, out) -> list[tuple]:
    assert main(["export", "--format", "csv", "--out", str(out), "--db", db]) == 0
    with open(out / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return sorted((r["image"], r["face"], r["route"], r["label"], r["split"], r["sha256"]) for r in rows)


def test_autolabel_status_export_match_sqlite(pg_url, tmp_path, capsys):
    sqlite = f"sqlite:///{tmp_path / 's.db'}"
    for db in (pg_url, sqlite):
        assert main(["autolabel", str(SAMPLE), "--db", db, "-q"]) == 0
    capsys.readouterr()
    assert main(["--db", pg_url, "status"]) == 0  # the global option before the command, too
    pg_status = capsys.readouterr().out.splitlines()[1:]
    assert main(["status", "--db", sqlite]) == 0
    assert pg_status == capsys.readouterr().out.splitlines()[1:]
    assert any(line.startswith("auto-accepted") for line in pg_status)
    pg_rows = _export(pg_url, tmp_path / "pg")
    assert pg_rows and pg_rows == _export(sqlite, tmp_path / "sq")
    # a rerun on the server adds nothing
    assert main(["autolabel", str(SAMPLE), "--db", pg_url, "-q"]) == 0
    assert _export(pg_url, tmp_path / "pg2") == pg_rows


def test_first_uses_at_once_do_not_race_the_migration(pg_url):
    """Four processes open one new database at once: without pg_advisory_xact_lock around the
    migrations this gave DuplicateTable / UniqueViolation (pg_type) in most trials."""
    from labeler.store import Store, current_revision, head_revision

    from .test_validation import open_at_once

    assert open_at_once(pg_url) == ["ok"] * 4
    eng = Store(pg_url).engine
    assert current_revision(eng) == head_revision(eng)
    eng.dispose()


def test_long_paths_names_and_sources_round_trip_and_the_rerun_finishes(pg_url, tmp_path, capsys):
    """VARCHAR(N) made PostgreSQL refuse a 1,025-character path, a 101-character annotator and a long
    rules-file name (StringDataRightTruncation), and the rerun failed on the same file forever."""
    from labeler.store import Store, iter_face_records
    from labeler.store.review import AnnotationError, add_annotation

    deep = tmp_path / "in"
    while len(str(deep)) < 1000:
        deep = deep / ("folder_" + "x" * 120)
    src = deep / ("happy_" + "y" * (1030 - len(str(deep))) + ".jpg")
    src.parent.mkdir(parents=True)
    shutil.copyfile(SAMPLE / "happy_team_photo.jpg", src)
    assert len(str(src)) >= 1025
    rules = tmp_path / ("rules_" + "r" * 240 + ".txt")
    rules.write_text("happy: happy\n", encoding="utf-8")
    for _ in range(2):  # the rerun finishes and adds nothing
        assert main(["autolabel", str(tmp_path / "in"), "--db", pg_url, "--rules", str(rules), "-q"]) == 0
    store = Store(pg_url)
    recs = list(iter_face_records(store))
    assert len(recs) == 3 and {r.path for r in recs} == {str(src)}
    assert all(r.rule_label == "happy" for r in recs)
    with store.session() as s:
        from sqlalchemy import select

        from labeler.store import Proposal

        assert set(s.scalars(select(Proposal.source).where(Proposal.source_kind == "rule"))) == {f"rules:{rules.name}"}
    # the store API caps a name at 100 characters (one line); an import takes a longer one whole
    with pytest.raises(AnnotationError, match="at most 100 characters"):
        add_annotation(store, recs[0].face_id, "a" * 101, "label", ["happy"])
    who = "annotator " + "z" * 140
    labels = tmp_path / "labels.csv"
    labels.write_text(f"path,label,face,annotator\n{src},sad,0,{who}\n", encoding="utf-8")
    assert main(["import", "--format", "csv", str(labels), "--db", pg_url]) == 0
    mine = [r for r in iter_face_records(store) if r.face == 0][0]
    assert who in {a.annotator for a in mine.annotations} and mine.human_label == "sad"
    capsys.readouterr()
    store.engine.dispose()


def test_status_and_errors_never_show_the_password(pg_url, capsys):
    """The server trusts any password, so a URL with one works; `status` shows it masked."""
    url = pg_url.replace("postgres@", "postgres:s3cret@")
    assert main(["status", "--db", url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "database: " + url.replace(":s3cret@", ":***@") and "s3cret" not in out
    bad = url.rsplit("/", 1)[0] + "/no_such_database"
    assert main(["status", "--db", bad]) == 2
    err = capsys.readouterr().err
    assert "cannot open database" in err and ":***@" in err and "s3cret" not in err and err.count("\n") == 1


_FAILING = '''
def test_uses_the_server_and_fails(pg_server):
    import sqlalchemy as sa

    sa.create_engine(pg_server).connect().close()
    assert False, "fails on purpose"
'''


def _processes_of(folder: str) -> list[str]:
    """Command lines of the running processes that name ``folder`` (a PostgreSQL server's data folder)."""
    import os

    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if folder in cmd and int(pid) != os.getpid():
            out.append(cmd)
    return out


def test_a_test_session_stops_the_server_it_started_even_when_a_test_fails(tmp_path):
    """Issue 35: after `bash scripts/test.sh` the server of scripts/pg_server.sh was still running.
    A pytest session (here a child one, with a folder and port of its own) whose PostgreSQL test
    fails stops the server it started; a server that was running before it is left running."""
    import os
    import socket
    import subprocess
    import sys

    from .conftest import ROOT, missing, need_module, pg_server_cmd

    need_module("psycopg", "pg", "pip install 'psycopg[binary]'")
    if not glob.glob("/usr/lib/postgresql/*/bin"):
        missing("pg", "PostgreSQL is not installed (apt-get install postgresql)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = f"/tmp/labeler-pg-test-{uuid.uuid4().hex[:8]}"  # under /tmp itself: the postgres user must reach it
    env = {**os.environ, "LABELER_PG_DIR": folder, "LABELER_PG_PORT": str(port), "PYTHONPATH": str(ROOT)}
    env.pop("LABELER_REQUIRE_PG", None)
    (tmp_path / "test_inner.py").write_text(_FAILING, encoding="utf-8")
    inner = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "tests.conftest",
             str(tmp_path / "test_inner.py")]
    try:
        r = subprocess.run(inner, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 1 and "1 failed" in r.stdout and "fails on purpose" in r.stdout, r.stdout[-2000:]
        assert pg_server_cmd("status", env=env).returncode != 0 and _processes_of(folder) == []
        # a server that runs before the session is not the session's to stop
        assert pg_server_cmd("start", env=env).returncode == 0
        r = subprocess.run(inner, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 1 and "1 failed" in r.stdout, r.stdout[-2000:]
        assert pg_server_cmd("status", env=env).returncode == 0
    finally:
        pg_server_cmd("stop", env=env)
        shutil.rmtree(folder, ignore_errors=True)
    assert _processes_of(folder) == []
