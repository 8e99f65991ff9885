"""The engine: database URL, connection, Alembic migrations, and the ``Store`` handle.

SQLite by default (``labeler.db`` in the working directory); any SQLAlchemy URL via ``--db`` or
``LABELER_DB``. The schema is versioned with Alembic migrations under ``db/``, applied on first use.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional, TypeVar

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from labeler.errors import LabelerError
from labeler.resources import migrations_dir
from labeler.store.schema import Setting

DEFAULT_DB = "sqlite:///labeler.db"


class StoreError(LabelerError, RuntimeError):
    """The database cannot be used as it is (the CLI prints it as one line, exit code 2)."""


#: how many ids go into one ``IN (...)`` (SQLite allows 999 parameters per statement)
CHUNK = 500

T = TypeVar("T")


def chunks(ids: Iterable[T], n: int = CHUNK) -> Iterator[list[T]]:
    """The distinct ``ids`` (first-seen order) in lists of at most ``n``, for ``IN (...)`` queries."""
    ids = list(dict.fromkeys(ids))
    for i in range(0, len(ids), n):
        yield ids[i : i + n]


def latest_ids(session: Session, model, face_ids=None, where=None) -> dict[int, int]:
    """face_id -> id of the newest row of ``model`` (Proposal/DecisionRow) for that face."""
    q = select(model.face_id, func.max(model.id)).where(model.face_id.is_not(None)).group_by(model.face_id)
    if where is not None:
        q = q.where(where)
    if face_ids is not None:
        q = q.where(model.face_id.in_(list(face_ids)))
    return {fid: mid for fid, mid in session.execute(q)}


def resolve_url(url: Optional[str] = None) -> str:
    url = url or os.environ.get("LABELER_DB") or DEFAULT_DB
    if "://" not in url:  # a bare file path
        url = f"sqlite:///{url}"
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: Optional[str] = None, migrate: bool = True) -> Engine:
    url = resolve_url(url)
    kw: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kw["connect_args"] = {"timeout": 10, "check_same_thread": False}
    engine = create_engine(url, **kw)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        upgrade(engine)
    return engine


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection_engine"] = engine
    return cfg


def current_revision(engine: Engine) -> Optional[str]:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def upgrade(engine: Engine) -> None:
    """Apply the Alembic migrations up to head (cheap when already there)."""
    if not migrations_dir().is_dir():
        raise StoreError(
            f"database migrations not found: expected the folder {migrations_dir()}. "
            "Reinstall labeler (`pip install .`): the wheel carries them as labeler.migrations."
        )
    if current_revision(engine) == head_revision(engine):
        return
    from alembic import command

    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    """A database handle: engine + session factory + the queries the rest of the app needs."""

    def __init__(self, url: Optional[str] = None, migrate: bool = True):
        self.url = resolve_url(url)
        self.engine = make_engine(self.url, migrate=migrate)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self._sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    # ---- settings
    def get_setting(self, key: str, default: Optional[str] = None) -> Optional[str]:
        with self.session() as s:
            row = s.get(Setting, key)
            return row.value if row else default

    def set_setting(self, key: str, value: str) -> None:
        with self.session() as s:
            row = s.get(Setting, key)
            if row:
                row.value = value
            else:
                s.add(Setting(key=key, value=value))

    def counts(self) -> dict[str, int]:
        """Counts by state for `labeler status`."""
        from labeler.store.images import counts

        return counts(self)
