from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

# no network in tests: Hugging Face `datasets` (hf export test) must not try to reach a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
SHARED = ROOT.parent / "shared" / "data"


# What scripts/test.sh installs, and so requires (CI): a test that needs one of these and finds it missing
# fails where LABELER_REQUIRE_<WHAT> is set, and skips, with the reason, elsewhere. Only the optional
# tests the README lists skip in CI.
REQUIRABLE = ("pg", "models", "chromium", "torch", "ray", "quality")


def required(what: str) -> bool:
    """Whether scripts/test.sh made ``what`` (one of REQUIRABLE) a requirement: LABELER_REQUIRE_<WHAT>=1."""
    assert what in REQUIRABLE, what
    return os.environ.get(f"LABELER_REQUIRE_{what.upper()}", "") not in ("", "0")


def missing(what: str, reason: str) -> NoReturn:
    """Skip with ``reason``, or fail with it where ``what`` is required (LABELER_REQUIRE_<WHAT>)."""
    if required(what):
        pytest.fail(f"{reason} (LABELER_REQUIRE_{what.upper()} is set: scripts/test.sh installs it; "
                    f"install it or unset the variable)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def need_module(name: str, what: str, hint: str):
    """``import name``, or missing(what, ...) where it is not installed (``hint``: how to install it)."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing(what, f"{name} is not installed ({hint}): {e}")


def chromium_exe() -> str:
    """Debian's chromium, for the browser tests (Playwright cannot download one here)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        missing("chromium", "chromium is not installed (apt-get install chromium)")
    return exe


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "postgres: runs on the real PostgreSQL server of scripts/pg_server.sh (skips without one)")
    config.addinivalue_line("markers", "both_backends: the test's db_url/store is SQLite and then PostgreSQL")


PG_SERVER = ROOT / "scripts" / "pg_server.sh"


def pg_server_cmd(what: str, timeout: float = 600, env=None) -> "subprocess.CompletedProcess[str]":
    """``scripts/pg_server.sh start|status|stop`` (its folder and port: $LABELER_PG_DIR, $LABELER_PG_PORT
    of ``env``, default this process's environment)."""
    return subprocess.run(["bash", str(PG_SERVER), what], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def pg_server():
    """URL of the maintenance database of a throwaway PostgreSQL server (scripts/pg_server.sh: Debian's
    package, 127.0.0.1, started once per session; CI installs it as root). Skips, with the reason,
    where no driver or no server can be had. A server this session started is stopped when the
    session ends, failed tests or not (one that was running before is left running)."""
    need_module("psycopg", "pg", "pip install 'psycopg[binary]'")  # CI (scripts/test.sh as root) requires it
    was_running = pg_server_cmd("status", timeout=60).returncode == 0
    r = pg_server_cmd("start")
    if r.returncode != 0:
        missing("pg", f"no PostgreSQL server: {r.stderr.strip()[-300:]}")
    try:
        yield r.stdout.strip().splitlines()[-1]
    finally:
        if not was_running:
            pg_server_cmd("stop", timeout=120)


@pytest.fixture(scope="session")
def pg_template(pg_server) -> str:
    """Name of a database migrated to head once per session; each test's database is a copy of it."""
    import uuid

    import sqlalchemy as sa

    from labeler.store import Store

    name = "labeler_tmpl_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    Store(pg_server.rsplit("/", 1)[0] + "/" + name).engine.dispose()
    yield name
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_server, pg_template) -> str:
    """A fresh PostgreSQL database at head (a copy of the template), dropped after the test."""
    import uuid

    import sqlalchemy as sa

    name = "labeler_test_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield pg_server.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def pytest_generate_tests(metafunc) -> None:
    """A test marked ``both_backends`` that uses ``db_url`` (or ``store``) runs twice: on SQLite and
    on PostgreSQL (``[postgresql]``, marked ``postgres``; skipped, with the reason, without a server).
    Unmarked tests get SQLite only, so the default run stays short."""
    if "db_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
def backend(request) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def db_url(request, backend, tmp_path) -> str:
    """A fresh database: SQLite in tmp_path, or (``both_backends`` tests) a fresh PostgreSQL one."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url):
    from labeler.store import Store

    return Store(db_url)


@pytest.fixture(scope="session")
def shipped_fer():
    """The shipped default FER model (models/, committed). Missing files: missing("models"); any other
    load error (a sidecar that does not verify, a broken graph) fails the test."""
    from labeler.fer.cards import ModelFileError
    from labeler.fer.resolver import shipped_model

    try:
        return shipped_model()
    except ModelFileError as e:
        if "not found" not in str(e):
            raise
        missing("models", f"the shipped FER model is missing: {e}")


@pytest.fixture(scope="session")
def sample_db_path(tmp_path_factory) -> Path:
    """A database built by a real `autolabel` run over sample_data/ (shared: do not modify;
    use ``sample_db`` for a private copy)."""
    from labeler.config import Config
    from labeler.pipeline import Autolabeler
    from labeler.ingest.rules import load_rules
    from labeler.store import Store

    path = tmp_path_factory.mktemp("sampledb") / "sample.db"
    store = Store(f"sqlite:///{path}")
    Autolabeler(store, Config(), load_rules()).run(SAMPLE, progress=False)
    store.engine.dispose()
    return path


@pytest.fixture
def sample_db(sample_db_path, tmp_path) -> str:
    """URL of a private copy of the sample database (safe to modify)."""
    import shutil

    dst = tmp_path / "sample.db"
    shutil.copyfile(sample_db_path, dst)
    return f"sqlite:///{dst}"
