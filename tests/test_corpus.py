"""The bad-input corpus (tests/bad_corpus.py) autolabels without a crash, every file stored (fine,
or broken with a reason) or listed in the run's report, and the run's counts equal `labeler status`."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from labeler.cli import main
from labeler.config import Config
from labeler.ingest.rules import load_rules
from labeler.ingest.walk import db_path
from labeler.pipeline import Autolabeler
from labeler.store import Image, ImagePath, Store

from .bad_corpus import make_corpus, unlock


@pytest.fixture
def corpus(tmp_path):
    c = make_corpus(tmp_path / "corpus")
    yield c
    unlock(c)


def _status(db: str, capsys) -> dict[str, int]:
    capsys.readouterr()
    assert main(["status", "--db", db]) == 0
    out: dict[str, int] = {}
    for line in capsys.readouterr().out.splitlines()[1:]:
        text, _, n = line.rstrip().rpartition(" ")
        if n.isdigit():
            out[text.strip()] = int(n)
    return out


@pytest.mark.both_backends
def test_every_file_stored_or_reported_and_counts_match_status(corpus, db_url, capsys):
    for what, why in corpus.skipped.items():
        print(f"corpus part skipped: {what}: {why}")
    db = db_url
    store = Store(db)
    rep = Autolabeler(store, Config(), load_rules()).run(corpus.root, progress=False)
    ing = rep.ingest
    with store.session() as s:
        stored = {p: (st, err) for p, st, err in s.execute(select(ImagePath.path, Image.status, Image.error).join(Image))}
    reported = dict(ing.not_stored)

    def listed(path: str) -> bool:  # itself, or a folder above it that the walk could not list
        return path in reported or any(path.startswith(p + "/") for p, _w in ing.walk_errors())

    for path, what in corpus.expect.items():
        key = db_path(path)
        if what == "ok":
            assert stored.get(key, ("missing",))[0] == "ingested", path
        elif what == "broken":
            st, err = stored[key]
            assert st == "broken" and err, path
        else:
            assert listed(path) and key not in stored, path
    assert len(stored) == corpus.count("ok") + corpus.count("broken")  # nothing stored that is not in the corpus
    assert ing.seen == len(stored) + ing.skipped_other  # every file the walk yielded: stored or "not an image"
    # the run's counts are the status counts
    st = _status(db, capsys)
    assert ing.broken == st["broken"] == rep.routes["broken"] == st["broken (routed)"]
    assert ing.new_images == st["distinct images"] and ing.new_images + ing.new_paths == st["paths"]
    assert rep.images_detected == st["ingested (decodable)"] == st["face detection done"]
    assert rep.faces == st["faces (labeling units)"] and rep.no_face == st["no face"]
    # a second run: the broken paths are read again, nothing changes, and the counts still agree
    rep2 = Autolabeler(store, Config(), load_rules()).run(corpus.root, progress=False)
    assert rep2.ingest.retried == corpus.count("broken") and rep2.ingest.new_images == rep2.ingest.new_paths == 0
    assert rep2.ingest.broken == ing.broken and _status(db, capsys) == st
    print(f"corpus: {len(corpus.expect)} entries, stored ok {corpus.count('ok')}, stored broken "
          f"{corpus.count('broken')} (as {ing.broken} distinct broken images), reported {corpus.count('reported')}")


def test_corpus_script_writes_what_it_lists(tmp_path):
    c = make_corpus(tmp_path / "c")
    try:
        for path in c.expect:
            assert os.path.lexists(path) or len(path) > 4096, path
        assert c.count("ok") >= 10 and c.count("broken") >= 8 and c.count("reported") >= 4
    finally:
        unlock(c)
