"""Cleaning through the whole tool: `autolabel` measures text, hashes and non-photo score; a face with
a caption goes to review for it; near-copies are one group and one split in the export; `labeler
clean` measures images stored without the values; `labeler report` writes the data report."""

from __future__ import annotations

import csv
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import update

from labeler import store as S
from labeler.cleanup import backfill
from labeler.config import CleanConfig, Config
from labeler.datasets.export import export
from labeler.ingest.imageio import decode
from labeler.ingest.rules import load_rules
from labeler.pipeline import Autolabeler

from .conftest import ROOT

SAMPLE = ROOT / "sample_data"


def _rgb(name: str) -> np.ndarray:
    return decode((SAMPLE / name).read_bytes()).rgb


def _save(rgb: np.ndarray, path: Path, quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    path.write_bytes(buf.tobytes())


def _resized(rgb: np.ndarray, f: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def _faces(store, name: str) -> list:
    return [r for r in S.iter_face_records(store) if r.relpath.endswith(name) and r.face_id is not None]


#: text looked for on every image (the default looks only before a face is auto-accepted: see the end)
EVERY = Config(clean=CleanConfig(text="every_image"))


def _photos(first: Path) -> None:
    woman = _rgb("笑顔_laughing-woman.jpg")
    _save(_rgb("smiling_astronaut.png"), first / "plain.jpg")
    _save(_resized(woman, 0.8), first / "copy_a.jpg", 80)  # two re-encoded sizes of one photo
    _save(_resized(woman, 0.55), first / "copy_b.jpg", 65)
    for name in ("shocked_cat.jpg", "happy_team_photo.jpg", "coffee_cup.jpg"):
        shutil.copyfile(SAMPLE / name, first / name)


def _captioned(store, first: Path, second: Path) -> None:
    """plain.jpg again with a caption drawn under the face its first run found."""
    (face,) = _faces(store, "plain.jpg")
    img = decode((first / "plain.jpg").read_bytes()).rgb.copy()
    x1, y2 = int(face.x1), int(face.y2)
    cv2.rectangle(img, (max(0, x1 - 20), y2 + 4), (min(img.shape[1] - 1, x1 + 300), y2 + 44), (0, 0, 0), -1)
    cv2.putText(img, "STOCK PHOTO 2024", (max(0, x1 - 10), y2 + 34), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    _save(img, second / "captioned.png")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Two autolabel runs into one database, text looked for on every image: photos (two
    near-copies of one among them), then the first photo again with a caption drawn under the face
    its first run found."""
    base = tmp_path_factory.mktemp("clean")
    first, second = base / "first", base / "second"
    _photos(first)
    store = S.Store(f"sqlite:///{base / 'p.db'}")
    Autolabeler(store, EVERY, load_rules()).run(first, progress=False)
    _captioned(store, first, second)
    Autolabeler(store, EVERY, load_rules()).run(second, progress=False)
    return store, base


def test_a_caption_beside_the_face_is_flagged_and_sent_to_review(project):
    store, _ = project
    (plain,) = _faces(store, "plain.jpg")
    (cap,) = _faces(store, "captioned.png")
    assert cap.text_near is True and "text" in cap.flags and cap.text_share > 0.005
    assert cap.route == "review" and "text on or beside the face" in cap.reason
    assert plain.text_near is False and "text" not in plain.flags and plain.text_share == 0.0
    assert "text" not in plain.reason
    # every measured value is stored for every detected image, faces included
    for r in S.iter_face_records(store):
        if r.status == "ingested":
            assert r.nonphoto is not None and 0 <= r.nonphoto <= 1 and r.dup_group is not None
            assert r.face_id is None or r.text_near is not None


def test_near_copies_are_one_group_and_one_split(project, tmp_path):
    store, _ = project
    a, b = _faces(store, "copy_a.jpg"), _faces(store, "copy_b.jpg")
    assert len(a) == len(b) == 1
    assert a[0].sha256 != b[0].sha256 and a[0].dup_group == b[0].dup_group
    others = {r.dup_group for r in S.iter_face_records(store) if r.image_id not in (a[0].image_id, b[0].image_id)}
    assert a[0].dup_group not in others
    # the two faces are one face group too (the same place in both copies), offered for one decision
    # (and the captioned photo with its plain original: a caption strip changes few hash bits)
    pair = tuple(r.face_id for r in (*_faces(store, "plain.jpg"), *_faces(store, "captioned.png")))
    assert sorted(g.face_ids for g in S.face_groups(store)) == sorted([(a[0].face_id, b[0].face_id), pair])
    # the copies share the class, everything else another one: alone, two groups of one class would
    # go to two splits (each to the split furthest below its share)
    for r in S.iter_face_records(store):
        if r.face_id is not None:
            S.add_annotation(store, r.face_id, "ann", "label", ["happy" if r.face_id in (a[0].face_id, b[0].face_id) else "sad"])
    for seed in range(4):
        out = tmp_path / f"x{seed}"
        export(store, "csv", out, seed=seed, split=(0.34, 0.33, 0.33))
        rows = {r["image"]: r for r in csv.DictReader(open(out / "labels.csv", encoding="utf-8")) if r["split"]}
        assert rows["copy_a.jpg"]["split"] == rows["copy_b.jpg"]["split"], (seed, rows)
        assert rows["copy_a.jpg"]["dup_group"] == rows["copy_b.jpg"]["dup_group"] == str(a[0].dup_group)
        assert "text" in rows["captioned.png"]["flags"].split(",") and float(rows["captioned.png"]["text_share"]) > 0


def test_backfill_measures_what_autolabel_measured(project, tmp_path):
    store, base = project
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with sqlite3.connect(base / "p.db") as src, sqlite3.connect(tmp_path / "old.db") as dst:
        src.backup(dst)  # the write-ahead log included
    before = {r.face_id or -r.image_id: (r.text_share, r.nonphoto, r.dup_group, r.text_near, r.flags)
              for r in S.iter_face_records(store)}
    old = S.Store(url)
    with old.session() as s:  # as if stored before the cleaning step existed
        s.execute(update(S.Image).values(phash=None, text_share=None, nonphoto=None, dup_group=None))
        s.execute(update(S.Face).values(phash=None, text_near=None))
    todo = {j.image_id for j in S.images_to_clean(old)}
    assert len(todo) == 7 and todo == {r.image_id for r in S.iter_face_records(old) if r.status == "ingested"}
    rep = backfill(old, progress=False)
    assert rep.measured == 7 and rep.groups == 2 and rep.text_faces == 1 and not rep.unreadable
    after = {r.face_id or -r.image_id: (r.text_share, r.nonphoto, r.dup_group, r.text_near, r.flags)
             for r in S.iter_face_records(old)}
    assert after == before
    assert S.images_to_clean(old) == [] and backfill(old, progress=False).measured == 0  # nothing left to do


def test_report_command_writes_the_page(project, tmp_path):
    from labeler.reports.datastore import face_stats, write_report

    store, _ = project
    stats = list(face_stats(store))
    assert len(stats) == sum(1 for r in S.iter_face_records(store) if r.face_id is not None)
    assert sum("text" in s.flags for s in stats) == 1 and sum("near_dup" in s.flags for s in stats) >= 2
    assert all(0 <= s.brightness <= 255 for s in stats)
    s = write_report(store, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert s.n_faces == len(stats) and "FER2013" in page and page.count("<svg") >= 8


def test_autolabel_without_cleaning_leaves_it_to_the_backfill(tmp_path):
    _save(_rgb("smiling_astronaut.png"), tmp_path / "in" / "a.jpg")
    store = S.Store(f"sqlite:///{tmp_path / 'n.db'}")
    Autolabeler(store, Config(), load_rules(), clean=False).run(tmp_path / "in", progress=False)
    (r,) = [r for r in S.iter_face_records(store) if r.face_id is not None]
    assert r.nonphoto is None and r.text_near is None and r.dup_group is None
    assert [j.image_id for j in S.images_to_clean(store)] == [r.image_id]
    assert backfill(store, progress=False).measured == 1 and S.images_to_clean(store) == []


def test_clean_and_report_commands(project, tmp_path, capsys):
    from labeler.cli import main

    _, base = project
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with sqlite3.connect(base / "p.db") as src, sqlite3.connect(tmp_path / "c.db") as dst:
        src.backup(dst)
    assert main(["clean", "--db", url, "-q"]) == 0
    assert "images measured:      0" in capsys.readouterr().out  # autolabel measured them all
    out = tmp_path / "r.html"
    assert main(["report", "--db", url, "--out", str(out)]) == 0
    assert f"written to {out}" in capsys.readouterr().out and "<svg" in out.read_text(encoding="utf-8")
    assert main(["report", "--db", str(tmp_path / "typo.db"), "--out", str(out)]) == 2  # no empty database made
    assert capsys.readouterr().err.startswith("labeler: error:") and not (tmp_path / "typo.db").exists()


def test_by_default_text_is_looked_for_only_before_auto_accept(tmp_path, capsys):
    """The default ([clean] text = "before_auto"): autolabel measures hashes and non-photo score on
    every image but looks for text on none while no bucket certifies; `labeler route` at a target
    the buckets' priors reach looks for text on exactly the images of the faces it then
    auto-accepts: the captioned face goes to review for its caption, its plain twin is accepted."""
    from labeler.cli import main

    first, second = tmp_path / "first", tmp_path / "second"
    _photos(first)
    url = f"sqlite:///{tmp_path / 'd.db'}"
    store = S.Store(url)
    Autolabeler(store, Config(), load_rules()).run(first, progress=False)
    _captioned(store, first, second)
    rep = Autolabeler(store, Config(), load_rules()).run(second, progress=False)
    recs = [r for r in S.iter_face_records(store) if r.status == "ingested"]
    assert rep.text_checked == 0 and all(r.route != "auto" for r in recs)
    assert all(r.nonphoto is not None and r.dup_group is not None and r.text_share is None for r in recs)
    assert all(r.text_near is None for r in recs if r.face_id is not None)
    assert S.awaiting_text(store) == []

    target = 0.85  # the buckets' priors reach it (--method bucket: no audit needed)
    pol = replace(Config().routing, target_precision=target, method="bucket")
    waiting = set(S.awaiting_text(store, pol))
    cap, plain = _faces(store, "captioned.png")[0], _faces(store, "plain.jpg")[0]
    assert {cap.image_id, plain.image_id} <= waiting and len(waiting) < len({r.image_id for r in recs})
    assert main(["route", "--db", url, "--target-precision", str(target), "--method", "bucket"]) == 0
    assert f"text looked for before auto-accept: {len(waiting)} images, found on or beside 1 faces" in capsys.readouterr().out
    after = {r.face_id or -r.image_id: r for r in S.iter_face_records(store) if r.status == "ingested"}
    cap, plain = after[cap.face_id], after[plain.face_id]
    assert cap.text_near is True and cap.route == "review" and "text on or beside the face" in cap.reason
    assert plain.text_near is False and plain.route == "auto"
    for r in after.values():  # text was looked for exactly on the images of the faces that were waiting
        assert (r.text_share is not None) == (r.image_id in waiting)
        assert r.route != "auto" or r.text_near is False
    assert S.awaiting_text(store, pol) == []  # a second route has nothing to look for
    assert main(["route", "--db", url, "--target-precision", str(target), "--method", "bucket"]) == 0
    assert "text looked for" not in capsys.readouterr().out
    # `labeler clean --text`: every image the text was not looked for on
    images = {r.image_id for r in after.values()}
    assert backfill(store, pol, progress=False, text=True).measured == len(images - waiting)
    assert all(r.text_share is not None for r in S.iter_face_records(store) if r.status == "ingested")


def test_clean_reopens_a_name_that_is_not_utf8_and_prints_any_name_on_one_line(tmp_path, capsys):
    """Issue 35: a file name with bytes that are not UTF-8 and a newline is stored (escaped), and
    `labeler clean --text` reads it again from its stored path; a name that no longer reads is
    shown with its newline escaped, on the report's one line."""
    import os

    from labeler.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    data = (SAMPLE / "smiling_astronaut.png").read_bytes()
    odd = os.fsencode(folder) + b"/smiling\nastro_caf\xe9_\xff.png"
    gone = os.fsencode(folder) + b"/gone\nface_\xfe.png"
    for raw in (odd, gone):
        with open(raw, "wb") as fh:
            fh.write(data if raw == odd else _encoded_jpeg(_rgb("笑顔_laughing-woman.jpg")))
    url = f"sqlite:///{tmp_path / 'n.db'}"
    store = S.Store(url)
    Autolabeler(store, Config(), load_rules(), clean=False).run(folder, progress=False)
    paths = sorted(p for r in S.iter_face_records(store) if r.face_id is not None for p in r.paths)
    assert len(paths) == 2 and all("\\x" in p for p in paths)  # stored with escapes: the database holds UTF-8
    os.remove(gone)
    assert main(["clean", "--db", url, "--text", "-q"]) == 0
    out = capsys.readouterr().out
    measured = {r.relpath: r.nonphoto for r in S.iter_face_records(store) if r.face_id is not None}
    assert measured["smiling\nastro_caf\\xe9_\\xff.png"] is not None  # read again through its stored path
    assert measured["gone\nface_\\xfe.png"] is None
    (line,) = [x for x in out.splitlines() if "no path reads any more" in x]
    assert line.startswith("not measured, no path reads any more: 1 (e.g. ") and line.endswith("/gone\\nface_\\xfe.png)")
    assert "gone\n" not in out and "smiling\n" not in out


def _encoded_jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1])
    assert ok
    return buf.tobytes()
