import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from labeler.ingest.imageio import DecodeError, decode
from labeler.ingest.walk import ingest
from labeler.ingest.rules import load_rules
from labeler.store import Image, ImagePath

from .conftest import SAMPLE


def _images(store):
    with store.session() as s:
        return {p.relpath: (i.status, i.error, i.rule_state, i.rule_label, i.format, i.width, i.height)
                for i, p in s.execute(select(Image, ImagePath).join(ImagePath))}


@pytest.mark.both_backends
def test_sample_data_every_file_ingested_or_broken_with_reason(store):
    rep = ingest(store, SAMPLE, load_rules(), progress=False)
    rows = _images(store)
    # not images, skipped: the README.md files and video/two_shots.json; the video is stored (by content)
    others = [p for p in SAMPLE.rglob("*") if p.is_file() and p.suffix in (".md", ".json")]
    assert len(others) == 3
    assert rep.broken == 3 and rep.skipped_other == len(others)
    assert not any(p.endswith((".md", ".json")) for p in rows)
    assert rows[os.path.join("video", "two_shots.mp4")][0] == "ingested" and rows[os.path.join("video", "two_shots.mp4")][4] == "mp4"
    assert rows["empty.jpg"][:2] == ("broken", "empty file (0 bytes)")
    assert rows["angry_truncated.jpg"][0] == "broken" and "truncated" in rows["angry_truncated.jpg"][1]
    assert rows["notes_not_an_image.png"][:2] == ("broken", "not an image (unknown format)")
    # wrong extension: decided by content
    assert rows["amazed_astronaut.jpg"][0] == "ingested" and rows["amazed_astronaut.jpg"][4] == "PNG"
    # duplicate bytes at two paths: one image, both paths kept
    assert rows["smiling_astronaut.png"] == rows[os.path.join("copies", "smiling_astronaut.png")]
    assert rep.new_images == 17 and rep.new_paths == 1
    # rules
    assert rows["sad-woman-happy-face.jpg"][2:4] == ("ambiguous", None)
    assert rows["not-happy-astronaut.jpg"][2:4] == ("none", None)
    assert rows["happy_team_photo.jpg"][2:4] == ("labeled", "happy")
    assert rows["笑顔_laughing-woman.jpg"][2:4] == ("labeled", "happy")
    # EXIF orientation applied: stored 360 wide x 360 high rotated -> shown upright, same size (square)
    assert rows["smiling_rotated_exif.jpg"][5:7] == (360, 360)


@pytest.mark.both_backends
def test_reingest_is_idempotent(store):
    ingest(store, SAMPLE, load_rules(), progress=False)
    before = store.counts()
    rep = ingest(store, SAMPLE, load_rules(), progress=False)
    # the 3 broken files are read again (they might have been fixed); the rest is skipped
    assert rep.new_images == 0 and rep.new_paths == 0 and rep.unchanged == 15 and rep.retried == 3  # 14 images, 1 video
    assert rep.broken == 3 == before["broken"]
    assert store.counts() == before


def test_killed_run_resumes_without_duplicates(store, tmp_path):
    src = tmp_path / "in"
    shutil.copytree(SAMPLE, src)
    calls = {"n": 0}

    def boom(image_id, decoded):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the process is killed mid-batch

    with pytest.raises(KeyboardInterrupt):
        ingest(store, src, load_rules(), on_image=boom, progress=False)
    partial = store.counts()["paths"]
    assert 0 < partial < 18
    ingest(store, src, load_rules(), progress=False)
    c = store.counts()
    assert c["paths"] == 18 and c["images"] == 17  # 16 images (one at two paths) and the video


def test_exif_rotation_is_applied():
    rgb = np.zeros((40, 80, 3), np.uint8)
    rgb[:, :40] = 255  # left half white
    buf = io.BytesIO()
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 cw to display
    PILImage.fromarray(rgb).save(buf, format="JPEG", exif=exif)
    d = decode(buf.getvalue())
    assert (d.width, d.height) == (40, 80) and d.exif_rotated
    assert d.rgb[:30].mean() > 200 and d.rgb[-30:].mean() < 50  # white half now on top


def test_decode_odd_inputs():
    with pytest.raises(DecodeError, match="empty"):
        decode(b"")
    with pytest.raises(DecodeError, match="not an image"):
        decode(b"hello world, no pixels here")
    # a decompression bomb: a PNG header that claims a huge size
    buf = io.BytesIO()
    PILImage.new("L", (12000, 12000)).save(buf, format="PNG")
    with pytest.raises(DecodeError, match="decompression bomb"):
        decode(buf.getvalue())
    # grayscale, palette with transparency, 16-bit: all become RGB
    for im in (PILImage.new("L", (5, 5), 7), PILImage.new("P", (5, 5)), PILImage.new("I;16", (5, 5), 300), PILImage.new("RGBA", (5, 5))):
        b = io.BytesIO()
        im.save(b, format="PNG")
        assert decode(b.getvalue()).rgb.shape == (5, 5, 3)


@pytest.mark.both_backends
def test_changed_file_at_known_path_gets_new_content(store, tmp_path):
    p = tmp_path / "happy.png"
    PILImage.new("RGB", (20, 20), (10, 10, 10)).save(p)
    ingest(store, tmp_path, load_rules(), progress=False)
    PILImage.new("RGB", (20, 20), (200, 10, 10)).save(p)
    os.utime(p, (1, 1))
    ingest(store, tmp_path, load_rules(), progress=False)
    c = store.counts()
    assert c["paths"] == 1 and c["images"] == 2


def test_rule_words_with_negation_are_stored_and_read_back_in_one_form(store, tmp_path):
    from labeler.store import decode_rule_words, encode_rule_words, iter_face_records
    from labeler.types import RuleWord

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(SAMPLE / "smiling_astronaut.png", src / "not-sad-but-smiling.png")
    shutil.copy(SAMPLE / "smiling_astronaut.png", src / "copy of the same.png")  # same content, second path
    ingest(store, src, load_rules(), progress=False)
    (rec,) = list(iter_face_records(store))
    assert (rec.rule_state, rec.rule_label) == ("labeled", "happy")
    assert rec.rule_words == (RuleWord("smiling", "happy"), RuleWord("not sad", "", True))
    assert rec.words == ("smiling",)
    with store.session() as s:
        stored = s.scalar(select(Image.rule_words))
    assert stored == '[["smiling", "happy"], ["!not sad", ""]]'
    assert decode_rule_words(encode_rule_words(rec.rule_words)) == rec.rule_words


@pytest.mark.both_backends
def test_links_fifo_and_unlistable_paths_are_stored_or_reported(store, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    PILImage.new("RGB", (20, 20), (1, 2, 3)).save(src / "ok.png")
    os.symlink("loop.jpg", src / "loop.jpg")
    os.symlink("missing.jpg", src / "dangling.jpg")
    os.symlink(src / "ok.png", src / "link_to_ok.png")
    os.mkfifo(src / "pipe.jpg")
    os.symlink(tmp_path, src / "folder_link")
    (src / ".hidden.png").write_bytes(b"x")
    rep = ingest(store, src, load_rules(), progress=False)  # the FIFO must not hang the run
    rows = _images(store)
    assert rows["loop.jpg"][:2] == ("broken", "symbolic link loop (the link points back at itself)")
    assert rows["dangling.jpg"][0] == "broken" and rows["dangling.jpg"][1].startswith("dangling symbolic link")
    assert rows["pipe.jpg"][:2] == ("broken", "not a regular file (FIFO)")
    assert rows["link_to_ok.png"] == rows["ok.png"] and rows["ok.png"][0] == "ingested"
    assert rep.broken == store.counts()["broken"] == 3
    why = dict(rep.not_stored)
    assert why[str(src / "folder_link")] == "link to a folder (not followed)"
    assert why[str(src / ".hidden.png")] == "hidden file"
    assert rep.seen == 5 and len(rows) == 5
    text = "\n".join(rep.lines())
    assert "not stored:    1  link to a folder" in text and "broken:    1  symbolic link loop" in text


def test_unlistable_folder_is_reported(store, tmp_path):
    """A path over the system's limit (4,096 bytes) cannot be listed: the walk says so (this holds
    for root too, unlike a folder without read permission)."""
    src = tmp_path / "in"
    src.mkdir()
    PILImage.new("RGB", (20, 20), (1, 2, 3)).save(src / "ok.png")
    deep = _deep_folder(src, 4200)
    rep = ingest(store, src, load_rules(), progress=False)
    (bad,) = rep.walk_errors()
    assert bad[0] == deep and "path too long for the system" in bad[1]
    assert rep.new_images == 1 and any("cannot list folder" in line for line in rep.lines())


def _deep_folder(base, length: int) -> str:
    """Create folders under ``base`` until the path is over ``length`` characters; returns it."""
    fd = os.open(base, os.O_RDONLY)
    path = str(base)
    try:
        while len(path) <= length:
            name = "d" * 200
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, path = nfd, path + "/" + name
    finally:
        os.close(fd)
    return path


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: a permission error cannot be made")
def test_unreadable_file_is_retried_after_the_permission_is_fixed(store, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    p = src / "happy.png"
    PILImage.new("RGB", (20, 20), (1, 2, 3)).save(p)
    os.chmod(p, 0)
    ingest(store, src, load_rules(), progress=False)
    assert _images(store)["happy.png"][:2] == ("broken", "cannot read: Permission denied")
    os.chmod(p, 0o644)  # fixed: same size and mtime
    rep = ingest(store, src, load_rules(), progress=False)
    assert rep.new_images == 1 and _images(store)["happy.png"][0] == "ingested"
    c = store.counts()
    assert c["images"] == 1 and c.get("broken", 0) == 0


@pytest.mark.both_backends
def test_file_completed_later_replaces_its_broken_record(store, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    p = src / "upload.jpg"
    buf = io.BytesIO()
    PILImage.new("RGB", (64, 64), (9, 9, 9)).save(buf, format="JPEG")
    data = buf.getvalue()
    p.write_bytes(data[: len(data) // 3])  # an upload in progress
    rep1 = ingest(store, src, load_rules(), progress=False)
    assert rep1.broken == 1 == store.counts()["broken"]
    p.write_bytes(data)
    rep2 = ingest(store, src, load_rules(), progress=False)
    assert rep2.broken == 0 and rep2.new_images == 1
    c = store.counts()
    assert c["images"] == 1 and c["paths"] == 1 and c.get("broken", 0) == 0 and c["ingested"] == 1
    # a broken file whose bytes are unchanged is read again, even with the same size and mtime
    p.write_bytes(b"not an image")
    os.utime(p, (5, 5))
    ingest(store, src, load_rules(), progress=False)
    rep3 = ingest(store, src, load_rules(), progress=False)
    assert rep3.retried == 1 and rep3.broken == 1 and rep3.unchanged == 0
    assert store.counts()["images"] == 2  # the good content stays (it may carry labels); no orphan broken one


@pytest.mark.both_backends
def test_non_utf8_name_is_stored_escaped(store, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    raw = os.fsencode(src) + b"/caf\xe9_happy.png"
    PILImage.new("RGB", (20, 20), (1, 2, 3)).save(os.fsdecode(raw))
    rep = ingest(store, src, load_rules(), progress=False)
    assert rep.new_images == 1
    assert list(_images(store)) == ["caf\\xe9_happy.png"]
    assert ingest(store, src, load_rules(), progress=False).unchanged == 1


def test_read_failure_is_retried_with_size_and_mtime_unchanged(store, tmp_path, monkeypatch):
    """As root a permission error cannot be made, so the first read fails by hand (EACCES)."""
    from pathlib import Path

    import labeler.ingest.source as source

    src = tmp_path / "in"
    src.mkdir()
    p = src / "happy.png"
    PILImage.new("RGB", (20, 20), (1, 2, 3)).save(p)
    real = source.open_input

    def denied(path):
        if Path(path) == p:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(source, "open_input", denied)
    rep1 = ingest(store, src, load_rules(), progress=False)
    assert _images(store)["happy.png"][:2] == ("broken", "cannot read: Permission denied")
    assert rep1.broken == 1 == store.counts()["broken"]
    monkeypatch.setattr(source, "open_input", real)  # "fixed": the file itself did not change
    rep2 = ingest(store, src, load_rules(), progress=False)
    assert rep2.new_images == 1 and _images(store)["happy.png"][0] == "ingested"
    c = store.counts()
    assert c["images"] == 1 and c["paths"] == 1 and c.get("broken", 0) == 0  # no orphan broken image


def test_folder_that_cannot_be_listed_is_reported(store, tmp_path, monkeypatch):
    """An unreadable folder (EACCES made by hand: root reads any folder) is listed in the report,
    with the files beside it ingested as usual."""
    import labeler.ingest.walk as walk

    src = tmp_path / "in"
    (src / "locked").mkdir(parents=True)
    PILImage.new("RGB", (20, 20), (1, 2, 3)).save(src / "ok.png")
    PILImage.new("RGB", (20, 20), (3, 2, 1)).save(src / "locked" / "inside.png")
    real = os.scandir

    def scandir(path):
        if str(path) == str(src / "locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(walk.os, "scandir", scandir)
    rep = ingest(store, src, load_rules(), progress=False)
    assert rep.walk_errors() == [(str(src / "locked"), "cannot list folder: Permission denied (nothing under it was walked)")]
    assert rep.new_images == 1 and store.counts()["images"] == 1
    assert any("cannot list folder: Permission denied: " in line for line in rep.lines())
