from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from labeler.store import Base, Store, current_revision, head_revision


def test_migrations_on_empty_database_match_the_models(db_url):
    store = Store(db_url)
    assert current_revision(store.engine) == head_revision(store.engine)
    with store.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
    assert diff == []
    # a second open does not re-run anything and keeps data
    store.set_setting("k", "v")
    assert Store(db_url).get_setting("k") == "v"


def test_sqlite_pragmas_on_every_connection(store):
    with store.engine.connect() as c:
        assert c.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


def test_foreign_keys_enforced(store):
    import pytest
    from sqlalchemy.exc import IntegrityError

    from labeler.store import Face

    with pytest.raises(IntegrityError):
        with store.session() as s:
            s.add(Face(image_id=999, idx=0, x1=0, y1=0, x2=1, y2=1, det_score=0, whole_image=False, flags="", detector=""))


def test_bare_path_and_env_url(tmp_path, monkeypatch):
    from labeler.store import resolve_url

    assert resolve_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("LABELER_DB", "sqlite:///elsewhere.db")
    assert resolve_url(None) == "sqlite:///elsewhere.db"
    assert resolve_url("sqlite:///given.db") == "sqlite:///given.db"
