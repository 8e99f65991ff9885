"""The same run on a real PostgreSQL server gives what it gives on SQLite (autolabel, status, export).

The server is Debian's package started by scripts/pg_server.sh (installed first when we are root and
apt-get works, as in CI), bound to 127.0.0.1 in a temp folder. Skipped, with the reason, where no server
or no driver (`psycopg`) can be had."""

from __future__ import annotations

import csv
import subprocess
import uuid

import pytest

from labeler.cli import main

from .conftest import ROOT, SAMPLE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed (pip install 'psycopg[binary]')")
    r = subprocess.run(["bash", str(ROOT / "scripts" / "pg_server.sh"), "start"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"no PostgreSQL server: {r.stderr.strip()[-300:]}")
    base = r.stdout.strip().splitlines()[-1]
    import sqlalchemy as sa

    name = "labeler_test_" + uuid.uuid4().hex[:8]
    eng = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield base.rsplit("/", 1)[0] + "/" + name
    with eng.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


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
