"""The Gallery's "suspicious labels first" order and the Overview's agreement section, through
Streamlit's AppTest on a copy of the sample database (real crops, the shipped model's proposals)."""

from __future__ import annotations


from labeler import store as S
from labeler.datasets.importer import import_csv

from .conftest import need_module  # noqa: E402

need_module("cleanlab", "quality", "pip install 'labeler[quality]'")
need_module("crowdkit", "quality", "pip install 'labeler[quality]'")

from .test_quality_store import _image_faces, _labels_csv, _write  # noqa: E402
from .test_ui import click, config_home, make_app, rows  # noqa: E402,F401  (config_home: autouse fixture)


def test_gallery_suspicious_first_then_relabel(sample_db, tmp_path, monkeypatch):
    st = S.Store(sample_db)
    faces = _image_faces(st)
    bad = faces[4][2]
    import_csv(st, _labels_csv(tmp_path, faces, lambda fid: "disgust" if fid == bad else "happy"))
    at = make_app(sample_db, monkeypatch, page="Gallery")
    at.selectbox(key="g_class").set_value("any").run()
    at.selectbox(key="g_sort").set_value("suspicious").run()
    assert not at.exception, at.exception
    boxes = [c for c in at.checkbox if c.key.startswith("g_") and c.key[2:].isdigit()]
    assert boxes[0].key == f"g_{bad}"
    marks = [c.value.split("issue ")[1] for c in at.caption if "issue " in c.value]
    assert float(marks[0].split()[0]) > 0.9 and marks[0].endswith("→ happy")
    at.checkbox(key=f"g_{bad}").check()
    at.selectbox(key="g_new").set_value("happy")
    at.run()
    click(at, "g_relabel")
    assert [(a.face_id, a.labels) for a in rows(sample_db, annotator="alice")] == [(bad, ["happy"])]
    assert [(a.face_id, a.labels) for a in rows(sample_db, face_id=bad)] == [(bad, ["disgust"]), (bad, ["happy"])]
    at.run()  # the scores were recomputed: the answered face (a tie, the newest answer wins) is no longer first
    boxes = [c for c in at.checkbox if c.key.startswith("g_") and c.key[2:].isdigit()]
    assert boxes[0].key != f"g_{bad}"


def test_overview_shows_agreement_and_consensus(sample_db, tmp_path, monkeypatch):
    st = S.Store(sample_db)
    faces = _image_faces(st)
    at = make_app(sample_db, monkeypatch, page="Overview")
    assert any("no face rated by two annotators yet" in c.value for c in at.caption)
    rows_ = [(p, i, lab, who) for p, i, _f, _m in faces for lab, who in (("happy", "ann"), ("happy", "bob"))]
    rows_[1] = (rows_[1][0], rows_[1][1], "surprise", "bob")
    import_csv(st, _write(tmp_path / "two.csv", ["path", "face", "label", "annotator"], rows_))
    from labeler.ui.resources import labels_changed

    labels_changed()
    at = make_app(sample_db, monkeypatch, page="Overview")
    got = {m.label: m.value for m in at.metric}
    assert got["Faces rated twice or more"] == str(len(faces))
    assert float(got["Alpha (nominal)"]) < 1.0
    assert got["Consensus differs from majority"] in {"0", "1"}
