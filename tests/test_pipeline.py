"""autolabel end to end on sample_data/ (real images, real models)."""

import json
import shutil

import pytest
from sqlalchemy import func, select

from labeler.config import Config
from labeler.pipeline import Autolabeler
from labeler.ingest.rules import load_rules
from labeler.store import Annotation, DecisionRow, Face, Image, ImagePath, Proposal, Store, iter_face_records
from labeler import store as S

from .conftest import SAMPLE


def records_by_relpath(url):
    out = {}
    for r in iter_face_records(Store(url)):
        out.setdefault(r.relpath, []).append(r)
    return out


def test_sample_run_covers_every_path(sample_db):
    recs = records_by_relpath(sample_db)
    # single smiling face: found, keyword and model proposals stored
    (astro,) = recs["smiling_astronaut.png"]
    assert astro.face == 0 and astro.det_score > 0.95
    assert 150 < astro.x1 < 230 and 230 < astro.x2 < 320 and astro.rule_label == "happy"
    assert astro.model_probs and abs(sum(astro.model_probs.values()) - 1) < 1e-3
    # "smiling" names happy and the model agrees: an auto-accept candidate (issue 29: conformal selection
    # from a blind audit sample; a fresh database has no audit, so it waits in review)
    assert (astro.route, astro.kind, astro.bucket, astro.label) == ("review", "agree_low", "selection:happy", None), astro.reason
    assert astro.reason.startswith("rule (smiling) and model agree")
    # three faces, one keyword: the keyword labels none of them by itself
    team = recs["happy_team_photo.jpg"]
    assert len(team) == 3 and sorted(r.face for r in team) == [0, 1, 2]
    for r in team:
        # a candidate only on the model's own strong evidence (>= model_threshold, same class as the
        # name), and then in review until audits certify its bucket; never the keyword's label by itself
        pol = Config().routing
        strong = r.model_label == "happy" and r.model_prob >= pol.model_threshold and not set(r.flags) & set(pol.block_flags)
        assert (r.route, r.kind, r.label) == ("review", "multi_face", None), (r.model_label, r.model_prob, r.reason)
        assert (r.bucket == "selection:happy") == strong
    with Store(sample_db).session() as s:  # the rule proposal of each face of the group has no label
        rule_props = s.scalars(select(Proposal).where(Proposal.source_kind == "rule", Proposal.face_id.in_([r.face_id for r in team]))).all()
    assert len(rule_props) == 3 and all(p.label is None and "not given to faces" in p.detail for p in rule_props)
    # already-cropped 48 px face: the whole-image path
    (crop,) = recs["crops/happy_crop_48px.png"]
    assert crop.whole_image and "whole_image" in crop.flags
    # no face
    (coffee,) = recs["coffee_cup.jpg"]
    assert coffee.face is None and coffee.route == "no_face"
    # broken files are routed as broken with their reason
    (trunc,) = recs["angry_truncated.jpg"]
    assert trunc.route == "broken" and "truncated" in trunc.reason
    # ambiguous names go to review with the reason
    (amb,) = recs["sad-woman-happy-face.jpg"]
    assert amb.route == "review" and amb.reason.startswith("ambiguous name")


def _counts(url):
    s = Store(url)
    with s.session() as x:
        return tuple(x.scalar(select(func.count()).select_from(t)) for t in (Image, ImagePath, Face, Proposal, DecisionRow))


def test_killed_run_resumes_without_duplicates(tmp_path, sample_db_path):
    src = tmp_path / "in"
    shutil.copytree(SAMPLE, src)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    cfg = Config()
    al = Autolabeler(store, cfg, load_rules())
    real_flush = al.flush
    calls = {"n": 0}

    def dying_flush():
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while committing the second batch
        real_flush()

    al.cfg = Config(model=type(cfg.model)(batch_images=3))
    al.flush = dying_flush
    with pytest.raises(KeyboardInterrupt):
        al.run(src, progress=False)
    done_before = _counts(url)
    assert 0 < done_before[2]  # the first batch's faces were committed
    Autolabeler(Store(url), Config(), load_rules()).run(src, progress=False)
    assert _counts(url) == _counts(f"sqlite:///{sample_db_path}")
    # and a third run adds nothing at all
    Autolabeler(Store(url), Config(), load_rules()).run(src, progress=False)
    assert _counts(url) == _counts(f"sqlite:///{sample_db_path}")


def test_new_model_reproposes_and_keeps_human_labels(sample_db, tmp_path):
    from labeler.fer.resolver import load_model
    from labeler.fer.cards import default_models_dir, write_card

    store = Store(sample_db)
    on_video = S.video_face_ids(store)  # sample_data's clip: its faces keep the proposals their tracks were built on
    with store.session() as s:
        fid = s.scalar(select(Face.id).where(Face.id.not_in(on_video)).order_by(Face.id))
        s.add(Annotation(face_id=fid, annotator="ann", action="label", labels=["sad"], source="ui"))
    # a second model: the same weights under another name/version, as a user would drop it in
    card = json.loads((default_models_dir() / "fer_mini_xception.json").read_text())
    shutil.copyfile(default_models_dir() / card["file"], tmp_path / "other.onnx")
    card.update(name="other-fer", version="2", file="other.onnx")
    write_card(tmp_path / "other.json", card)
    other = load_model(str(tmp_path / "other.json"))
    al = Autolabeler(store, Config(), load_rules(), model=other)
    n = al.repropose(only_stale=True)
    with store.session() as s:
        nfaces = s.scalar(select(func.count(Face.id)))
        anns = s.scalars(select(Annotation)).all()
    assert on_video and n == nfaces - len(on_video) - 1  # every photo face but the human-labeled one
    assert [(a.face_id, a.labels) for a in anns] == [(fid, ["sad"])]
    recs = {r.face_id: r for r in iter_face_records(store) if r.face_id}
    assert recs[fid].label == "sad" and recs[fid].label_source == "human:ann"
    assert all(r.model_source == other.ident for f, r in recs.items() if f != fid and f not in on_video)
    assert all(recs[f].model_source != other.ident and recs[f].route == "track" for f in on_video)
    assert al.repropose(only_stale=True) == 0  # nothing stale any more


def test_reroute_adds_decisions_only_where_the_policy_changes_them(sample_db):
    from dataclasses import replace

    from labeler.routing import evidence_for, route

    store = Store(sample_db)
    same = Autolabeler(store, Config(), load_rules(), model=object(), detector=object())
    assert same.reroute() == 0  # the policy that routed them: nothing changes
    # issue 12: nothing is auto-accepted on a fresh database at 0.95; at a target of 0.5 the buckets'
    # priors certify, so the candidates are auto-accepted first
    loose = replace(Config(), routing=replace(Config().routing, target_precision=0.5, method="bucket"))
    n_loose = Autolabeler(store, loose, load_rules(), model=object(), detector=object()).reroute()
    before = {r.face_id: r for r in iter_face_records(store) if r.face_id is not None}
    assert n_loose == sum(1 for r in before.values() if r.route == "auto")
    strict = replace(loose, routing=replace(loose.routing, agree_threshold=1.01, model_threshold=1.01))
    n = Autolabeler(store, strict, load_rules(), model=object(), detector=object()).reroute()
    after = {r.face_id: r for r in iter_face_records(store) if r.face_id is not None}
    auto = [f for f, r in before.items() if r.route == "auto"]
    assert auto and n == len(auto)  # nothing can be auto-accepted any more
    assert all(after[f].route == "review" and after[f].kind in ("agree_low", "disagree", "low_confidence", "multi_face") for f in auto)
    nfaces = {r.image_id: sum(1 for x in after.values() if x.image_id == r.image_id) for r in after.values()}
    assert {r.route for r in after.values() if r.route == "track"} and all(  # video faces stay with their tracks
        r.route == "track" for f, r in after.items() if f in S.video_face_ids(store))
    for f, r in after.items():  # the stored decision is what route() says of the stored evidence
        if r.route == "track":
            continue
        d = route(evidence_for(r, nfaces[r.image_id]), strict.routing)
        assert (r.route, r.kind, r.reason) == (d.route, d.kind, d.reason)


@pytest.mark.slow  # a 48 MP JPEG is made, then autolabeled: ~10 s on a shared machine
def test_a_48_mp_phone_photo_is_autolabeled_with_its_face_in_full_size_pixels(tmp_path, sample_db):
    """Issue 35: an 8000x6000 photo was stored as a broken decompression bomb. It is decoded at a
    reduced size now; its face is found where the portrait was pasted, the box in the photo's own
    pixels (the sample portrait's box, scaled and moved), the image stored at its full size."""
    from PIL import Image as PILImage

    (astro,) = records_by_relpath(sample_db)["smiling_astronaut.png"]
    canvas = PILImage.new("RGB", (8000, 6000), (70, 90, 110))
    side, x0, y0 = 2000, 5200, 700
    canvas.paste(PILImage.open(SAMPLE / "smiling_astronaut.png").convert("RGB").resize((side, side)), (x0, y0))
    (tmp_path / "in").mkdir()
    canvas.save(tmp_path / "in" / "IMG_20240501_phone.jpg", "JPEG", quality=85)
    del canvas
    url = f"sqlite:///{tmp_path / 'big.db'}"
    rep = Autolabeler(Store(url), Config(), load_rules()).run(tmp_path / "in", progress=False)
    assert rep.ingest.broken == 0 and rep.images_detected == 1 and rep.faces == 1
    (rec,) = records_by_relpath(url)["IMG_20240501_phone.jpg"]
    assert (rec.width, rec.height) == (8000, 6000)
    s = side / 512
    want = (x0 + astro.x1 * s, y0 + astro.y1 * s, x0 + astro.x2 * s, y0 + astro.y2 * s)
    got = (rec.x1, rec.y1, rec.x2, rec.y2)
    assert max(abs(a - b) for a, b in zip(got, want)) < 0.1 * (want[2] - want[0]), (got, want)
    assert "small" not in rec.flags and rec.quality["size"] == pytest.approx(min(got[2] - got[0], got[3] - got[1]), rel=0.01)


def test_a_run_finishes_what_another_run_recorded_and_left_undetected(tmp_path, sample_db_path):
    """Issue 35: two autolabels of one folder, one killed with -9. Every file the other run had
    recorded after this one began (this one took them for that run's work) stayed undetected while
    this one exited 0 with a normal summary. Now a run detects what is still undetected under its
    folder at the end (images and the video): the database ends as one run alone leaves it."""
    from labeler.ingest.walk import ingest

    src = tmp_path / "in"
    shutil.copytree(SAMPLE, src)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    al = Autolabeler(store, Config(), load_rules())
    started = al.undetected_ids

    def then_the_other_run_records_everything_and_dies():
        todo = started()  # this run's view when it began: nothing left to redo
        ingest(store, src, load_rules(), progress=False)  # the other run: every file recorded, none detected
        return todo

    al.undetected_ids = then_the_other_run_records_everything_and_dies
    rep = al.run(src, progress=False)
    assert _counts(url) == _counts(f"sqlite:///{sample_db_path}")
    assert S.status_counts(Store(url)) == S.status_counts(Store(f"sqlite:///{sample_db_path}"))
    # 21 files: 3 not images, 3 broken, one copy, the video (already pending when this run's walk began), 13 images
    assert rep.ingest.new_images == 0 and rep.taken_over == 13 and rep.left == [] and rep.warnings() == []
    assert "finished here:     13 images another run had recorded but not detected" in rep.lines()


def test_what_a_run_cannot_finish_is_said_with_how_to_finish_it(tmp_path, capsys):
    """An image recorded but not detected that cannot be read when autolabel ends (here: deleted
    after `labeler ingest`): a warning on stderr says how many, which, and the command that finishes
    them; `labeler status` lists what is not detected yet."""
    from labeler.cli import main

    src = tmp_path / "in"
    src.mkdir()
    for name in ("smiling_astronaut.png", "coffee_cup.jpg", "happy_team_photo.jpg"):
        shutil.copyfile(SAMPLE / name, src / name)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    assert main(["ingest", str(src), "--db", url, "-q"]) == 0
    (src / "coffee_cup.jpg").unlink()
    capsys.readouterr()
    assert main(["autolabel", str(src), "--db", url, "-q", "--workers", "1"]) == 0
    cap = capsys.readouterr()
    assert "not detected:      1 images (see the warning)" in cap.out
    (warn,) = cap.err.strip().splitlines()
    assert warn.startswith(f"labeler: warning: 1 images under {src} are still not detected (e.g. {src / 'coffee_cup.jpg'})")
    assert f"run `labeler autolabel {src}` again to finish them" in warn
    assert main(["status", "--db", url]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("  not detected yet")]
    assert line.split()[3] == "1" and line.endswith(f"e.g. {src / 'coffee_cup.jpg'})")
    assert out.index("face detection done") < out.index("  not detected yet") < out.index("faces (labeling units)")
