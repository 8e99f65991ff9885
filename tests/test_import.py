"""CSV and Label Studio imports: resolution, reports, idempotency, export -> import round trips."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from labeler.datasets.export import export
from labeler.datasets.importer import LabelImportError, import_csv, parse_labels
from labeler.datasets.labelstudio import import_labelstudio
from labeler.store import Annotation, Store, current_annotations, iter_face_records

from .test_export import build_db


def _write_csv(path: Path, rows, header=("path", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _human(store) -> dict:
    """(sha256, face) -> (label, votes) for faces with a human label."""
    return {(r.sha256, r.face): (r.human_label, dict(r.votes)) for r in iter_face_records(store) if r.human_label}


def _n_annotations(store) -> int:
    with store.session() as s:
        return s.query(Annotation).count()


@pytest.fixture
def db(store, tmp_path):
    root = tmp_path / "photos"
    build_db(store, root, n_single=14)
    return store, root


def test_parse_labels():
    assert parse_labels("Happy ") == ("label", ["happy"])
    assert parse_labels("3") == ("label", ["happy"])
    assert parse_labels("happy|surprise") == ("label", ["happy", "surprise"])
    assert parse_labels("unusable") == ("unusable", [])
    assert parse_labels("../evil") is None and parse_labels("joy") is None


@pytest.mark.both_backends
def test_import_csv_resolves_reports_and_is_idempotent(db, tmp_path):
    store, root = db
    csv_dir = tmp_path / "photos"  # relative paths resolve against the CSV's folder ...
    csv_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        ("dup.jpg", "happy"),                              # relative to the CSV folder
        (str(root / "copies" / "dup.jpg"), "happy"),       # the same content by its other absolute path
        ("single/angry_000.jpg", "sad"),                    # relative path
        (str(root / "single" / "disgust_001.jpg"), "2"),   # FER2013 index -> fear
        ("blurry.jpg", "unusable"),
        ("party/group.jpg", "happy"),                       # 3 faces: reported
        ("landscape.jpg", "happy"),                         # no face
        ("broken.jpg", "sad"),                              # broken
        ("nowhere/missing.jpg", "happy"),                   # unknown path
        ("single/fear_002.jpg", "joyful"),                  # unknown label
        ("single/happy_003.jpg", "../evil"),                # unknown label, never a folder
        ("single/sad_004.jpg", ""),                         # empty label
    ]
    p = _write_csv(csv_dir / "labels.csv", rows)
    before = _n_annotations(store)
    rep = import_csv(store, p, annotator="carol")
    assert rep.rows == len(rows)
    assert rep.added == 4 and rep.unchanged == 1  # dup twice: one annotation
    assert rep.problems == {"multi_face": 1, "no_face": 1, "broken": 1, "unknown_path": 1, "unknown_label": 2, "empty_label": 1}
    assert "nowhere/missing.jpg" in rep.examples["unknown_path"][0]
    assert any("../evil" in e for e in rep.examples["unknown_label"])
    lines = rep.lines()
    assert lines[:4] == ["rows read:          12", "annotations added:  4", "already there:      1", "not imported:       7"]
    assert lines[4:] == [f"  {k:18s} {n}   e.g. {'; '.join(rep.examples[k])}" for k, n in sorted(rep.problems.items())]
    assert lines[-1].startswith("  unknown_path       1   e.g. line 10: 'nowhere/missing.jpg'")
    recs = {r.relpath: r for r in iter_face_records(store) if r.face in (0, None)}
    [dup] = recs["dup.jpg"].annotations
    assert (dup.annotator, dup.action, dup.labels, dup.source) == ("carol", "label", ("happy",), "import:csv")
    assert recs["single/angry_000.jpg"].votes == {"angry": 0.5, "sad": 0.5}
    assert recs["single/disgust_001.jpg"].label == "fear"
    # carol's "unusable" is her own annotation next to ann's, and the face stays unusable
    assert {a.annotator: (a.action, a.source) for a in recs["blurry.jpg"].annotations} == {
        "ann": ("unusable", "ui"), "carol": ("unusable", "import:csv")}
    assert recs["blurry.jpg"].label == "unusable"
    n = _n_annotations(store)
    assert n == before + 4
    # re-import: nothing new
    rep2 = import_csv(store, p, annotator="carol")
    assert rep2.added == 0 and rep2.unchanged == 5 and _n_annotations(store) == n
    # a changed label is a new annotation (history kept), the rest unchanged
    _write_csv(csv_dir / "labels2.csv", [("dup.jpg", "surprise")])
    rep3 = import_csv(store, csv_dir / "labels2.csv", annotator="carol")
    assert rep3.added == 1 and _n_annotations(store) == n + 1


def test_import_csv_path_column_face_column_and_ingest_root(db, tmp_path):
    store, root = db
    other = tmp_path / "elsewhere"
    other.mkdir()
    # relative to the ingest root (not to the CSV), `file` column, a face index for the group photo
    p = _write_csv(other / "l.csv", [("party/group.jpg", "2", "fear"), ("party/group.jpg", "7", "sad"), ("dup.jpg", "", "neutral")],
                   header=("file", "face", "label"))
    rep = import_csv(store, p)
    assert rep.added == 2 and rep.problems == {"unknown_face": 1}
    recs = {(r.relpath, r.face): r for r in iter_face_records(store)}
    assert recs["party/group.jpg", 2].human_label == "fear"
    assert [a.annotator for a in recs["party/group.jpg", 2].annotations] == ["import"]
    with pytest.raises(LabelImportError, match=r"bad.csv: needs a path column .* found name, class"):
        import_csv(store, _write_csv(other / "bad.csv", [("x", "y")], header=("name", "class")))


def test_exported_csv_imports_back(db, tmp_path):
    """Our own CSV export (image + face + label columns) imports into a fresh database."""
    store, root = db
    export(store, "csv", tmp_path / "e", include="human", all_rows=False)
    fresh = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    build_db(fresh, root, n_single=14, with_humans=False)
    rep = import_csv(fresh, tmp_path / "e" / "labels.csv", annotator="x")
    want = {k: v[0] for k, v in _human(store).items() if v[0] not in ("unusable", "../evil")}
    got = {k: v[0] for k, v in _human(fresh).items()}
    assert got == want
    assert rep.problems == {"unknown_label": 1}  # "../evil" is reported, not imported


@pytest.mark.both_backends
def test_labelstudio_round_trip(db, tmp_path):
    store, root = db
    out = tmp_path / "ls"
    export(store, "labelstudio", out)
    tasks_file = out / "tasks.json"
    want = _human(store)
    # into a database with the same faces and no human labels: the same labels and votes come back
    fresh = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    build_db(fresh, root, n_single=14, with_humans=False)
    assert _human(fresh) == {}
    rep = import_labelstudio(fresh, tasks_file)
    got = _human(fresh)
    evil = [k for k, v in want.items() if v[0] == "../evil"]
    assert rep.problems == {"unknown_label": len(evil)}
    assert got == {k: v for k, v in want.items() if k not in evil}
    with fresh.session() as s:
        assert {a.source for a in s.query(Annotation)} == {"import:labelstudio"}
    # idempotent, also into the database it came from
    n = _n_annotations(fresh)
    rep2 = import_labelstudio(fresh, tasks_file)
    assert rep2.added == 0 and _n_annotations(fresh) == n
    n0 = _n_annotations(store)
    assert import_labelstudio(store, tasks_file).added == 0 and _n_annotations(store) == n0


def test_labelstudio_annotations_made_in_label_studio(db, tmp_path):
    """Tasks as Label Studio exports them after people worked: completed_by ids, cancelled ones."""
    store, root = db
    export(store, "labelstudio", tmp_path / "ls")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    todo = [t for t in tasks if not t["annotations"]][:3]
    for i, t in enumerate(todo):
        t["id"] = 100 + i
        pred = t["predictions"][0]["result"][0]["value"]["choices"]
        t["annotations"] = [{"id": 1, "completed_by": 7, "was_cancelled": i == 2,
                             "result": [{"type": "choices", "from_name": "emotion", "to_name": "image", "value": {"choices": pred}}]}]
    bogus = {"id": 999, "data": {"image": "/data/local-files/?d=crops/x.jpg", "sha256": "8" * 64, "face": 0},
             "annotations": [{"completed_by": 7, "result": [{"type": "choices", "value": {"choices": ["happy"]}}]}]}
    f = tmp_path / "done.json"
    f.write_text(json.dumps(todo + [bogus]))
    rep = import_labelstudio(store, f)
    assert rep.added == 2 and rep.problems == {"cancelled": 1, "unknown_task": 1}
    with store.session() as s:
        cur = current_annotations(s, [t["data"]["face_id"] for t in todo])
    assert [sorted(cur.get(t["data"]["face_id"], {})) for t in todo] == [["labelstudio:7"], ["labelstudio:7"], []]
    rep = import_labelstudio(store, f, annotator="dora")
    assert rep.added == 2
    # JSON lines work too; a file that is neither is one clear error
    f.write_text("\n".join(json.dumps(t) for t in todo))
    assert import_labelstudio(store, f, annotator="eve").added == 2
    f.write_text("<html>not json</html>")
    with pytest.raises(LabelImportError, match=r"done.json: not a Label Studio JSON export"):
        import_labelstudio(store, f)


def test_label_files_that_cannot_be_read_are_one_line_errors_that_name_the_file(db, tmp_path, capsys):
    """A binary file (csv or labelstudio) names the file and says what was expected; a CSV without
    the columns says which options name them, and those options exist and work."""
    from labeler.cli import main

    store, root = db
    blob = tmp_path / "photo.jpg"
    blob.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 40)
    for fmt, what in (("csv", "a CSV file"), ("labelstudio", "a Label Studio JSON export")):
        assert main(["import", "--db", store.url, "--format", fmt, str(blob)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"labeler: error: {blob}: not UTF-8 text (byte 0xff") and what in err and err.count("\n") == 1, err
    # a NUL in the middle of text is not a crash either
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"path,label\n" + b"a.jpg,happy\n" * 3 + b"b\x00.jpg,sad\n")
    assert main(["import", "--db", store.url, "--format", "csv", str(nul)]) in (0, 2)
    assert "Traceback" not in capsys.readouterr().err
    # other column names: the message names the options, and they work
    other = _write_csv(tmp_path / "other.csv", [("dup.jpg", "happy")], header=("picture", "emotion"))
    assert main(["import", "--db", store.url, "--format", "csv", str(other)]) == 2
    err = capsys.readouterr().err
    assert str(other) in err and "--path-column and --label-column" in err and err.count("\n") == 1
    before = _n_annotations(store)
    assert main(["import", "--db", store.url, "--format", "csv", str(other), "--path-column", "Picture",
                 "--label-column", "emotion"]) == 0
    assert "annotations added:  1" in capsys.readouterr().out and _n_annotations(store) == before + 1
