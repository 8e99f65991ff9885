"""Auto-accept with a measured precision (issue 12): bounds on known counts, the audit loop on a tiny
generated database (a bucket flips to auto once enough audits agree and back when they disagree),
and the export's accuracy statement against the database."""

from __future__ import annotations

import csv
import json
import math
from fractions import Fraction

import pytest

from labeler.audit import BucketState, clopper_pearson, estimate, needed, settle, wilson
from labeler.routing import RoutingPolicy
from labeler.store import (
    AUDIT_SOURCE, Annotation, DecisionRow, Face, Image, ImagePath, Proposal, Store, add_annotation, add_audit,
    audit_plan, auto_precision_estimate, bucket_estimates, faces_to_repropose, iter_face_records, next_audit_faces, pending_audits,
    record_model_version, reroute,
)
from labeler.types import LABELS

# ----------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("x, n, lo, hi", [
    # Wilson score interval, z = 1.96 (textbook values)
    (19, 20, 0.7639, 0.9911),
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (50, 100, 0.4038, 0.5962),
])
def test_wilson_known_values(x, n, lo, hi):
    got = wilson(x, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


@pytest.mark.parametrize("x, n, lo, hi", [
    # Clopper-Pearson exact intervals (R binom.test / the closed forms (0.025)^(1/n))
    (0, 10, 0.0, 0.3085),
    (10, 10, 0.6915, 1.0),
    (19, 20, 0.7513, 0.9987),
    (5, 10, 0.1871, 0.8129),
    (1, 1, 0.025, 1.0),
])
def test_clopper_pearson_known_values(x, n, lo, hi):
    assert clopper_pearson(x, n) == pytest.approx((lo, hi), abs=1e-4)


def _binom_tail_ge(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p), summed exactly in rationals."""
    q = Fraction(p)
    return float(sum(math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(x, n + 1)))


@pytest.mark.parametrize("x, n", [(95, 100), (290, 300), (3, 40)])
def test_clopper_pearson_lower_bound_is_where_the_binomial_tail_is_2_5_percent(x, n):
    lo, hi = clopper_pearson(x, n)
    assert _binom_tail_ge(x, n, lo) == pytest.approx(0.025, abs=1e-6)
    assert 1 - _binom_tail_ge(x + 1, n, hi) == pytest.approx(0.025, abs=1e-6)
    assert lo < x / n < hi


def test_needed_agreeing_audits():
    # certifying 0.95 from nothing with a one-sided 95% bound: 0.05^(1/n) >= 0.95 -> n = 59
    # (Clopper-Pearson), n / (n + 1.645^2) >= 0.95 -> 52 (Wilson)
    assert needed(0, 0, 0.95) == 59 and needed(0, 0, 0.95, "wilson") == 52
    for agree, n, t in [(0, 0, 0.95), (50, 52, 0.95), (30, 40, 0.80), (10, 10, 0.9)]:
        k = needed(agree, n, t)
        assert clopper_pearson(agree + k, n + k, 0.90)[0] >= t  # one-sided 95% = two-sided 90%
        assert k == 0 or clopper_pearson(agree + k - 1, n + k - 1, 0.90)[0] < t
    assert needed(0, 0, 0.95, limit=50) is None  # more than the bucket has left


def test_a_prior_is_stated_and_never_certifies_95():
    e = estimate("model>=0.95:happy", 500, 0, 0, mean_prob=1.0)
    assert e.source.startswith("prior:") and "no audit yet" in e.source
    assert e.lower == pytest.approx(0.8808, abs=1e-4) and not e.certifies(0.95)  # 20 / (20 + 1.645^2)
    audited = estimate("model>=0.95:happy", 500, 80, 80, mean_prob=0.2)  # audits replace the prior
    assert audited.source == "audit" and audited.precision == 1.0 and audited.certifies(0.95)


def test_bucket_states():
    assert settle(estimate("b:happy", 500, 80, 80), 0.95, 420).state == "auto"
    low = settle(estimate("b:happy", 500, 20, 15), 0.95, 480)
    assert low.state == "review" and "upper bound" in low.why  # 15/20: upper 0.94 < 0.95, settled
    small = settle(estimate("b:happy", 30, 0, 0, 0.99), 0.95, 30)
    assert small.state == "review" and "cannot be certified" in small.why  # 59 needed, 30 faces
    st = settle(estimate("b:happy", 500, 10, 10), 0.95, 490, batch=10)
    assert (st.state, st.needed, st.sample) == ("open", 49, 10)


# ----------------------------------------------------------------------------- the loop on a database

N_FACES = 60  # one bucket: single faces, no keyword, model sure (0.99) of happy


def _build(url: str) -> Store:
    store = Store(url)
    with store.session() as s:
        for i in range(N_FACES + 6):
            img = Image(sha256=f"{i:064x}", size_bytes=10, width=64, height=64, format="PNG", status="ingested", detected=True)
            s.add(img)
            s.flush()
            s.add(ImagePath(image_id=img.id, path=f"/data/img{i}.png", root="/data", relpath=f"img{i}.png"))
            f = Face(image_id=img.id, idx=0, x1=0, y1=0, x2=60, y2=60, det_score=0.99, flags="", detector="toy", crop=b"")
            s.add(f)
            s.flush()
            top, p = ("happy", 0.99) if i < N_FACES else ("sad", 0.95)  # and a small second bucket
            probs = {lab: (p if lab == top else (1 - p) / 6) for lab in LABELS}
            s.add(Proposal(face_id=f.id, source_kind="model", source="toy@1", label=top, prob=p, probs=probs))
    return store


def _recs(store):
    return {r.face_id: r for r in iter_face_records(store) if r.face_id is not None}


def test_a_bucket_flips_to_auto_once_enough_audits_agree_and_back_when_they_disagree(tmp_path):
    store = _build(f"sqlite:///{tmp_path / 'a.db'}")
    pol = RoutingPolicy(target_precision=0.90, method="bucket")  # 29 agreeing audits certify it (0.95 would take 59: slower)
    big, small = "model>=0.95:happy", "model>=0.95:sad"
    assert reroute(store, pol) == N_FACES + 6
    assert all(r.route == "review" and r.bucket in (big, small) for r in _recs(store).values())
    plans = {p.estimate.bucket: p for p in audit_plan(store, pol)}
    assert plans[small].state.state == "review"  # 6 faces can never certify 0.90: not audited
    assert plans[big].state.state == "open" and plans[big].state.needed == 29 and len(plans[big].sample) == 10
    # the sample is seeded and reproducible, and another seed draws another sample
    assert pending_audits(store, pol) == list(plans[big].sample) == pending_audits(store, pol, seed=0)
    assert pending_audits(store, pol, seed=1) != pending_audits(store, pol)
    cards = next_audit_faces(store, "ann", 4, pol)
    assert [c.face_id for c in cards] == list(plans[big].sample[:4]) and {c.label for c in cards} == {"happy"}

    answered = 0
    while True:
        todo = pending_audits(store, pol)
        if not todo:
            break
        for fid in todo:
            add_audit(store, fid, "ann", "label", ["happy"])
            answered += 1
        assert answered <= 40
    est = bucket_estimates(store, pol)[big]
    assert (est.audited, est.agreeing, est.source) == (answered, answered, "audit") and answered == 29
    assert est.certifies(0.90) and not est.certifies(0.95)
    reroute(store, pol)
    recs = _recs(store)
    auto = [r for r in recs.values() if r.route == "auto" and not r.human_label]
    assert len(auto) == N_FACES - answered  # the audited faces are human-labeled, the rest auto
    assert all(r.bucket == big and r.label == "happy" and r.label_source.startswith("auto:") for r in auto)
    assert all(r.est_lower == round(est.lower, 4) and r.est_precision == 1.0 for r in auto)
    assert auto_precision_estimate(store, pol) == 1.0
    # audits are human labels everywhere: the audited faces' accepted label is the human one
    assert all(r.label_source == "human:ann" for r in recs.values() if r.human_label)

    # labels brought in by `labeler import` count as audits of their faces' bucket: 3 disagree
    for r in auto[:3]:
        add_annotation(store, r.face_id, "import", "label", ["sad"], source="import:csv")
    est = bucket_estimates(store, pol)[big]
    assert (est.audited, est.agreeing) == (answered + 3, answered) and not est.certifies(0.90)
    reroute(store, pol)
    recs = _recs(store)
    assert not [r for r in recs.values() if r.route == "auto"]  # back to review
    assert all(r.route == "review" and r.kind == "low_confidence" for r in recs.values() if not r.human_label)
    # a review label in the UI saw the proposal: it is not an audit
    fid = next(r.face_id for r in recs.values() if not r.human_label)
    add_annotation(store, fid, "ann2", "label", ["happy"], source="ui")
    assert bucket_estimates(store, pol)[big].audited == answered + 3


def test_audits_of_faces_a_model_learned_do_not_count_for_its_buckets(tmp_path):
    store = _build(f"sqlite:///{tmp_path / 'a.db'}")
    pol = RoutingPolicy(target_precision=0.90, method="bucket")
    big = "model>=0.95:happy"
    fids = sorted(r.face_id for r in _recs(store).values() if r.bucket in (None, big) and r.model_label == "happy")
    for fid in fids[:29]:
        add_audit(store, fid, "ann", "label", ["happy"])
    assert bucket_estimates(store, pol)[big].certifies(0.90)
    # an imported label and an audit are blind: the current model's proposal must be stored for them
    # too (re-proposal), a review label saw the proposal and is left alone
    add_annotation(store, fids[29], "ann", "label", ["happy"], source="ui")
    todo = faces_to_repropose(store, "toy@2", only_stale=False)
    assert set(fids[:29]) <= set(todo) and fids[29] not in todo and fids[30] in todo
    # the faces' proposals come from toy@1; once toy@1 is recorded as trained on 20 of those labels,
    # only the other 9 audits measure it
    record_model_version(store, "toy", "1", str(tmp_path / "toy.json"), {"trained_on": fids[:20]})
    est = bucket_estimates(store, pol)[big]
    assert (est.audited, est.agreeing) == (9, 9) and not est.certifies(0.90)
    # a model trained on other faces leaves them counted
    record_model_version(store, "toy", "1", str(tmp_path / "toy.json"), {"trained_on": fids[40:45]})
    assert bucket_estimates(store, pol)[big].audited == 29
    # and the faces it learned stay human-labeled: they are never drawn for an audit again
    record_model_version(store, "toy", "1", str(tmp_path / "toy.json"), {"trained_on": fids[:20]})
    assert not set(pending_audits(store, pol)) & set(fids[:30])


def test_export_states_the_accuracy_the_database_holds(tmp_path):
    from labeler.datasets.export import export

    store = _build(f"sqlite:///{tmp_path / 'e.db'}")
    pol = RoutingPolicy(target_precision=0.90, method="bucket")  # above what a prior can certify (0.88)
    reroute(store, pol)
    while (todo := pending_audits(store, pol)):
        for fid in todo:  # one face in 40 is not happy
            add_audit(store, fid, "ann", "label", ["surprise" if fid % 40 == 0 else "happy"])
    reroute(store, pol)
    recs = _recs(store)
    human = [r for r in recs.values() if r.human_label]
    auto = [r for r in recs.values() if r.route == "auto" and not r.human_label]
    assert auto and human
    summ = export(store, "csv", tmp_path / "out.csv")
    acc = json.loads((tmp_path / "out.csv.metadata.json").read_text())["label_accuracy"]
    assert acc == summ["label_accuracy"]
    n = len(human) + len(auto)
    assert (acc["faces"], acc["human_labels"], acc["auto_accepted"]) == (n, len(human), len(auto))
    with store.session() as s:  # from the stored decisions, independently of the export code
        newest = {}
        for d in s.query(DecisionRow).order_by(DecisionRow.id):
            newest[d.face_id] = d
    want = (len(human) + sum(newest[r.face_id].est_precision for r in auto)) / n
    lo = (len(human) + sum(newest[r.face_id].est_lower for r in auto)) / n
    assert acc["precision"] == pytest.approx(want, abs=1e-4) and acc["lower"] == pytest.approx(lo, abs=1e-4)
    b = acc["buckets"]["model>=0.95:happy"]
    assert b["faces"] == len(auto) and b["precision"] == newest[auto[0].face_id].est_precision
    readme = (tmp_path / "out.csv.README.md").read_text()
    assert f"{100 * acc['precision']:.1f}% of the {n} labels are estimated right" in readme
    assert "blind audits" in readme
    with open(tmp_path / "out.csv", newline="") as fh:
        rows = {int(r["face_id"]): r for r in csv.DictReader(fh) if r["face_id"]}
    for r in auto:
        row = rows[r.face_id]
        assert row["label_bucket"] == "model>=0.95:happy" and float(row["label_precision"]) == newest[r.face_id].est_precision
        assert row["label_source"].startswith("auto:")
    assert all(rows[r.face_id]["label_precision"] == "" and rows[r.face_id]["label_source"] == "human:ann" for r in human)
    # the audit answers are ordinary annotations with the audit source
    with store.session() as s:
        assert {a.source for a in s.query(Annotation)} == {AUDIT_SOURCE}


def test_a_bucket_with_nothing_known_wants_a_first_sample_only_if_it_can_be_certified():
    """No audit, no prior: (0, 1). All-agreeing audits reach a one-sided 95% lower bound of 0.95 at 59
    (0.95**59 < 0.05 <= 0.95**58), so 59 unaudited faces leave it open and 58 settle it for review;
    the sample asked for is the batch, or fewer when fewer audits are still needed."""
    assert 0.95 ** 59 < 0.05 <= 0.95 ** 58
    st = settle(estimate("b:sad", 100, 0, 0), 0.95, 100)
    assert isinstance(st, BucketState) and st.estimate.label == "sad"
    assert (st.estimate.lower, st.estimate.upper) == (0.0, 1.0)
    assert (st.state, st.needed, st.sample) == ("open", 59, 10)
    assert settle(estimate("b:sad", 100, 0, 0), 0.95, 59).state == "open"
    short = settle(estimate("b:sad", 100, 0, 0), 0.95, 58)
    assert (short.state, short.needed, short.sample) == ("review", None, 0) and "even 58 more" in short.why
    near = settle(estimate("b:sad", 100, 57, 57), 0.95, 43)  # lower bound 0.9488: two more agreeing audits
    assert (near.state, near.needed, near.sample) == ("open", 2, 2)


def test_target_precision_from_the_config_and_the_command_line(tmp_path, capsys):
    from labeler.cli import main
    from labeler.config import load_config

    toml = tmp_path / "c.toml"
    toml.write_text('[routing]\ntarget_precision = 0.9\nmethod = "bucket"\n')
    assert load_config(toml).routing.target_precision == 0.9
    url = f"sqlite:///{tmp_path / 'c.db'}"
    _build(url).engine.dispose()
    assert main(["route", "--db", url, "--target-precision", "0.9", "--method", "bucket"]) == 0
    out = capsys.readouterr().out
    assert f"{N_FACES + 6} faces re-routed" in out and "buckets at target precision 0.9 " in out
    assert main(["audit", "--db", url, "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    # 0.9 from nothing takes 29 agreeing audits (Clopper-Pearson); the first 10 faces are listed
    assert "model>=0.95:happy" in out and "open: 29 more agreeing audits" in out and out.count("  face ") == 10
    assert sum(1 for ln in out.splitlines() if ln.startswith("  face ") and ".png #0" in ln) == 10  # where each face is
    assert main(["status", "--db", url, "--method", "bucket"]) == 0
    assert "model>=0.95:sad" in capsys.readouterr().out
    assert main(["route", "--db", url, "--target-precision", "95"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labeler: error: target precision must be between 0 and 1") and err.count("\n") == 1
