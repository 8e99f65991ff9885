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
from labeler.store import Image, ImagePath, status_counts

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
    before = status_counts(store)
    rep = ingest(store, SAMPLE, load_rules(), progress=False)
    # the 3 broken files are read again (they might have been fixed); the rest is skipped
    assert rep.new_images == 0 and rep.new_paths == 0 and rep.unchanged == 15 and rep.retried == 3  # 14 images, 1 video
    assert rep.broken == 3 == before["broken"]
    assert status_counts(store) == before


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
    partial = status_counts(store)["paths"]
    assert 0 < partial < 18
    ingest(store, src, load_rules(), progress=False)
    c = status_counts(store)
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
    # a decompression bomb: a PNG header that claims a size over the one cap (refused before decoding)
    from labeler.ingest.imageio import MAX_PIXELS

    from .bad_corpus import bomb_png

    for w, h in ((30000, 20000), (60000, 60000)):
        with pytest.raises(DecodeError, match=f"decompression bomb: {w * h:,} pixels, over the limit of {MAX_PIXELS:,} pixels"):
            decode(bomb_png(w, h))
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
    c = status_counts(store)
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
    assert rep.broken == status_counts(store)["broken"] == 3
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
    c = status_counts(store)
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
    assert rep1.broken == 1 == status_counts(store)["broken"]
    p.write_bytes(data)
    rep2 = ingest(store, src, load_rules(), progress=False)
    assert rep2.broken == 0 and rep2.new_images == 1
    c = status_counts(store)
    assert c["images"] == 1 and c["paths"] == 1 and c.get("broken", 0) == 0 and c["ingested"] == 1
    # a broken file whose bytes are unchanged is read again, even with the same size and mtime
    p.write_bytes(b"not an image")
    os.utime(p, (5, 5))
    ingest(store, src, load_rules(), progress=False)
    rep3 = ingest(store, src, load_rules(), progress=False)
    assert rep3.retried == 1 and rep3.broken == 1 and rep3.unchanged == 0
    assert status_counts(store)["images"] == 2  # the good content stays (it may carry labels); no orphan broken one


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
    assert rep1.broken == 1 == status_counts(store)["broken"]
    monkeypatch.setattr(source, "open_input", real)  # "fixed": the file itself did not change
    rep2 = ingest(store, src, load_rules(), progress=False)
    assert rep2.new_images == 1 and _images(store)["happy.png"][0] == "ingested"
    c = status_counts(store)
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
    assert rep.new_images == 1 and status_counts(store)["images"] == 1
    assert any("cannot list folder: Permission denied: " in line for line in rep.lines())


# ---------------------------------------------------------------- large photos (issue 35)
def _encoded(rgb_or_im, fmt: str, orientation: int = 1, quality: int = 70) -> bytes:
    im = rgb_or_im if isinstance(rgb_or_im, PILImage.Image) else PILImage.fromarray(rgb_or_im)
    buf = io.BytesIO()
    kw = {"quality": quality} if fmt == "JPEG" else {"compress_level": 1}
    if orientation != 1:
        exif = PILImage.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_a_48_mp_phone_photo_is_decoded_reduced_and_stored_at_its_full_size(store, tmp_path):
    """8000x6000 (48 MP) was refused as a decompression bomb; now decoded at 1/2 a side in
    draft mode, its full size stored, the content where it is, EXIF rotation kept; a 25 MP PNG is
    reduced after decoding."""
    from labeler.ingest.imageio import WORK_PIXELS

    im = PILImage.new("RGB", (8000, 6000), (90, 90, 90))
    im.paste((250, 20, 20), (4000, 1000, 6000, 3000))  # a red block in the top right
    data = _encoded(im, "JPEG")
    del im
    d = decode(data)
    assert (d.width, d.height, d.format, d.scale) == (8000, 6000, "JPEG", 2.0) and d.rgb.shape == (3000, 4000, 3)
    assert d.rgb[600:1400, 2100:2900, 0].mean() > 230 and d.rgb[600:1400, 2100:2900, 1].mean() < 40
    assert d.rgb[2000:, :1500].mean() == pytest.approx(90, abs=3)
    d = decode(_encoded(PILImage.new("RGB", (8000, 6000), (90, 90, 90)), "JPEG", orientation=6))
    assert (d.width, d.height, d.scale, d.exif_rotated) == (6000, 8000, 2.0, True) and d.rgb.shape == (4000, 3000, 3)
    d = decode(_encoded(PILImage.new("RGB", (6000, 4200), (10, 200, 10)), "PNG"))
    assert (d.width, d.height, d.format, d.scale) == (6000, 4200, "PNG", 2.0) and d.rgb.shape[0] * d.rgb.shape[1] <= WORK_PIXELS
    # ingest stores it as an image of 8000x6000, not as broken
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "IMG_0001.jpg").write_bytes(data)
    rep = ingest(store, tmp_path / "in", progress=False)
    assert rep.new_images == 1 and rep.broken == 0
    from labeler.store import Image

    with store.session() as s:
        img = s.scalars(select(Image)).one()
        assert (img.status, img.width, img.height, img.error) == ("ingested", 8000, 6000, "")


def test_reduced_decoding_holds_at_most_max_pixels_and_reports_the_full_size():
    """Guarantee, over random sizes, formats and EXIF orientations (small images, a small
    ``max_pixels``): the decoded array holds at most ``max_pixels`` pixels whenever a reduction of
    at most 1/8 a side (JPEG) or 1/64 (other formats) gets there; ``width``/``height`` are the
    full oriented size; ``scale`` x the array's width is the full width; the picture is the same."""
    from labeler.ingest.imageio import reduction

    rng = np.random.default_rng(35)
    for draw in range(60):
        w, h = (int(v) for v in rng.integers(16, 400, 2))
        fmt = ("JPEG", "PNG")[draw % 2]
        orientation = int(rng.choice([1, 3, 6, 8]))
        max_pixels = int(rng.integers(200, 60000))
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[:, : w // 2] = 255  # left half white: where it ends up tells the orientation was applied
        d = decode(_encoded(rgb, fmt, orientation, quality=95), max_pixels=max_pixels)
        swap = orientation in (6, 8)
        assert (d.width, d.height) == ((h, w) if swap else (w, h)), (draw, w, h, orientation)
        k = reduction(w, h, max_pixels, (1, 2, 4, 8) if fmt == "JPEG" else tuple(range(1, 65)))
        fits = -(-w // k) * -(-h // k) <= max_pixels
        assert d.rgb.shape[0] * d.rgb.shape[1] <= max_pixels or not fits, (draw, w, h, max_pixels, d.rgb.shape)
        assert d.scale * d.rgb.shape[1] == pytest.approx(d.width) and d.scale >= 1
        assert abs(d.rgb.shape[0] * d.scale - d.height) <= d.scale
        white = {1: (slice(None), slice(0, 1)), 3: (slice(None), slice(-1, None)),
                 6: (slice(0, 1), slice(None)), 8: (slice(-1, None), slice(None))}[orientation]
        assert d.rgb[white].mean() > 200, (draw, orientation)


def test_stored_paths_lead_back_to_their_files(tmp_path):
    """Guarantee of labeler.ingest.paths, over random names of any bytes (not UTF-8 ones, newlines,
    controls): ``fs_path(db_path(p)) == p`` when ``p`` holds no literal backslash-x; the stored form
    is UTF-8 text; ``shown`` is one line. Files made with such names open through their stored path."""
    from labeler.ingest.paths import db_path, fs_path, shown

    rng = np.random.default_rng(3535)
    alphabet = [bytes([b]) for b in range(1, 256) if b != ord("/")] + ["é".encode(), "笑".encode(), b"\\x9f"]
    made = 0
    for _ in range(2000):
        name = b"".join(rng.choice(alphabet, int(rng.integers(1, 20))))
        p = os.fsdecode(os.fsencode(tmp_path) + b"/" + name)
        stored = db_path(p)
        stored.encode("utf-8")  # never raises: the database takes it
        assert "\n" not in shown(p) and "\r" not in shown(p) and "\x85" not in shown(p)
        if b"\\x" not in name:
            assert fs_path(stored) == p, name
            if made < 200 and name not in (b".", b".."):
                with open(fs_path(stored), "wb") as fh:
                    fh.write(b"x")
                assert os.path.exists(fs_path(stored))
                made += 1
    assert made == 200
