from alembic.autogenerate import compare_metadata
import pytest
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from labeler.store import Base, Store, current_revision, head_revision


@pytest.mark.both_backends
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


@pytest.mark.both_backends
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


#: (route, label, reason, kind) as route() wrote them before 0002, for tests/test_routing.KIND_CASES
#: (issue 12 changed route()'s reasons, so they are frozen here rather than computed today)
OLD_DECISIONS = [
    ("review", "happy", "rule says sad (cry), model says happy (0.97; sad 0.01)", "disagree"),
    ("review", "happy", "ambiguous name: words of two classes (sad, happy); model says happy (0.99)", "ambiguous"),
    ("review", "happy", "multi-face image (3 faces): keyword 'happy' not given to faces; model says happy (0.60)", "multi_face"),
    ("review", "surprise", "no keyword; model unsure: surprise (0.80)", "low_confidence"),
    ("review", None, "no model proposal", "low_confidence"),
    ("review", "happy", "rule (smiling) and model agree on happy but the model is unsure (0.30)", "agree_low"),
    ("review", "happy", "quality: blurry; model says happy (0.90)", "quality"),
    ("auto", "happy", "rule (smiling) and model agree: happy (0.60)", "agree"),
    ("auto", "happy", "multi-face image: model happy (0.95) >= 0.9, name says happy", "multi_face_agree"),
    ("auto", "surprise", "model confident: surprise (0.95) >= 0.9, no keyword", "model_confident"),
]


def test_migration_0002_gives_old_decisions_the_kind_route_gave_them(db_url):
    """A database made before decisions.kind: each old decision gets, from its reason text, the kind
    route() wrote for the same evidence (so the review filters keep finding old rows)."""
    from types import SimpleNamespace

    from alembic import command

    from labeler.store import alembic_config, make_engine, upgrade

    engine = make_engine(db_url, migrate=False)
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    decisions = [SimpleNamespace(route=r, label=lab, reason=why, kind=k) for r, lab, why, k in OLD_DECISIONS]
    with engine.begin() as c:
        c.execute(text("INSERT INTO images (id, sha256, size_bytes, width, height, format, status, error, rule_state, "
                       "rule_words, rule_source, detected, detector, created_at) VALUES "
                       "(1, 'x', 1, 1, 1, '', 'ingested', '', 'none', '[]', '', 1, '', '2026-01-01')"))
        for d in decisions:
            c.execute(text("INSERT INTO decisions (image_id, route, label, reason, priority, source, created_at) "
                           "VALUES (1, :r, :l, :why, 0, '', '2026-01-01')"), {"r": d.route, "l": d.label, "why": d.reason})
        c.execute(text("INSERT INTO decisions (image_id, route, reason, priority, source, created_at) "
                       "VALUES (1, 'no_face', 'no face detected', 0, '', '2026-01-01')"))
    upgrade(engine)
    with engine.connect() as c:
        kinds = [k for (k,) in c.execute(text("SELECT kind FROM decisions ORDER BY id"))]
    assert kinds == [d.kind for d in decisions] + ["no_face"]


def test_review_queue_filters_on_the_decision_kind(sample_db):
    from labeler.store import REVIEW_KINDS, iter_face_records, review_queue, review_queue_count

    store = Store(sample_db)
    by_kind: dict[str, set[int]] = {}
    for r in iter_face_records(store):
        if r.route == "review":
            by_kind.setdefault(r.kind, set()).add(r.face_id)
    assert set(by_kind) <= set(REVIEW_KINDS) and {"disagree", "ambiguous", "multi_face"} <= set(by_kind)
    for kind in REVIEW_KINDS:
        assert set(review_queue(store, "alice", limit=100, reason_kinds=[kind])) == by_kind.get(kind, set()), kind
        assert review_queue_count(store, "alice", reason_kinds=[kind]) == len(by_kind.get(kind, ()))
    assert review_queue_count(store, "alice") == sum(len(v) for v in by_kind.values())


def test_chunks_dedupes_and_splits():
    from labeler.store import chunks

    assert list(chunks([3, 1, 3, 2, 1, 5], 2)) == [[3, 1], [2, 5]]
    assert list(chunks([])) == []
    assert [len(c) for c in chunks(range(1201))] == [500, 500, 201]


def test_accepted_label_is_the_human_majority_else_the_auto_label():
    from labeler.store import accepted_label

    assert accepted_label("sad", "auto", "happy") == ("sad", "human")
    assert accepted_label("unusable", "review", "happy") == ("unusable", "human")
    assert accepted_label(None, "auto", "happy") == ("happy", "auto")
    assert accepted_label(None, "review", "happy") == (None, "")
    assert accepted_label(None, None, None) == (None, "")


def test_face_records_are_typed_and_agree_with_the_ui_queries(sample_db):
    from labeler.store import accepted_labels, add_annotation, iter_face_records, undo_last
    from labeler.types import FaceRecord, RuleWord

    store = Store(sample_db)
    recs = list(iter_face_records(store))
    assert recs and all(isinstance(r, FaceRecord) for r in recs)
    faces = [r for r in recs if r.face_id is not None]
    review = next(r for r in faces if r.route == "review" and r.kind == "disagree")
    add_annotation(store, review.face_id, "alice", "label", ["fear"])
    add_annotation(store, review.face_id, "bob", "label", ["sad"])
    undo_last(store, "bob")  # bob's label no longer counts
    recs = {r.face_id: r for r in iter_face_records(store) if r.face_id is not None}
    got = recs[review.face_id]
    assert (got.label, got.label_source, got.human_label) == ("fear", "human:alice", "fear")
    assert [(a.annotator, a.labels) for a in got.annotations] == [("alice", ("fear",))]
    acc = accepted_labels(store)
    assert {fid: (r.label, r.label_source.split(":")[0]) for fid, r in recs.items() if r.label} == acc
    for r in recs.values():
        assert all(isinstance(w, RuleWord) for w in r.rule_words) and isinstance(r.flags, tuple)
        assert r.words == tuple(w.word for w in r.rule_words if not w.negated)


def test_rules_report_truth_ignores_undone_labels(sample_db):
    from labeler.reports.rules import truth_by_image
    from labeler.store import add_annotation, iter_face_records, undo_last

    store = Store(sample_db)
    face = next(r for r in iter_face_records(store) if r.face_id is not None and r.route == "review")
    add_annotation(store, face.face_id, "alice", "label", ["angry"])
    assert truth_by_image(store)[face.image_id] == "angry"
    undo_last(store, "alice")
    assert face.image_id not in truth_by_image(store)
    add_annotation(store, face.face_id, "alice", "unusable")
    assert face.image_id not in truth_by_image(store)  # "unusable" is no expression


def test_missing_migrations_is_a_one_line_user_error(db_url, monkeypatch):
    from pathlib import Path

    import pytest

    from labeler.errors import LabelerError
    from labeler.store import engine

    monkeypatch.setattr(engine, "migrations_dir", lambda: Path("/nonexistent/migrations"))
    with pytest.raises(LabelerError, match=r"migrations not found: expected the folder /nonexistent/migrations\..*pip install"):
        Store(db_url)
