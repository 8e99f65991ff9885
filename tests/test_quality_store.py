"""Label issues, agreement and consensus through the database, the CLI, the export and the UI, on
the real crops of the sample database (a real `autolabel` of sample_data/: every face is the
smiling astronaut, and the shipped model's real probabilities say happy). Labels come in as
`labeler import` brings them: imported CSVs, several annotators, FER+ style vote columns."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from .conftest import need_module  # noqa: E402

need_module("cleanlab", "quality", "pip install 'labeler[quality]'")
need_module("crowdkit", "quality", "pip install 'labeler[quality]'")

from labeler import store as S  # noqa: E402
from labeler.cli import main  # noqa: E402
from labeler.datasets.export import export  # noqa: E402
from labeler.datasets.importer import import_csv  # noqa: E402

from .test_export import build_db  # noqa: E402


def _image_faces(st) -> list:
    """The faces of still images (path, face index, face id, model label), by face id."""
    return sorted(((r.path, r.face, r.face_id, r.model_label) for r in S.iter_face_records(st)
                   if r.face_id is not None and r.paths), key=lambda x: x[2])  # video frames have no path


def _write(path, header, rows) -> str:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def _labels_csv(tmp_path, faces, label_of, annotator: str = "import", name: str = "labels.csv") -> str:
    return _write(tmp_path / name, ["path", "face", "label", "annotator"],
                  [(p, i, label_of(fid), annotator) for p, i, fid, _m in faces if label_of(fid)])


def test_wrong_imported_labels_come_first(sample_db, tmp_path, capsys):
    """FER2013's case in small: imported labels, three of them wrong; `labeler issues` lists those
    three first with the class the model prefers, the keyword label of the face nobody imported is
    listed under --kind keyword, and the csv export carries the scores."""
    st = S.Store(sample_db)
    faces = _image_faces(st)
    assert len(faces) >= 8 and all(m == "happy" for *_x, m in faces)  # the real model sees the smile
    keep_out = next(fid for p, _i, fid, _m in faces if p.endswith("amazed_astronaut.jpg"))  # keyword "surprise"
    wrong = {faces[1][2]: "angry", faces[4][2]: "sad", faces[6][2]: "fear"}
    assert keep_out not in wrong
    f = _labels_csv(tmp_path, faces, lambda fid: None if fid == keep_out else wrong.get(fid, "happy"))
    assert main(["import", "--format", "csv", f, "--db", sample_db]) == 0
    capsys.readouterr()
    assert main(["issues", "--db", sample_db, "--limit", "3", "--kind", "import"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"label issues: {len(faces)} labels scored (self_confidence)")
    listed = [line.split() for line in out[2:5]]
    assert {int(x[2]) for x in listed} == set(wrong)
    assert all(x[4] == "(import)" and x[5] == "happy" for x in listed)
    assert all(float(x[0]) > 0.9 for x in listed)
    assert main(["issues", "--db", sample_db, "--kind", "keyword"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [int(r.split()[2]) for r in rows[2:] if r.strip() and r.split()[0][0].isdigit()] == [keep_out]

    export(st, "csv", tmp_path / "out.csv")
    got = {int(r["face_id"]): r for r in csv.DictReader(open(tmp_path / "out.csv", encoding="utf-8")) if r["face_id"]}
    for fid in wrong:
        assert float(got[fid]["label_issue_score"]) > 0.9 and got[fid]["label_issue_suggested"] == "happy"
        assert got[fid]["label_issue_of"] == f"import:{wrong[fid]}"
    right = [fid for _p, _i, fid, _m in faces if fid not in wrong and fid != keep_out]
    assert max(float(got[f]["label_issue_score"]) for f in right) < min(float(got[f]["label_issue_score"]) for f in wrong)
    assert got[keep_out]["label_issue_of"] == "keyword:surprise"
    meta = json.loads((tmp_path / "out.csv.metadata.json").read_text())
    assert meta["label_quality"]["computed"] and meta["label_quality"]["label_issues"]["scored"] == len(faces)


def test_flipped_labels_top_the_list_over_random_draws(sample_db_path, tmp_path):
    """Synthetic noise on real crops: every image face imported with its right label (happy), two
    flipped at random to another class, in each of 6 draws (a fresh copy of the database each): the
    two flips are the top of the list."""
    import shutil

    from labeler.types import LABELS

    rng = np.random.default_rng(0)
    others = [c for c in LABELS if c != "happy"]
    for draw in range(6):
        path = tmp_path / f"d{draw}.db"
        shutil.copyfile(sample_db_path, path)
        st = S.Store(f"sqlite:///{path}")
        faces = _image_faces(st)
        flips = {int(f): str(rng.choice(others)) for f in rng.choice([x[2] for x in faces], 2, replace=False)}
        import_csv(st, _labels_csv(tmp_path, faces, lambda fid: flips.get(fid, "happy"), name=f"d{draw}.csv"))
        ranked = S.assess_project(st, reps=0).ranked()
        assert len(ranked) == len(faces)
        assert {x.face_id for x in ranked[:2]} == set(flips)
        assert all(x.suggested == "happy" for x in ranked)
        st.engine.dispose()


def test_answering_a_suspicious_face_appends_a_label(sample_db, tmp_path):
    st = S.Store(sample_db)
    faces = _image_faces(st)
    bad = faces[2][2]
    import_csv(st, _labels_csv(tmp_path, faces, lambda fid: "sad" if fid == bad else "happy"))
    top = S.suspicious_order(S.assess_project(st, reps=0))
    assert top[0] == bad
    S.add_annotation(st, bad, "alice", "label", ["happy"])
    with st.session() as s:
        rows = [(a.annotator, a.labels, a.source) for a in s.query(S.Annotation).filter(S.Annotation.face_id == bad).order_by(S.Annotation.id)]
    assert rows == [("import", ["sad"], "import:csv"), ("alice", ["happy"], "ui")]  # nothing overwritten
    a = S.assess_project(st, reps=0)
    assert a.issues[bad].label == "happy" and a.issues[bad].kind == "human"  # a tie: the newest answer
    assert S.suspicious_order(a)[0] != bad


def test_three_annotators_agreement_consensus_and_status(sample_db, tmp_path, capsys):
    """Two careful annotators and a careless one on every image face: the Dawid-Skene consensus is
    the careful answer, the careless one's estimated accuracy is the lowest, `labeler status`
    reports alpha with its interval, and the export carries consensus and posterior."""
    st = S.Store(sample_db)
    faces = _image_faces(st)
    rows = []
    for k, (p, i, fid, _m) in enumerate(faces):
        # bob slips where cy, careless elsewhere, happens to be right: two of three say happy on every face
        rows += [(p, i, "happy", "ann"), (p, i, "happy" if k % 5 else "surprise", "bob"),
                 (p, i, ["sad", "fear", "angry"][k % 3] if k % 5 else "happy", "cy")]
    f = _write(tmp_path / "crowd.csv", ["path", "face", "label", "annotator"], rows)
    assert main(["import", "--format", "csv", f, "--db", sample_db]) == 0
    a = S.assess_project(st, reps=300)
    assert {fid: c.label for fid, c in a.consensus.items()} == {fid: "happy" for *_x, fid, _m in faces}
    assert all(c.method == "one-coin" and 0.5 < c.posterior <= 1 for c in a.consensus.values())  # few faces: one-coin
    acc = {s.annotator: s.accuracy for s in a.skills}
    assert acc["cy"] < min(acc["ann"], acc["bob"])
    g = a.agreement
    assert g.faces == len(faces) and g.annotators == 3
    assert g.nominal.lower <= g.nominal.alpha <= g.nominal.upper and g.nominal.alpha < 0.6
    assert {(p.a, p.b) for p in g.pairs} == {("ann", "bob"), ("ann", "cy"), ("bob", "cy")}
    capsys.readouterr()
    assert main(["status", "--db", sample_db]) == 0
    out = capsys.readouterr().out
    assert f"agreement: {len(faces)} faces rated by two or more of 3 annotators; Krippendorff's alpha nominal" in out
    assert "Cohen's kappa per class: angry" in out and "consensus (one-coin)" in out and "estimated annotator accuracy" in out
    export(st, "jsonl", tmp_path / "out.jsonl")
    recs = [json.loads(x) for x in open(tmp_path / "out.jsonl", encoding="utf-8")]
    by = {r["face_id"]: r for r in recs if r["face_id"] in {x[2] for x in faces}}
    assert all(r["consensus_label"] == "happy" and r["consensus_method"] == "one-coin" and r["consensus_posterior"] > 0.5
               for r in by.values())
    meta = json.loads((tmp_path / "out.jsonl.metadata.json").read_text())["label_quality"]
    assert meta["agreement"]["faces"] == len(faces) and meta["agreement"]["alpha_nominal"]["lower"] is not None


def test_ferplus_vote_columns_keep_the_distribution(sample_db, tmp_path):
    st = S.Store(sample_db)
    faces = _image_faces(st)
    head = ["file", "face", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]
    votes = {faces[0][2]: [1, 7, 2, 0, 0, 0, 0, 0, 0, 0], faces[1][2]: [4, 4, 0, 0, 0, 0, 0, 2, 0, 0],  # a tie
             faces[2][2]: [0, 1, 0, 0, 0, 0, 0, 0, 2, 7]}  # mostly not a face
    f = _write(tmp_path / "ferplus.csv", head, [(p, i, *votes[fid]) for p, i, fid, _m in faces if fid in votes])
    rep = import_csv(st, f)
    assert (rep.added, rep.votes_added, rep.problems) == (2, 3, {"no_majority": 1})
    again = import_csv(st, f)
    assert (again.added, again.unchanged, again.votes_added, again.votes_unchanged) == (0, 2, 0, 3)
    recs = {r.face_id: r for r in S.iter_face_records(st) if r.face_id in votes}
    assert recs[faces[0][2]].human_label == "happy" and recs[faces[2][2]].human_label == "unusable"
    assert recs[faces[1][2]].human_label is None
    export(st, "csv", tmp_path / "v.csv")
    rows = {int(r["face_id"]): r for r in csv.DictReader(open(tmp_path / "v.csv", encoding="utf-8")) if r["face_id"]}
    d = json.loads(rows[faces[0][2]]["vote_distribution"])
    assert d == pytest.approx({"neutral": 0.1, "happy": 0.7, "surprise": 0.2, "sad": 0, "angry": 0, "disgust": 0, "fear": 0,
                               "contempt": 0, "unknown": 0, "not_a_face": 0})
    assert json.loads(rows[faces[1][2]]["vote_distribution"])["contempt"] == pytest.approx(0.2)
    assert rows[faces[3][2]]["vote_distribution"] == ""


def test_probabilities_of_a_model_that_learned_the_label_are_not_used(sample_db):
    """A face whose newest proposal comes from a head trained on its label (or from a model trained
    from that head) is judged by the earlier, out-of-sample proposal."""
    st = S.Store(sample_db)
    faces = _image_faces(st)
    fid, other = faces[0][2], faces[1][2]
    S.add_annotation(st, fid, "alice", "label", ["sad"])
    S.add_annotation(st, other, "alice", "label", ["sad"])
    S.record_model_version(st, "head", "1", "/x/head.json", {"trained_on": [fid], "base": "fer-ferplus-cnn@x"})
    S.record_model_version(st, "head", "2", "/x/head2.json", {"trained_on": [], "base": "head@1"})
    sad = {c: (0.94 if c == "sad" else 0.01) for c in S.quality_inputs(st).classes}
    with st.session() as s:
        for f in (fid, other):
            s.add(S.Proposal(face_id=f, source_kind="model", source="head@2", label="sad", prob=0.94, probs=sad))
    g = {x.face_id: x for x in S.quality_inputs(st).given}
    assert g[fid].fallback and g[fid].prob_source != "head@2" and max(g[fid].probs) == g[fid].probs[3]  # happy
    assert not g[other].fallback and g[other].prob_source == "head@2"
    assert S.learned(st)["head@2"] == frozenset({fid})
    a = S.assess_project(st, reps=0)
    assert a.issues[fid].score > 0.9 and a.issues[fid].fallback and a.issues[other].score < 0.1


def test_second_opinion_queue(sample_db, monkeypatch):
    st = S.Store(sample_db)
    faces = _image_faces(st)
    sure, doubtful = faces[0][2], faces[3][2]
    S.add_annotation(st, sure, "alice", "label", ["happy"])
    S.add_annotation(st, doubtful, "alice", "label", ["fear"])
    monkeypatch.delenv(S.ANNOTATORS_ENV, raising=False)
    assert S.second_opinion_queue(st, "bob") == []  # one annotator a face is the default
    monkeypatch.setenv(S.ANNOTATORS_ENV, "2")
    assert S.second_opinion_queue(st, "bob") == [doubtful, sure]  # most in doubt first
    assert S.second_opinion_queue(st, "alice") == []  # never one's own face again
    S.add_annotation(st, doubtful, "bob", "label", ["happy"])
    assert S.second_opinion_queue(st, "cy") == [sure]
    assert S.second_opinion_queue(st, "cy", need=3)[0] == doubtful
    monkeypatch.setenv(S.ANNOTATORS_ENV, "two")
    with pytest.raises(S.StoreError, match="LABELER_ANNOTATORS_PER_FACE"):
        S.second_opinion_queue(st, "bob")


def test_gallery_sorts_suspicious_labels_first(sample_db, tmp_path):
    st = S.Store(sample_db)
    faces = _image_faces(st)
    bad = faces[5][2]
    import_csv(st, _labels_csv(tmp_path, faces, lambda fid: "angry" if fid == bad else "happy"))
    total, items = S.gallery_page(st, "any", sort="suspicious", limit=4)
    assert items[0].face_id == bad and items[0].issue > 0.9 and items[0].suggested == "happy"
    assert [i.issue for i in items] == sorted((i.issue for i in items), reverse=True)
    total_face, _ = S.gallery_page(st, "any", sort="face")
    assert total == total_face


def test_without_the_quality_extra(sample_db, tmp_path, monkeypatch, capsys):
    """`labeler issues` says what to install (one line, exit 2); the export still runs, its quality
    columns empty and its metadata saying why."""
    import labeler.quality as Q
    import labeler.quality.assessment as QA

    monkeypatch.setattr(QA, "missing", lambda: ["cleanlab"])
    monkeypatch.setattr(Q, "missing", lambda: ["cleanlab"])
    assert main(["issues", "--db", sample_db]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("labeler: error: ") and "pip install 'labeler[quality]'" in err[0]
    st = S.Store(sample_db)
    export(st, "csv", tmp_path / "o.csv")
    rows = list(csv.DictReader(open(tmp_path / "o.csv", encoding="utf-8")))
    assert rows and all(r["label_issue_score"] == "" and r["consensus_label"] == "" for r in rows)
    meta = json.loads((tmp_path / "o.csv.metadata.json").read_text())["label_quality"]
    assert meta == {"computed": False, "why": "the quality extra is not installed (pip install 'labeler[quality]')"}


def test_issues_refuses_bad_options(sample_db, capsys):
    assert main(["issues", "--db", sample_db, "--kind", "humans"]) == 2
    assert "--kind: expected a comma-separated list of human, import, auto, keyword" in capsys.readouterr().err
    assert main(["issues", "--db", sample_db, "--method", "best"]) == 2
    assert "method must be one of" in capsys.readouterr().err


@pytest.mark.both_backends
def test_quality_inputs_on_both_backends(store, tmp_path):
    """The given labels and ratings of a database built row by row, on SQLite and PostgreSQL."""
    build_db(store, tmp_path / "photos", n_single=14)
    inp = S.quality_inputs(store)
    kinds = {g.kind for g in inp.given}
    assert kinds == {"human", "auto"}
    assert all(g.probs is not None and abs(sum(g.probs) - 1) < 1e-6 for g in inp.given)
    unsure = [r for r in inp.ratings if {x.annotator for x in inp.ratings if x.face_id == r.face_id} == {"ann", "bob", "cy"}]
    assert sorted(r.label for r in unsure) == ["angry", "angry", "disgust"]
    assert not any(r.label == "../evil" for r in inp.ratings)  # not a class: no rating
    a = S.assess_project(store, reps=100)
    assert a.agreement is not None and a.agreement.faces == 2 and len(a.issues) == len(inp.given)


def test_image_formats_get_label_quality_csv(sample_db, tmp_path):
    """imagefolder (and fer2013, labelstudio) have no room for the per-face columns: label_quality.csv
    beside the crops names each exported crop with its score and consensus."""
    st = S.Store(sample_db)
    faces = _image_faces(st)
    bad = faces[2][2]
    import_csv(st, _labels_csv(tmp_path, faces, lambda fid: "sad" if fid == bad else "happy"))
    summ = export(st, "imagefolder", tmp_path / "if", include="human")
    rows = list(csv.DictReader(open(tmp_path / "if" / "label_quality.csv", encoding="utf-8")))
    assert summ["files"]["label_quality"].endswith("label_quality.csv")
    assert {int(r["face_id"]) for r in rows} == {fid for *_x, fid, _m in faces}
    for r in rows:
        assert (tmp_path / "if" / r["split"] / r["label"] / r["file"]).is_file()
    top = max(rows, key=lambda r: float(r["label_issue_score"]))
    assert int(top["face_id"]) == bad and top["label_issue_suggested"] == "happy" and top["consensus_label"] == "sad"
    export(st, "csv", tmp_path / "c.csv")
    assert not (tmp_path / "label_quality.csv").exists()  # csv carries the columns itself
