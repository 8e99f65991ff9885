"""Concurrency helpers shared by the writers: dialect upserts and a named lock row.

Two processes may write one database at once (two `autolabel` runs of one folder, two imports of
one file, two annotators). Inserts of natural keys go through :func:`insert_ignore` (``INSERT ... ON
CONFLICT DO NOTHING``, SQLite and PostgreSQL); a read-then-append that must not run twice at once
(an import, the broken-image decisions) first takes :func:`lock` on a row of ``settings``, which
serializes it on both backends until the transaction ends.
"""

from __future__ import annotations

import zlib
from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from labeler.store.schema import Setting

#: prefix of the ``settings`` keys used as lock rows (their value is unused)
LOCK_PREFIX = "lock:"


def dialect_insert(session: Session, table: Any):
    """``insert(table)`` of the session's dialect (with ``on_conflict_do_nothing``/``_do_update``)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"upserts need SQLite or PostgreSQL, not {name}")
    return insert(table)


def insert_ignore(session: Session, table: Any, values: dict[str, Any], keys: list[str]) -> bool:
    """Insert one row unless a row with the same ``keys`` (a unique constraint) exists, committed or
    being committed by another process (PostgreSQL waits for it). True when this call inserted it."""
    stmt = dialect_insert(session, table).values(**values).on_conflict_do_nothing(index_elements=keys)
    # RETURNING, not rowcount: psycopg under SQLAlchemy 2.1 reports rowcount -1 for an INSERT
    return session.execute(stmt.returning(table.c[keys[0]])).first() is not None


def lock(session: Session, name: str) -> None:
    """Hold the lock ``name`` until the session's transaction ends. SQLite: the write takes the
    database's write lock (waits up to busy_timeout); PostgreSQL: the row lock of ``FOR UPDATE``.
    Reads after this call see everything committed by an earlier holder."""
    key = LOCK_PREFIX + name
    insert_ignore(session, Setting.__table__, {"key": key, "value": ""}, ["key"])
    session.execute(select(Setting.key).where(Setting.key == key).with_for_update())
    if session.get_bind().dialect.name == "sqlite":
        # INSERT OR IGNORE of an existing row may not start a write transaction; an UPDATE always does
        session.execute(Setting.__table__.update().where(Setting.key == key).values(value=""))


@contextmanager
def exclusive(store, name: str) -> Iterator[None]:
    """One holder at a time of ``name``, across processes, for a block that spans several
    transactions (the end of an autolabel run: regroup, re-route). PostgreSQL: a session advisory
    lock held on a connection of its own for the block. SQLite: nothing more than its database lock
    (one writing transaction at a time)."""
    if store.engine.dialect.name != "postgresql":
        yield
        return
    from sqlalchemy import text

    key = zlib.crc32(name.encode()) & 0x7FFFFFFF
    with store.engine.connect() as c:
        c.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        c.commit()
        try:
            yield
        finally:
            c.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            c.commit()
