"""The partitioned run (labeler.fanout): the driver lists, the workers read, hash, decode, detect
and propose their own files, the driver records in batches. It must store exactly what the
sequential run stores (sample_data/: broken files, a content at two paths, a video, not-images),
in this process, in worker processes, from a ``file://`` URI through fsspec, and split over two
drivers (``--part``), also two at once on one PostgreSQL database."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
from sqlalchemy import select

from labeler.config import Config, ModelConfig
from labeler.errors import LabelerError
from labeler.fanout import Part
from labeler.ingest.rules import load_rules
from labeler.pipeline import Autolabeler
from labeler.store import Image, ImagePath, Store

from .conftest import SAMPLE
from .test_races import _guard, _race
from .test_workers import _counts, faces_by_content


def images_by_content(url: str) -> list[tuple]:
    """Every image row and its paths, without ids (they differ between runs)."""
    with Store(url).session() as s:
        paths: dict[int, list[str]] = {}
        for iid, rel in s.execute(select(ImagePath.image_id, ImagePath.relpath)):
            paths.setdefault(iid, []).append(rel)
        rows = s.execute(select(Image.id, Image.sha256, Image.status, Image.error, Image.width, Image.height, Image.format,
                                Image.rule_state, Image.rule_label, Image.rule_words, Image.detected, Image.phash,
                                Image.nonphoto, Image.text_share)).all()
    return sorted((*r[1:], tuple(sorted(paths.get(r[0], [])))) for r in rows)


def same_rows(url: str, ref: str) -> None:
    assert faces_by_content(url) == faces_by_content(ref)
    assert images_by_content(url) == images_by_content(ref)
    assert _counts(url) == _counts(ref)  # images, paths, faces, proposals, decisions


def _report(rep) -> tuple:
    i = rep.ingest
    return (i.seen, i.new_images, i.new_paths, i.unchanged, i.broken, i.skipped_other, sorted(i.not_stored),
            rep.images_detected, rep.faces, rep.no_face, dict(rep.routes))


def test_fanout_in_this_process_stores_what_the_sequential_run_stores(tmp_path, sample_db_path):
    url = f"sqlite:///{tmp_path / 'fan.db'}"
    seq_url = f"sqlite:///{tmp_path / 'seq.db'}"
    seq = Autolabeler(Store(seq_url), Config(), load_rules(), fanout=False).run(SAMPLE, progress=False)
    rep = Autolabeler(Store(url), Config(), load_rules(), fanout=True, partition=3).run(SAMPLE, progress=False)
    assert rep.fanout.files == seq.ingest.seen - len([1 for _, why in seq.ingest.not_stored if "regular" in why])
    assert _report(rep) == _report(seq)
    same_rows(url, seq_url)
    same_rows(url, f"sqlite:///{sample_db_path}")
    again = Autolabeler(Store(url), Config(), load_rules(), fanout=True).run(SAMPLE, progress=False)
    assert again.ingest.new_images == 0 and again.images_detected == 0 and again.faces == 0
    # read again: broken paths (they may have been fixed) and files that are not images (never stored)
    not_images = [p for p, why in again.ingest.not_stored if why.startswith("not an image")]
    assert again.fanout.files == again.ingest.retried + len(not_images) > 0
    same_rows(url, seq_url)


def test_fanout_with_two_worker_processes_and_a_killed_run(tmp_path, sample_db_path):
    """Results come back in any order; a run killed while committing resumes, the rerun adds
    nothing. At a target precision the priors reach, some faces are about to be auto-accepted: the
    workers read their images again to look for text on them, as the sequential run does here."""
    src = tmp_path / "in"
    shutil.copytree(SAMPLE, src)
    routing = replace(Config().routing, target_precision=0.85, method="bucket")
    url = f"sqlite:///{tmp_path / 'w2.db'}"
    al = Autolabeler(Store(url), Config(model=ModelConfig(batch_images=3), routing=routing), load_rules(), workers=2,
                     fanout=True, partition=2)
    real_flush, calls = al.flush, {"n": 0}

    def dying_flush():
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while committing the second batch
        real_flush()

    al.flush = dying_flush
    with pytest.raises(KeyboardInterrupt):
        al.run(src, progress=False)
    cfg = Config(routing=routing)
    rep = Autolabeler(Store(url), cfg, load_rules(), workers=2, fanout=True, partition=2).run(src, progress=False)
    assert rep.images_detected > 0  # the killed run's undetected images, read again by the workers
    ref = f"sqlite:///{tmp_path / 'ref.db'}"
    seq = Autolabeler(Store(ref), cfg, load_rules(), fanout=False).run(src, progress=False)
    assert rep.text_checked == seq.text_checked > 0 and rep.routes.get("auto", 0) + rep.rerouted > 0
    same_rows(url, ref)
    Autolabeler(Store(url), cfg, load_rules(), workers=2, fanout=True).run(src, progress=False)
    same_rows(url, ref)


def test_a_file_uri_root_is_read_through_fsspec(tmp_path, sample_db_path):
    pytest.importorskip("fsspec", reason="fsspec is not installed (pip install 'labeler[remote]')")
    src = tmp_path / "in"
    shutil.copytree(SAMPLE, src, ignore=shutil.ignore_patterns("video"))  # a video under a URI is not sampled
    url, ref = f"sqlite:///{tmp_path / 'uri.db'}", f"sqlite:///{tmp_path / 'ref.db'}"
    rep = Autolabeler(Store(url), Config(), load_rules()).run(f"file://{src}", progress=False)
    assert rep.fanout is not None and rep.fanout.files == rep.ingest.seen
    Autolabeler(Store(ref), Config(), load_rules(), fanout=False).run(src, progress=False)
    assert faces_by_content(url) == faces_by_content(ref)
    assert images_by_content(url) == images_by_content(ref)  # the same relative paths, so the same rules
    with Store(url).session() as s:
        assert all(p.startswith(f"file://{src}/") for p in s.scalars(select(ImagePath.path)))
    again = Autolabeler(Store(url), Config(), load_rules()).run(f"file://{src}", progress=False)
    not_images = [p for p, why in again.ingest.not_stored if why.startswith("not an image")]
    assert again.images_detected == 0 and again.fanout.files == again.ingest.retried + len(not_images) < rep.fanout.files


def test_parts_split_every_file_once():
    rels = [f"d{i % 7}/img_{i}.jpg" for i in range(3000)]
    for n in (1, 2, 3, 5):
        parts = [Part(k, n) for k in range(n)]
        taken = [sum(p.takes(r) for p in parts) for r in rels]
        assert taken == [1] * len(rels)
        shares = [sum(p.takes(r) for r in rels) / len(rels) for p in parts]
        assert all(abs(x - 1 / n) < 0.05 for x in shares), shares
    assert Part.parse("2/3") == Part(1, 3) and str(Part(1, 3)) == "2/3"
    for bad in ("0/2", "3/2", "1", "a/b", "1/0"):
        with pytest.raises(LabelerError, match="--part: expected K/N"):
            Part.parse(bad)


def test_two_parts_one_after_the_other_store_what_one_run_stores(tmp_path, sample_db_path):
    url = f"sqlite:///{tmp_path / 'parts.db'}"
    reps = [Autolabeler(Store(url), Config(), load_rules(), part=Part(k, 2)).run(SAMPLE, progress=False) for k in (0, 1)]
    assert all(r.ingest.seen > 2 for r in reps)  # both parts had files
    same_rows(url, f"sqlite:///{sample_db_path}")


def _part_driver(i, barrier, url, folder):
    from dataclasses import replace

    from labeler.config import Config
    from labeler.fanout import Part
    from labeler.ingest.rules import load_rules
    from labeler.pipeline import Autolabeler
    from labeler.store import Store

    import labeler.store as S

    cfg = Config(routing=replace(Config().routing, target_precision=0.85, method="bucket"))  # some faces wait for a text check
    al = Autolabeler(Store(url), cfg, load_rules(), part=Part(i, 2), partition=2)
    real = S.exclusive

    def together(store, name):  # both drivers reach the end of their run before either goes on
        barrier.wait(timeout=300)
        return real(store, name)

    S.exclusive = together
    barrier.wait(timeout=300)
    rep = al.run(folder, progress=False)
    return {"seen": rep.ingest.seen, "faces": rep.faces}


part_driver = _guard(_part_driver)
part_driver.__name__ = part_driver.__qualname__ = "part_driver"
part_driver.__module__ = __name__  # spawn finds it here, by name


@pytest.mark.postgres
@pytest.mark.slow  # two processes that each load the models: ~30 s on a shared machine
def test_two_drivers_at_once_on_postgresql_store_what_one_driver_stores(pg_url, tmp_path):
    """Two drivers, one per half of a folder, at once against one PostgreSQL database; the folder
    holds the same content under both halves (sample_data/copies/ and a copy of it), so the two
    race on recording it; at a target precision the priors reach, both ends of run look for text
    and re-route: the drivers reach them together, and take turns (else both append the same
    decisions)."""
    src = tmp_path / "in"
    shutil.copytree(SAMPLE, src)
    shutil.copytree(SAMPLE / "copies", src / "copies_again")
    results = _race(part_driver, 2, pg_url, src)
    assert all(r[2]["seen"] > 2 for r in results)
    ref = f"sqlite:///{tmp_path / 'one.db'}"
    cfg = Config(routing=replace(Config().routing, target_precision=0.85, method="bucket"))
    rep = Autolabeler(Store(ref), cfg, load_rules(), fanout=True).run(src, progress=False)
    assert rep.text_checked > 0
    same_rows(pg_url, ref)


def test_cli_part_and_uri_errors_are_one_line(tmp_path, capsys):
    from labeler.cli import main

    db = tmp_path / "x.db"
    assert main(["autolabel", str(SAMPLE), "--part", "3/2", "--db", str(db), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labeler: error: --part: expected K/N") and "\n" not in err
    assert not db.exists()  # refused before a database is made
    pytest.importorskip("fsspec")
    assert main(["autolabel", f"file://{tmp_path}/nothing-here", "--db", str(db), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labeler: error: file://") and "no such file or folder" in err and "\n" not in err


def _db_state(url: str) -> tuple:
    with Store(url).session() as s:
        imgs = sorted(s.execute(select(Image.sha256, Image.status, Image.error, Image.width, Image.rule_state, Image.rule_label,
                                       Image.rule_words, Image.rule_source)).all())
        sha = dict(s.execute(select(Image.id, Image.sha256)).all())
        paths = sorted((p, sha[i], rel, m, sz) for p, i, rel, m, sz in
                       s.execute(select(ImagePath.path, ImagePath.image_id, ImagePath.relpath, ImagePath.mtime, ImagePath.size_bytes)))
    return imgs, paths


def test_record_paths_in_batches_is_record_path_file_by_file(tmp_path):
    """Over many random batches (contents seen twice in a batch, files whose content changed, broken
    images that decode now, paths known before, the same path twice): the batched writer stores
    exactly what record_path stores file by file in (sha256, path) order, and says the same about
    each file (created, new/same/moved, fixed)."""
    import random

    from labeler.ingest.walk import rules_function
    from labeler.store import PathRecord, record_path, record_paths
    from labeler.store.schema import path_key

    rules_for = rules_function(load_rules())
    words = ["happy", "sad-face", "smiling", "photo", "angry_man", "x"]
    Store(f"sqlite:///{tmp_path / 'empty.db'}").engine.dispose()  # migrated once, copied for each draw
    for seed in range(40):
        rng = random.Random(seed)
        batch_url, one_url = f"sqlite:///{tmp_path / f'b{seed}.db'}", f"sqlite:///{tmp_path / f'o{seed}.db'}"
        for u in (batch_url, one_url):
            shutil.copyfile(tmp_path / "empty.db", u.removeprefix("sqlite:///"))
        batch_store, one_store = Store(batch_url), Store(one_url)

        def item(k):
            sha = f"{rng.randrange(12):064x}"
            ok = rng.random() < 0.8
            facts = {"width": 10, "height": 10, "format": "JPEG" if ok else "", "status": "ingested" if ok else "broken",
                     "error": "" if ok else "truncated"}
            rel = f"d{k % 3}/{rng.choice(words)}_{rng.randrange(15)}.jpg"
            return PathRecord(sha, 100, facts, f"/root/{rel}", "/root", rel, float(rng.randrange(3)), 100)

        for _ in range(3):  # three runs: later ones meet known paths and contents
            items = [item(k) for k in range(rng.randrange(1, 20))]
            got = record_paths(batch_store, items, rules_for)
            order = sorted(range(len(items)), key=lambda i: (items[i].sha, path_key(items[i].path)))
            want = [None] * len(items)
            for i in order:
                r = items[i]
                want[i] = record_path(one_store, r.sha, r.size, r.facts, r.path, r.root, r.relpath, r.mtime, r.path_size, rules_for)
            ids_b = {r.image_id for r in got}
            assert [(r.created, r.path, r.fixed) for r in got] == [(r.created, r.path, r.fixed) for r in want], seed
            assert len(ids_b) == len({r.image_id for r in want})
            assert _db_state(batch_url) == _db_state(one_url), seed


def test_a_path_that_moves_to_new_content_takes_its_name_off_the_old_image(tmp_path):
    """Rule fields come from the names of all of an image's paths: when the file at a path changes
    content, the image it held before loses that name (it kept "happy" before)."""
    from labeler.ingest.walk import rules_function
    from labeler.store import PathRecord, record_path, record_paths

    rules_for = rules_function(load_rules())
    facts = {"width": 10, "height": 10, "format": "JPEG", "status": "ingested", "error": ""}
    a, b = "a" * 64, "b" * 64
    for batched in (False, True):
        store = Store(f"sqlite:///{tmp_path / f'm{batched}.db'}")
        for sha, rel, mtime in ((a, "happy_1.jpg", 1.0), (a, "plain.jpg", 1.0), (b, "happy_1.jpg", 2.0)):
            r = PathRecord(sha, 1, facts, f"/r/{rel}", "/r", rel, mtime, 1)
            if batched:
                record_paths(store, [r], rules_for)
            else:
                record_path(store, r.sha, r.size, r.facts, r.path, r.root, r.relpath, r.mtime, r.path_size, rules_for)
        with store.session() as s:
            rules = dict(s.execute(select(Image.sha256, Image.rule_state)).all())
        assert rules == {a: "none", b: "labeled"}, batched
