"""Alembic environment for labeler. Run through `labeler.store.upgrade` (automatic on first use),
or by hand: `alembic -c db/alembic.ini -x url=sqlite:///labeler.db upgrade head`."""

from alembic import context
from sqlalchemy import create_engine

from labeler.store import Base, resolve_url

config = context.config
target_metadata = Base.metadata


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or resolve_url(None)
    engine = create_engine(url)
    with engine.begin() as c:
        context.configure(connection=c, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) mode is not supported; run against a database URL")
run()
