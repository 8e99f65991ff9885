"""The engine: database URL, connection, Alembic migrations, and the ``Store`` handle.

SQLite by default (``labeler.db`` in the working directory); any SQLAlchemy URL via ``--db`` or
``LABELER_DB``. The schema is versioned with Alembic migrations under ``db/``, applied on first use.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional, TypeVar

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Connection, Engine
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


#: what a database value may look like, for the error messages
URL_FORMS = (
    "expected a SQLAlchemy URL such as sqlite:///path/to/labeler.db or "
    "postgresql+psycopg://user:password@host:5432/dbname, or a SQLite file path ending in .db, .sqlite or .sqlite3"
)
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SCHEME_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def mask_url(url: Optional[str]) -> str:
    """``url`` with its password replaced by ``***`` (for every place a database URL is shown)."""
    if not url:
        return ""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not parseable: mask what looks like user:password@
        return re.sub(r"(://[^/@:]*:)[^@]*@", r"\1***@", url)


def _where(url: str, source: str) -> str:
    return f"{source} {mask_url(url)!r}"


def resolve_url(url: Optional[str] = None) -> str:
    """The database URL to use: ``url`` (``--db``), else ``$LABELER_DB``, else ``sqlite:///labeler.db``.

    A value without ``://`` is a SQLite file path only when it ends in .db, .sqlite or .sqlite3
    (``LABELER_DB=garbage`` is refused rather than creating a file named ``garbage``); a URL must
    name a dialect SQLAlchemy knows. Raises :class:`StoreError` (one line) otherwise."""
    source = "--db"
    if not url:
        url, source = os.environ.get("LABELER_DB") or "", "LABELER_DB"
    if not url:
        return DEFAULT_DB
    url = url.strip()
    if "://" not in url:
        win_drive = re.match(r"^[A-Za-z]:[\\/]", url)
        if _SCHEME_LIKE.match(url) and not win_drive:
            raise StoreError(f"{_where(url, source)} is not a database URL ({url.split(':', 1)[0]}: without //); {URL_FORMS}.")
        if not url.lower().endswith(_SQLITE_SUFFIXES):
            raise StoreError(f"{_where(url, source)} is neither a URL nor a SQLite file name; {URL_FORMS}.")
        return f"sqlite:///{url}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"{_where(url, source)} is not a valid database URL; {URL_FORMS}.") from None
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise StoreError(
            f"{_where(url, source)}: unknown database kind {parsed.drivername!r}; {URL_FORMS}."
        ) from None
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL may wait for another process
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def require_existing(url: Optional[str] = None) -> str:
    """The resolved URL, refused (one-line :class:`StoreError`) when it names a SQLite file that does not
    exist: a command that reads a project (status, export, ui...) must not create an empty database
    because of a mistyped path. Server databases are checked when connecting."""
    url = resolve_url(url)
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        db = make_url(url).database or ""
        if db and db != ":memory:" and not db.startswith("file:") and not os.path.exists(db):
            raise StoreError(
                f"no labeler database at {os.path.abspath(db)}: expected the SQLite file that `labeler autolabel` or "
                "`labeler ingest` made. Check --db / $LABELER_DB (run the command in the project's folder), "
                "or start a project with `labeler autolabel FOLDER`."
            )
    return url


def make_engine(url: Optional[str] = None, migrate: bool = True) -> Engine:
    """An engine for ``url`` (see :func:`resolve_url`), migrated to head unless ``migrate`` is False.
    A missing driver or a server that cannot be reached is a one-line :class:`StoreError`."""
    url = resolve_url(url)
    kw: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kw["connect_args"] = {"timeout": 30, "check_same_thread": False}
    elif url.startswith("postgresql") and "connect_timeout" not in url:
        kw["connect_args"] = {"connect_timeout": 10}
    try:
        engine = create_engine(url, **kw)
    except ImportError as e:
        kind = url.split("://", 1)[0]
        raise StoreError(
            f"no database driver for {kind!r} ({e}); install it (PostgreSQL: pip install 'labeler[postgres]') "
            "or name an installed one, e.g. postgresql+psycopg://..."
        ) from None
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's ArgumentError/TypeError on a malformed URL
        raise StoreError(f"cannot use database {mask_url(url)!r}: {_first_line(e)}; {URL_FORMS}.") from None
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        upgrade(engine)
    return engine


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def connect(engine: Engine) -> Connection:
    """``engine.connect()``; a server that cannot be reached (or a SQLite file that cannot be opened)
    is a one-line :class:`StoreError` naming the URL, password masked."""
    from sqlalchemy.exc import DatabaseError, InterfaceError

    try:
        return engine.connect()
    except (DatabaseError, InterfaceError) as e:  # OperationalError is a DatabaseError
        raise StoreError(
            f"cannot open database {mask_url(engine.url.render_as_string(hide_password=False))!r}: {_first_line(e)}. "
            + ("Check that it is a SQLite database (or a new file) in a folder that exists and is writable." if engine.dialect.name == "sqlite" else
               "Check that the server runs and that the URL's host, port, user, password and database are right.")
        ) from None


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection_engine"] = engine
    return cfg


def current_revision(engine: Engine) -> Optional[str]:
    from alembic.runtime.migration import MigrationContext

    with connect(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


#: seconds a process waits for another one's migration of a SQLite file (PostgreSQL waits as long as it takes)
MIGRATION_WAIT_S = 600
#: pg_advisory_xact_lock key that serialises migrations of one PostgreSQL database ("labeler" as int)
MIGRATION_LOCK_KEY = 0x6C6162656C6572


def _lock_for_migration(conn: Connection) -> None:
    """Hold the database's migration lock until ``conn`` commits: a second process opening a new
    database waits here, then finds the schema at head (no `table images already exists`)."""
    name = conn.dialect.name
    if name == "sqlite":  # the write lock; a migration (0005 copies tables) may take minutes on a big file
        conn.exec_driver_sql(f"PRAGMA busy_timeout={MIGRATION_WAIT_S * 1000}")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except Exception as e:  # noqa: BLE001 - sqlite3.OperationalError "database is locked"
            raise StoreError(
                f"database {mask_url(str(conn.engine.url))!r} stayed locked for {MIGRATION_WAIT_S} s while waiting to "
                f"check its schema ({_first_line(e)}); another process is migrating or writing it: retry when it is done."
            ) from None
        finally:
            conn.exec_driver_sql("PRAGMA busy_timeout=30000")
    elif name == "postgresql":
        from sqlalchemy import text

        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})


def upgrade(engine: Engine) -> None:
    """Apply the Alembic migrations up to head (cheap when already there). Concurrent first uses
    are serialised by :func:`_lock_for_migration`; the one that waits re-reads the revision."""
    if not migrations_dir().is_dir():
        raise StoreError(
            f"database migrations not found: expected the folder {migrations_dir()}. "
            "Reinstall labeler (`pip install .`): the wheel carries them as labeler.migrations."
        )
    head = head_revision(engine)
    if current_revision(engine) == head:
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with connect(engine) as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # SQLite's batch mode copies tables: dropping the old one must cascade nothing
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # (no effect inside a transaction: before it)
        try:
            _lock_for_migration(conn)
            if MigrationContext.configure(conn).get_current_revision() != head:
                cfg = alembic_config(engine)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise StoreError("database migration left rows whose parent is missing; nothing was changed. Report it with the database.")
            conn.commit()
        finally:
            if sqlite:
                conn.rollback()
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


class Store:
    """A database handle: engine + session factory + the queries the rest of the app needs."""

    def __init__(self, url: Optional[str] = None, migrate: bool = True, existing: bool = False):
        """``existing``: refuse a SQLite file that does not exist yet (see :func:`require_existing`)."""
        self.url = require_existing(url) if existing else resolve_url(url)
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
