"""Export formats against a database built row by row (and the real sample DB when models exist)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from labeler.datasets.common import safe_name
from labeler.datasets.export import ExportError, export
from labeler.datasets.splits import assign_splits
from labeler.store import Annotation, DecisionRow, Face, Image, ImagePath, Proposal, iter_face_records
from labeler.types import LABELS

MODEL = "toyfer@1"


def _jpeg(seed: int, size: int = 112) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _image(s, root: Path, rel: str, sha: str, *extra_rels: str, status: str = "ingested", detected: bool = True) -> Image:
    img = Image(sha256=sha, size_bytes=100, width=640, height=480, format="JPEG", status=status,
                error="" if status == "ingested" else "truncated", detected=detected)
    s.add(img)
    s.flush()
    for r in (rel, *extra_rels):
        s.add(ImagePath(image_id=img.id, path=str(root / r), root=str(root), relpath=r))
    return img


def _face(s, img: Image, idx: int, label: str, route: str = "auto", humans=(), prob: float = 0.9, with_humans: bool = True) -> Face:
    f = Face(image_id=img.id, idx=idx, x1=10.0 * idx, y1=5.0, x2=10.0 * idx + 50, y2=60.0, det_score=0.99,
             whole_image=False, flags="", detector="toy", crop=_jpeg(img.id * 10 + idx))
    s.add(f)
    s.flush()
    probs = {lab: (prob if lab == label else (1 - prob) / 6) for lab in LABELS} if label in LABELS else None
    s.add(Proposal(face_id=f.id, source_kind="model", source=MODEL, label=label if label in LABELS else "neutral", prob=prob, probs=probs))
    s.add(DecisionRow(image_id=img.id, face_id=f.id, route=route, label=label if route == "auto" else None, reason="confident", source="policy"))
    for who, labs in humans if with_humans else ():
        if labs == "unusable":
            s.add(Annotation(face_id=f.id, annotator=who, action="unusable", labels=None, source="ui"))
        else:
            s.add(Annotation(face_id=f.id, annotator=who, action="label", labels=list(labs), source="ui"))
    return f


def build_db(store, root: Path, n_single: int = 42, with_humans: bool = True) -> dict:
    """A small database: a 3-face photo, a photo at two paths (same content), a no-face and a broken
    image, n_single one-face photos over every class (some human, some auto, some in review),
    an unusable face, a disagreement, and a hostile label "../evil"."""
    info: dict = {}

    def face(*a, **k):
        return _face(*a, with_humans=with_humans, **k)

    with store.session() as s:
        g = _image(s, root, "party/group.jpg", "a" * 64)
        face(s, g, 0, "happy", humans=[("ann", ["happy"]), ("bob", ["happy"])])
        face(s, g, 1, "sad", route="auto")
        face(s, g, 2, "fear", route="review")
        d = _image(s, root, "dup.jpg", "b" * 64, "copies/dup.jpg")
        face(s, d, 0, "surprise", route="auto")
        n = _image(s, root, "landscape.jpg", "c" * 64)
        s.add(DecisionRow(image_id=n.id, face_id=None, route="no_face", reason="no face detected", source="det"))
        b = _image(s, root, "broken.jpg", "d" * 64, status="broken", detected=False)
        s.add(DecisionRow(image_id=b.id, face_id=None, route="broken", reason="truncated", source="ingest"))
        for i in range(n_single):
            lab = LABELS[i % len(LABELS)]
            img = _image(s, root, f"single/{lab}_{i:03d}.jpg", f"{i:064x}")
            if i % 3 == 0:
                face(s, img, 0, lab, route="review", humans=[("ann", [lab])])
            elif i % 3 == 1:
                face(s, img, 0, lab, route="auto")
            else:
                face(s, img, 0, lab, route="review")
        u = _image(s, root, "blurry.jpg", "e" * 64)
        face(s, u, 0, "neutral", route="review", humans=[("ann", "unusable")])
        dis = _image(s, root, "unsure.jpg", "f" * 64)
        face(s, dis, 0, "angry", route="review", humans=[("ann", ["angry"]), ("bob", ["disgust"]), ("cy", ["angry"])])
        ev = _image(s, root, "evil.jpg", "9" * 64)
        face(s, ev, 0, "happy", route="review", humans=[("mallory", ["../evil"])])
        info["ids"] = {"group": g.id, "dup": d.id, "noface": n.id, "broken": b.id, "unusable": u.id, "unsure": dis.id, "evil": ev.id}
    return info


@pytest.fixture
def db(store, tmp_path):
    info = build_db(store, tmp_path / "photos")
    return store, info


def _records(store):
    return {(r.image_id, r.face): r for r in iter_face_records(store)}


# ---- csv / jsonl


@pytest.mark.both_backends
def test_csv_is_the_full_picture(db, tmp_path):
    store, info = db
    out = tmp_path / "out"
    summ = export(store, "csv", out)
    rows = list(csv.DictReader(open(out / "labels.csv", encoding="utf-8")))
    recs = _records(store)
    assert len(rows) == len(recs) == summ["records"] == summ["written"]
    by = {r["image"]: r for r in rows if r["face"] in ("", "0")}
    assert by["landscape.jpg"]["route"] == "no_face" and by["landscape.jpg"]["face"] == ""
    assert by["broken.jpg"]["route"] == "broken" and by["broken.jpg"]["status"] == "broken"
    grp = [r for r in rows if r["image"] == "party/group.jpg"]
    assert [r["face"] for r in grp] == ["0", "1", "2"]
    assert grp[0]["label"] == "happy" and grp[0]["label_source"] == "human:ann,bob" and grp[0]["agreement"] == "1.0"
    assert json.loads(grp[0]["annotator_labels"]) == {"ann": ["happy"], "bob": ["happy"]}
    assert grp[1]["label"] == "sad" and grp[1]["label_source"].startswith("auto:")
    assert grp[2]["label"] == "" and grp[2]["route"] == "review" and grp[2]["included"] == "0" and grp[2]["split"] == ""
    assert json.loads(grp[2]["model_probs"])["fear"] == pytest.approx(0.9)
    for col in ("x1", "y1", "x2", "y2", "det_score", "rule_label", "model_label", "model_prob", "model_source",
                "votes", "annotators", "split", "sha256"):
        assert col in rows[0]
    assert by["unsure.jpg"]["label"] == "angry" and float(by["unsure.jpg"]["agreement"]) == pytest.approx(2 / 3)
    # every selected row has a split, the others none; labels match the database
    for r in rows:
        rec = recs[(int(r["image_id"]), int(r["face"]) if r["face"] != "" else None)]
        assert r["label"] == (rec.label or "")
        assert (r["split"] != "") == (r["included"] == "1")
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["model_sources"] == {MODEL: sum(1 for r in recs.values() if r.face_id is not None)}
    assert (out / "README.md").read_text().startswith("# labeler export (csv)")


def test_csv_to_a_file_name_and_jsonl(db, tmp_path):
    store, _ = db
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "README.md").write_text("the user's own readme")
    summ = export(store, "csv", tmp_path / "x" / "all.csv")
    assert (tmp_path / "x" / "all.csv").is_file()
    # README and metadata go beside the file, named after it; the folder's own files are left alone
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["README.md", "all.csv", "all.csv.README.md", "all.csv.metadata.json"]
    assert (tmp_path / "x" / "README.md").read_text() == "the user's own readme"
    assert json.loads((tmp_path / "x" / "all.csv.metadata.json").read_text())["written"] == summ["written"]
    assert "`all.csv.metadata.json`" in (tmp_path / "x" / "all.csv.README.md").read_text()
    export(store, "jsonl", tmp_path / "j")
    lines = [json.loads(x) for x in open(tmp_path / "j" / "labels.jsonl", encoding="utf-8")]
    assert len(lines) == len(_records(store))
    grp = [x for x in lines if x["image"] == "party/group.jpg"]
    assert grp[0]["votes"] == {"happy": 1.0} and grp[0]["annotations"][0]["annotator"] == "ann"


# ---- splits


def test_assign_splits_grouped_stratified_repeatable():
    groups = {g: Counter({LABELS[g % 7]: 1 + (g % 3)}) for g in range(700)}
    a = assign_splits(groups, (0.8, 0.1, 0.1), seed=1)
    assert a == assign_splits(groups, (0.8, 0.1, 0.1), seed=1)
    assert a != assign_splits(groups, (0.8, 0.1, 0.1), seed=2)
    for cls in LABELS:
        per = Counter()
        for g, c in groups.items():
            if cls in c:
                per[a[g]] += c[cls]
        tot = sum(per.values())
        assert abs(per["train"] / tot - 0.8) < 0.03 and abs(per["val"] / tot - 0.1) < 0.03
    assert set(assign_splits(groups, (1, 0, 0)).values()) == {"train"}


def test_no_image_and_no_duplicate_in_two_splits(db, tmp_path):
    store, info = db
    for seed in range(5):
        out = tmp_path / f"csv{seed}"
        export(store, "csv", out, seed=seed, split=(0.34, 0.33, 0.33))
        rows = [r for r in csv.DictReader(open(out / "labels.csv", encoding="utf-8")) if r["split"]]
        by_sha = defaultdict(set)
        for r in rows:
            by_sha[r["sha256"]].add(r["split"])
        assert all(len(v) == 1 for v in by_sha.values())
        grp = {r["split"] for r in rows if r["image"] == "party/group.jpg"}
        assert len(grp) == 1
        # the duplicate: one row (one content) that lists both paths
        dup = [r for r in rows if r["sha256"] == "b" * 64]
        assert len(dup) == 1 and len(json.loads(dup[0]["paths"])) == 2
    # repeatable
    a = (tmp_path / "csv1" / "labels.csv").read_text()
    export(store, "csv", tmp_path / "again", seed=1, split=(0.34, 0.33, 0.33))
    strip = lambda t: [(r["face_id"], r["split"]) for r in csv.DictReader(io.StringIO(t))]  # noqa: E731
    assert strip(a) == strip((tmp_path / "again" / "labels.csv").read_text())


# ---- filters


def test_filters(db, tmp_path):
    store, _ = db
    recs = list(_records(store).values())
    human = export(store, "csv", tmp_path / "h", include="human", all_rows=False)
    n_human = sum(1 for r in recs if r.label_source.startswith("human") and r.label != "unusable")
    assert human["selected_faces"] == n_human
    agree = export(store, "csv", tmp_path / "a", include="human", min_agreement=0.9, all_rows=False)
    assert agree["selected_faces"] == n_human - 1  # the 2-of-3 "angry" face
    assert agree["excluded"]["low_agreement"] == 1
    cls = export(store, "csv", tmp_path / "c", classes="happy,sad", all_rows=False)
    assert set(cls["class_counts"]["train"]) | set(cls["class_counts"]["val"]) | set(cls["class_counts"]["test"]) <= {"happy", "sad"}
    rows = list(csv.DictReader(open(tmp_path / "c" / "labels.csv", encoding="utf-8")))
    assert {r["label"] for r in rows} == {"happy", "sad"}
    assert all(r["label"] != "unusable" for r in csv.DictReader(open(tmp_path / "h" / "labels.csv", encoding="utf-8")))
    with pytest.raises(ExportError):
        export(store, "csv", tmp_path / "bad", include="everyone")
    with pytest.raises(ExportError, match="unknown format 'nope': choose one of csv, jsonl, imagefolder"):
        export(store, "nope", tmp_path / "bad")
    with pytest.raises(ExportError, match="between 0 and 1, not 2"):
        export(store, "csv", tmp_path / "bad", min_agreement=2)
    with pytest.raises(ExportError, match="split fractions must not all be zero"):
        export(store, "csv", tmp_path / "bad", split=(0, 0, 0))
    assert not (tmp_path / "bad").exists()  # refused before anything is written


# ---- imagefolder


def _imagefolder(root: Path):
    """torchvision.datasets.ImageFolder's rules without torchvision: classes = sorted dirs."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    idx = {c: i for i, c in enumerate(classes)}
    samples = [(p, idx[c]) for c in classes for p in sorted((root / c).iterdir()) if p.suffix == ".jpg"]
    return classes, samples


@pytest.mark.both_backends
def test_imagefolder_round_trip(db, tmp_path):
    store, info = db
    out = tmp_path / "if"
    summ = export(store, "imagefolder", out, size=64, seed=3)
    recs = {r.face_id: r for r in iter_face_records(store) if r.face_id is not None}
    seen = Counter()
    split_of_image = {}
    for sp in ("train", "val", "test"):
        if not (out / sp).is_dir():
            continue
        classes, samples = _imagefolder(out / sp)
        for p, k in samples:
            with PILImage.open(p) as im:
                assert im.size == (64, 64) and im.mode == "RGB"
            fid = int(p.name.split("_")[0])
            assert summ["class_folders"][recs[fid].label] == classes[k]
            iid = recs[fid].image_id
            assert split_of_image.setdefault(iid, sp) == sp
            seen[sp, recs[fid].label] += 1
    for sp in ("train", "val", "test"):
        for lab, n in summ["class_counts"][sp].items():
            assert seen[sp, lab] == n
    want = sum(1 for r in recs.values() if r.label and r.label != "unusable")
    assert sum(seen.values()) == summ["written"] == want
    # the hostile label became a harmless folder inside the export
    assert summ["class_folders"]["../evil"] == "evil"
    assert not (tmp_path / "evil").exists()
    assert all(out.resolve() in p.resolve().parents for p in out.rglob("*"))
    assert "unusable" not in summ["class_folders"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["class_counts"] == summ["class_counts"] and meta["filters"]["include"] == "human+auto"
    # a second export into the same folder refuses, or replaces with overwrite
    with pytest.raises(ExportError):
        export(store, "imagefolder", out)
    export(store, "imagefolder", out, overwrite=True, include="human")
    assert sum(1 for _ in out.rglob("*.jpg")) == sum(1 for r in recs.values() if r.label_source.startswith("human") and r.label != "unusable")


def test_safe_name():
    assert safe_name("../evil") == "evil"
    assert safe_name("..") == "_" and safe_name("") == "_"
    assert "/" not in safe_name("a/b\\c") and safe_name("happy") == "happy"


# ---- fer2013


def test_fer2013_loads_with_pandas(db, tmp_path):
    import pandas as pd

    store, _ = db
    out = tmp_path / "fer"
    summ = export(store, "fer2013", out)
    df = pd.read_csv(out / "fer2013.csv")
    assert list(df.columns) == ["emotion", "pixels", "Usage"]
    assert set(df["Usage"]) <= {"Training", "PublicTest", "PrivateTest"}
    for px in df["pixels"]:
        arr = np.array(px.split(), dtype=np.uint8)
        assert arr.size == 48 * 48
        arr.reshape(48, 48)
    usage = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
    got = Counter((LABELS[e], u) for e, u in zip(df["emotion"], df["Usage"]))
    want = Counter({(lab, usage[sp]): n for sp, c in summ["class_counts"].items() for lab, n in c.items()})
    assert got == want
    assert "../evil" not in {lab for c in summ["class_counts"].values() for lab in c}
    assert summ["excluded"].get("not_a_fer2013_class") == 1
    with pytest.raises(ExportError):
        export(store, "fer2013", tmp_path / "fer2", classes=["../evil"])


# ---- hf


def test_hf_layout(db, tmp_path):
    store, _ = db
    out = tmp_path / "hf"
    summ = export(store, "hf", out)
    n = 0
    for sp in ("train", "val", "test"):
        if not (out / sp).is_dir():
            continue
        rows = list(csv.DictReader(open(out / sp / "metadata.csv", encoding="utf-8")))
        for r in rows:
            assert (out / sp / r["file_name"]).is_file()
            assert r["file_name"].split("/")[0] == summ["class_folders"][r["label"]]
        n += len(rows)
    assert n == summ["written"]


@pytest.mark.slow
def test_hf_loads_with_datasets(db, tmp_path):
    import datasets  # the test extra

    store, _ = db
    out = tmp_path / "hf"
    summ = export(store, "hf", out)
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), cache_dir=str(tmp_path / "cache"))
    total = 0
    names = {"train": "train", "val": "validation", "test": "test"}
    for sp, c in summ["class_counts"].items():
        if not c:
            continue
        part = ds[names[sp]]
        assert Counter(part["label"]) == Counter(c) or Counter(
            part.features["label"].int2str(x) for x in part["label"]) == Counter({summ["class_folders"][k]: v for k, v in c.items()})
        assert "face_id" in part.column_names and part[0]["image"].size == (112, 112)
        total += len(part)
    assert total == summ["written"]


# ---- label studio (import round trip in test_import.py)


def test_labelstudio_tasks(db, tmp_path):
    store, _ = db
    out = tmp_path / "ls"
    summ = export(store, "labelstudio", out)
    tasks = json.loads((out / "tasks.json").read_text())
    faces = [r for r in iter_face_records(store) if r.face_id is not None]
    assert len(tasks) == len(faces) == summ["written"]
    t = next(t for t in tasks if t["data"]["image_relpath"] == "party/group.jpg" and t["data"]["face"] == 0)
    assert t["data"]["image"].startswith("/data/local-files/?d=crops/")
    assert (out / t["data"]["image"].split("?d=")[1]).is_file()
    assert t["predictions"][0]["result"][0]["value"]["choices"] == ["happy"] and t["predictions"][0]["score"] == pytest.approx(0.9)
    assert sorted(a["completed_by"]["email"] for a in t["annotations"]) == ["ann", "bob"]
    cfg = (out / "label_config.xml").read_text()
    assert '<Choice value="happy"/>' in cfg and "unusable" in cfg


# ---- --out, --overwrite, partial exports, CSV cells


def test_out_that_is_a_file_is_refused(db, tmp_path):
    store, _ = db
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    for fmt in ("imagefolder", "hf", "fer2013", "labelstudio", "csv"):
        with pytest.raises(ExportError, match=r"--out .*notes.txt is a file, but the \w+ format writes a folder"):
            export(store, fmt, f)
    with pytest.raises(ExportError, match="cannot make the export folder"):
        export(store, "imagefolder", f / "sub")
    assert f.read_text() == "mine" and {p.name for p in tmp_path.iterdir() if not p.name.startswith("test.db")} == {"notes.txt"}
    # a csv file name that exists is replaced only with overwrite
    export(store, "csv", tmp_path / "a.csv")
    with pytest.raises(ExportError, match=r"a.csv already exists: .*pass --overwrite"):
        export(store, "csv", tmp_path / "a.csv")
    (tmp_path / "a.csv").write_text("old")
    export(store, "csv", tmp_path / "a.csv", overwrite=True)
    assert (tmp_path / "a.csv").read_text().startswith("image,face,")


def test_overwrite_error_names_the_cli_flag_in_one_line(db, tmp_path, capsys):
    from labeler.cli import main

    store, _ = db
    out = tmp_path / "if"
    export(store, "imagefolder", out)
    with pytest.raises(ExportError, match=r"already holds an export \(.*train/.*\): choose another --out or pass --overwrite"):
        export(store, "imagefolder", out)
    rc = main(["export", "--db", store.url, "--format", "imagefolder", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "--overwrite" in err and "overwrite=True" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["imagefolder", "hf", "fer2013", "labelstudio", "csv", "jsonl"])
def test_files_of_the_user_in_out_are_never_replaced_without_overwrite(db, tmp_path, capsys, fmt):
    """A folder that holds a README.md, metadata.json, tracks.csv or a file the format writes (not
    made by an export) is refused, nothing in it touched, exit 2; --overwrite replaces them."""
    from labeler.cli import main

    store, _ = db
    own = {"README.md": "my notes", "metadata.json": '{"mine": 1}', "tracks.csv": "a,b\n"}
    from labeler.datasets.export import WRITERS

    for i, name in enumerate((*own, *WRITERS[fmt].files)):
        out = tmp_path / f"{fmt}{i}"
        out.mkdir()
        (out / name).write_text(own.get(name, "mine"))
        (out / "keep.txt").write_text("other")
        with pytest.raises(ExportError, match=rf"already holds .*{name}.*: choose another --out or pass --overwrite"):
            export(store, fmt, out)
        rc = main(["export", "--db", store.url, "--format", fmt, "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("labeler: error: ") and name in err and len(err.strip().splitlines()) == 1
        assert sorted(p.name for p in out.iterdir()) == sorted([name, "keep.txt"])
        assert (out / name).read_text() == own.get(name, "mine")
        export(store, fmt, out, overwrite=True)
        assert (out / name).exists() != (name == "tracks.csv") and (out / "keep.txt").read_text() == "other"
        if name in ("README.md", "metadata.json"):
            assert (out / name).read_text() != own[name]
    # beside a named csv file: its README/metadata/tracks neighbours count as well
    (tmp_path / "l.csv.README.md").write_text("my notes")
    if fmt == "csv":
        with pytest.raises(ExportError, match=r"l.csv.README.md"):
            export(store, fmt, tmp_path / "l.csv")
        assert (tmp_path / "l.csv.README.md").read_text() == "my notes" and not (tmp_path / "l.csv").exists()


def test_a_killed_export_is_marked_and_finished_with_overwrite(db, tmp_path, monkeypatch):
    import labeler.datasets.imagefolder as imagefolder

    store, _ = db
    out = tmp_path / "if"
    real, calls = imagefolder.crop_jpeg, []

    def dies_on_the_fifth(data, size):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(data, size)

    monkeypatch.setattr(imagefolder, "crop_jpeg", dies_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        export(store, "imagefolder", out)
    assert (out / "INCOMPLETE_EXPORT.txt").is_file() and not (out / "metadata.json").exists()
    assert len(list(out.rglob("*.jpg"))) == 4
    monkeypatch.setattr(imagefolder, "crop_jpeg", real)
    with pytest.raises(ExportError, match="already holds a partial export .*INCOMPLETE_EXPORT.txt.*--overwrite"):
        export(store, "imagefolder", out)
    summ = export(store, "imagefolder", out, overwrite=True)
    assert not (out / "INCOMPLETE_EXPORT.txt").exists() and (out / "metadata.json").is_file()
    assert len(list(out.rglob("*.jpg"))) == summ["written"] > 4


@pytest.mark.both_backends
def test_csv_cells_cannot_be_formulas(store, tmp_path):
    """Text that a spreadsheet would run (= + - @, tab, CR first) gets a leading quote in CSV
    output only; numbers stay numbers; `labeler import` reads the exported paths back."""
    from labeler.datasets.importer import import_csv
    from labeler.datasets.rows import csv_safe

    root = tmp_path / "photos"
    with store.session() as s:
        img = _image(s, root, "=HYPERLINK(evil).jpg", "1" * 64)
        _face(s, img, 0, "happy", route="review", humans=[("@ann", ["happy"]), ("-bob", ["+sad"])])
        img2 = _image(s, root, "\tplain.jpg", "2" * 64)
        _face(s, img2, 0, "sad", route="auto")
    export(store, "csv", tmp_path / "c")
    rows = {r["sha256"][0]: r for r in csv.DictReader(open(tmp_path / "c" / "labels.csv", encoding="utf-8"))}
    assert rows["1"]["image"] == "'=HYPERLINK(evil).jpg" and rows["1"]["path"].startswith(str(root))
    assert rows["1"]["annotators"] == "'-bob,@ann" or rows["1"]["annotators"] == "'@ann,-bob"
    assert rows["2"]["image"] == "'\tplain.jpg" and rows["2"]["label"] == "sad"
    assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows.values() for v in r.values())
    assert csv_safe(-3.5) == -3.5 and csv_safe("-3") == "'-3" and csv_safe("a=b") == "a=b"
    # JSONL keeps the text as it is
    export(store, "jsonl", tmp_path / "j")
    lines = [json.loads(x) for x in open(tmp_path / "j" / "labels.jsonl", encoding="utf-8")]
    assert {x["image"] for x in lines} == {"=HYPERLINK(evil).jpg", "\tplain.jpg"}
    # the exported CSV imports back: the quote is taken off the path again
    rep = import_csv(store, tmp_path / "c" / "labels.csv", annotator="zoe")
    assert rep.added == 2 and rep.problems == {}


# ---- the real sample database (the shipped models: a load error fails)


@pytest.mark.slow
def test_sample_db_exports(shipped_fer, sample_db, tmp_path):
    from labeler.store import Store

    from labeler.store import add_annotation

    store = Store(sample_db)
    # nothing auto-accepts before audits (issue 12): a person labels three faces with the model's proposal
    faces = [r for r in iter_face_records(store) if r.face_id is not None and r.model_label][:3]
    assert len(faces) == 3
    for r in faces:
        add_annotation(store, r.face_id, "tester", "label", [r.model_label])
    recs = list(iter_face_records(store))
    summ = export(store, "csv", tmp_path / "csv")
    rows = list(csv.DictReader(open(tmp_path / "csv" / "labels.csv", encoding="utf-8")))
    assert len(rows) == len(recs) == summ["records"]
    assert {r["route"] for r in rows} >= {"broken"}
    assert summ["selected_faces"] > 0 and all(lab in LABELS for c in summ["class_counts"].values() for lab in c)
    n_faces = sum(1 for r in recs if r.face_id is not None)
    # every format selects the same faces into the same splits (the sample's labels are all FER2013 classes)
    written = {"imagefolder": summ["selected_faces"], "fer2013": summ["selected_faces"], "hf": summ["selected_faces"],
               "labelstudio": n_faces, "jsonl": len(recs)}
    for fmt, n in written.items():
        s = export(store, fmt, tmp_path / fmt)
        assert json.loads((tmp_path / fmt / "metadata.json").read_text())["class_counts"] == summ["class_counts"], fmt
        assert s["class_counts"] == summ["class_counts"] and s["written"] == n, fmt


@pytest.mark.both_backends
def test_export_after_ingest_only(store, tmp_path):
    """A real ingest of sample_data (no models needed): every file is a row; nothing selected yet."""
    from labeler.ingest.walk import ingest
    from labeler.ingest.rules import load_rules

    from .conftest import SAMPLE

    ingest(store, SAMPLE, load_rules(), progress=False)
    summ = export(store, "csv", tmp_path / "o")
    rows = list(csv.DictReader(open(tmp_path / "o" / "labels.csv", encoding="utf-8")))
    assert len(rows) == summ["records"] == len(list(iter_face_records(store)))
    routes = Counter(r["route"] for r in rows)
    assert routes["broken"] == 3 and routes["pending"] == len(rows) - 3
    assert "笑顔_laughing-woman.jpg" in {r["image"] for r in rows}
    assert summ["selected_faces"] == 0
    s2 = export(store, "imagefolder", tmp_path / "if")
    assert s2["written"] == 0 and (tmp_path / "if" / "README.md").is_file()
