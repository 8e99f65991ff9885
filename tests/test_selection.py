"""Conformal auto-accept (labeler.selection, labeler.store.audit.calibration_plan): the guarantee it
states is checked over many random audit draws on simulated scores, per class (Mondrian), under
sequential use, and end to end on real crops."""

from __future__ import annotations

import numpy as np
import pytest

from labeler.selection import (Calibrated, accepted_precision, audits_for_share, benjamini_hochberg, conformal_pvalues, ppi_accuracy,
                               select, select_threshold, smallest_share)
from labeler.store.audit import Member, calibration_plan

Q = 0.05


def world(rng, size: int, hard: float = 8.0):
    """Scores in (0, 1) and whether each proposal is right: P(right | s) rises with s (a model whose
    confident proposals are mostly, not always, right; about a quarter wrong overall)."""
    s = rng.uniform(0, 1, size)
    right = rng.uniform(0, 1, size) < 1 / (1 + np.exp(-hard * (s - 0.25)))
    return s, right


def fdp_and_share(rng, n: int, m: int, q: float = Q):
    cs, cr = world(rng, n)
    ts, tr = world(rng, m)
    t = select_threshold(cs, ~cr, ts, q)
    if t is None:
        return 0.0, 0.0
    chosen = ts >= t
    return float((~tr[chosen]).mean()), float(chosen.mean())


@pytest.mark.parametrize("n", [40, 100, 300])
def test_the_false_discovery_rate_is_at_most_q_over_many_audit_draws(n):
    rng = np.random.default_rng(n)
    runs = np.array([fdp_and_share(rng, n, 400) for _ in range(600)])
    fdr, se = runs[:, 0].mean(), runs[:, 0].std(ddof=1) / np.sqrt(len(runs))
    assert fdr <= Q + 2 * se, (n, fdr, se)
    # and the selection is not empty-handed: it accepts a real share of faces in many draws (40 audits
    # can only accept half the faces or more: 1 / (q (n + 1)))
    assert np.mean(runs[:, 1] > 0) > (0.4 if n < 100 else 0.8) and runs[:, 1].mean() > 0.25


def test_a_plug_in_rule_on_the_same_audits_breaks_what_selection_keeps():
    """Choosing the threshold where the audited faces above it look >= 95% right (no correction)
    overshoots the error rate on the same draws; the conformal threshold does not."""
    rng = np.random.default_rng(7)
    plug, conf = [], []
    for _ in range(600):
        cs, cr = world(rng, 40)
        ts, tr = world(rng, 400)
        order = np.argsort(-cs)
        prec = np.cumsum(cr[order]) / np.arange(1, len(cs) + 1)
        ok = np.nonzero(prec >= 1 - Q)[0]
        if len(ok):
            chosen = ts >= cs[order][ok[-1]]
            plug.append((~tr[chosen]).mean() if chosen.any() else 0.0)
        t = select_threshold(cs, ~cr, ts, Q)
        conf.append(0.0 if t is None else (~tr[ts >= t]).mean())
    assert np.mean(plug) > Q + 0.005 and np.mean(conf) <= Q + 0.002


def test_pvalues_and_bh_on_a_worked_example():
    # 5 audited faces: wrong at scores 0.9 and 0.5; test faces at 0.95, 0.9, 0.6, 0.4
    p = conformal_pvalues([0.99, 0.9, 0.7, 0.5, 0.3], [False, True, False, True, False], [0.95, 0.9, 0.6, 0.4])
    assert p.tolist() == pytest.approx([1 / 6, 2 / 6, 2 / 6, 3 / 6])
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5], 0.1).tolist() == [True, True, True, False]
    assert benjamini_hochberg([0.2, 0.3], 0.1).tolist() == [False, False]
    assert smallest_share(99, 0.05) == pytest.approx(0.2) and audits_for_share(0.2, 0.05) == 99


def test_with_too_few_audits_nothing_is_selected_and_the_reason_says_why():
    sel = select([Calibrated("happy", 0.99, True)] * 10, [("happy", 0.99)] * 100, 0.95)
    assert sel.accepted == 0 and not sel.accepts("happy", 0.999)
    assert "at least 182% of the 100 candidate faces" in sel.why  # 1 / (0.05 * 11)


def two_classes(rng, size: int):
    """happy (95% of faces): almost always right; fear: right half the time whatever its score."""
    lab = np.where(rng.uniform(0, 1, size) < 0.95, "happy", "fear")
    s = rng.uniform(0.7, 1.0, size)
    right = np.where(lab == "happy", rng.uniform(0, 1, size) < 0.995, rng.uniform(0, 1, size) < 0.5)
    return lab, s, right


def test_the_class_conditional_method_keeps_each_class_under_q_where_the_pooled_one_lets_a_class_hide():
    rng = np.random.default_rng(3)
    fdp = {"conformal": [], "conformal-class": []}
    for _ in range(150):
        cl, cs, cr = two_classes(rng, 400)
        tl, ts, tr = two_classes(rng, 600)
        cal = [Calibrated(a, b, c) for a, b, c in zip(cl, cs, cr)]
        for method in fdp:
            sel = select(cal, list(zip(tl, ts)), 1 - Q, method)
            chosen = np.array([sel.accepts(a, b) for a, b in zip(tl, ts)])
            fear = chosen & (tl == "fear")
            fdp[method].append((~tr[fear]).mean() if fear.any() else 0.0)
    assert np.mean(fdp["conformal-class"]) <= Q + 0.01
    assert np.mean(fdp["conformal"]) > 0.3  # pooled: fear's accepted faces are about half wrong, hidden by happy


@pytest.mark.parametrize("calibrated", [True, False])
def test_the_estimate_of_the_accepted_set_covers_its_true_precision(calibrated):
    """The threshold is chosen on the same audits the estimate reads: its lower bound must hold all
    the same (one-sided 95%), and the point estimate must not be optimistic on the whole."""
    rng = np.random.default_rng(11)
    low, err = [], []
    for _ in range(300):
        if calibrated:  # a calibrated model: P(right | s) = s
            cs, ts = rng.beta(5, 1, 150), rng.beta(5, 1, 2000)
            cr, tr = rng.uniform(0, 1, 150) < cs, rng.uniform(0, 1, 2000) < ts
        else:
            (cs, cr), (ts, tr) = world(rng, 150), world(rng, 2000)
        t = select_threshold(cs, ~cr, ts, Q)
        if t is None:
            continue
        est = accepted_precision(cs, cr, t, int((ts >= t).sum()), len(ts))
        true = tr[ts >= t].mean()
        low.append(est.lower <= true <= est.upper + 1e-9)
        err.append(est.precision - true)
    assert len(low) > 150 and np.mean(low) >= 0.9
    assert np.median(err) <= 0.005


def test_the_prediction_powered_accuracy_of_unchecked_proposals_covers_the_truth():
    rng = np.random.default_rng(5)
    hits = []
    for _ in range(400):
        s = rng.beta(4, 1.5, 3000)
        right = rng.uniform(0, 1, 3000) < np.clip(s - 0.1, 0, 1)  # over-confident by 10 points
        cal = rng.choice(3000, 100, replace=False)
        est = ppi_accuracy(s, s[cal], right[cal])
        hits.append(est.lower <= right.mean())
    assert 0.9 <= np.mean(hits) <= 0.99


def member(fid: int, blind: str | None = None, human: bool = False, label: str = "happy", score: float = 0.9) -> Member:
    return Member(fid, fid, f"model>=0.7:{label}", label, score, blind, human or blind is not None, score)


def test_the_calibration_sample_is_the_answered_start_of_the_seeded_order():
    ms = [member(i) for i in range(1, 41)]
    plan = calibration_plan(ms, 10)
    assert not plan.ready and len(plan.asked) == 10 and plan.calibration == ()
    # answer 9 of the 10: still one to go, and it is the one asked
    done = {f: "happy" for f in plan.asked[:9]}
    ms2 = [member(m.face_id, done.get(m.face_id)) for m in ms]
    p2 = calibration_plan(ms2, 10)
    assert p2.asked == (plan.asked[9],) and not p2.ready
    # answering a face further down the order does not make the sample: the gap is still asked for
    ms3 = [member(m.face_id, "happy" if m.face_id in done or m.face_id == 40 and 40 not in plan.asked else None) for m in ms]
    assert calibration_plan(ms3, 10).asked == (plan.asked[9],)
    # a face reviewed with its proposal shown is skipped, never asked, never calibration, never test
    reviewed = plan.asked[9]
    ms4 = [member(m.face_id, done.get(m.face_id), human=m.face_id == reviewed) for m in ms]
    p4 = calibration_plan(ms4, 10)
    assert reviewed not in p4.asked and reviewed not in {m.face_id for m in p4.calibration + p4.test}
    assert len(p4.asked) == 1 and p4.asked[0] not in plan.asked
    # once complete: calibration = the answered run, test = every candidate nobody labeled
    full = {f: "happy" for f in plan.asked}
    p5 = calibration_plan([member(m.face_id, full.get(m.face_id)) for m in ms], 10)
    assert p5.ready and {m.face_id for m in p5.calibration} == set(plan.asked) and len(p5.test) == 30
    # a small project audits at most half its candidates
    assert len(calibration_plan([member(i) for i in range(1, 9)], 100).asked) == 4


def test_faces_added_later_that_fall_inside_the_sample_are_asked_for_before_it_counts_again():
    ms = [member(i) for i in range(1, 101)]
    first = calibration_plan(ms, 20)
    ans = {f: "happy" for f in first.asked}
    assert calibration_plan([member(m.face_id, ans.get(m.face_id)) for m in ms], 20).ready
    more = [member(m.face_id, ans.get(m.face_id)) for m in ms] + [member(i) for i in range(101, 201)]
    p = calibration_plan(more, 20)
    inside = [f for f in p.asked]
    assert not p.ready and inside and all(f > 100 for f in inside)


def test_sequential_use_keeps_the_guarantee():
    """The project grows in three folders; after each, the tool asks for the audits that fall in its
    sample, the oracle answers them, and the selection runs again. Over many seeds the accepted
    set's error rate stays under q at every look."""
    from labeler.audit import audit_order

    looks = [[], [], []]
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        s, right = world(rng, 900)
        labels = {}
        for look, upto in enumerate((300, 600, 900)):
            for _ in range(20):  # answer what is asked until the sample is complete
                ms = [member(i + 1, labels.get(i + 1), score=float(s[i])) for i in range(upto)]
                plan = calibration_plan(ms, 100, seed)
                if plan.ready:
                    break
                for f in plan.asked:
                    labels[f] = "happy" if right[f - 1] else "sad"
            assert plan.ready
            cal = [Calibrated("happy", m.score, m.audit_label == "happy") for m in plan.calibration]
            sel = select(cal, [("happy", m.score) for m in plan.test], 1 - Q)
            chosen = [m.face_id for m in plan.test if sel.accepts("happy", m.score)]
            looks[look].append(float(np.mean([not right[f - 1] for f in chosen])) if chosen else 0.0)
    for fd in looks:
        assert np.mean(fd) <= Q + 2 * np.std(fd, ddof=1) / np.sqrt(len(fd))
    assert audit_order([1, 2, 3], 0) == audit_order([3, 2, 1], 0)


# ---------------------------------------------------------------------------- end to end, real crops
def _route_sample(url: str, answer, target: float = 0.5):
    """Audit what the tool asks on the sample database (``answer(record) -> label``), re-route."""
    from dataclasses import replace

    from labeler.cleanup import reroute_checked
    from labeler.config import Config
    from labeler.store import Store, add_audit, iter_face_records, pending_audits, reroute, selection_of

    store = Store(url)
    pol = replace(Config().routing, target_precision=target, audit_always=True)
    reroute(store, pol)
    recs = {r.face_id: r for r in iter_face_records(store) if r.face_id is not None}
    asked = pending_audits(store, pol)
    assert asked and not selection_of(store, pol).ready
    for fid in asked:
        add_audit(store, fid, "auditor", "label", [answer(recs[fid])])
    reroute_checked(store, pol)  # as `labeler route` does: text looked for before anything auto-accepts
    return store, pol, asked, {r.face_id: r for r in iter_face_records(store) if r.face_id is not None}


def test_audits_that_confirm_the_proposals_let_the_other_candidates_auto_accept_on_real_crops(sample_db):
    from labeler.store import members, selection_of

    store, pol, asked, recs = _route_sample(sample_db, lambda r: r.model_label)
    sel = selection_of(store, pol)
    cands = {m.face_id for m in members(store, pol)}
    assert sel.ready and sel.calibration == len(asked) == len(cands) // 2 and sel.wrong == 0
    auto = [r for r in recs.values() if r.route == "auto" and not r.human_label]
    # every candidate nobody audited is accepted (all audits agreed), with its reason and the set's estimate
    assert {r.face_id for r in auto} == cands - set(asked)
    for r in auto:
        assert r.bucket == f"selection:{r.label}" and "selected: trust" in r.reason and r.est_lower is not None
    # the audited faces keep their human label; faces that are no candidates stay in review
    assert all(recs[f].human_label == recs[f].model_label for f in asked)
    assert all(r.route in ("review", "track") for r in recs.values() if r.face_id not in cands and not r.human_label)


def test_audits_that_reject_the_proposals_accept_nothing_on_real_crops(sample_db):
    other = {"happy": "sad"}
    store, pol, asked, recs = _route_sample(sample_db, lambda r: other.get(r.model_label, "happy"))
    assert not [r for r in recs.values() if r.route == "auto" and not r.human_label]
    assert all(r.route in ("review", "track") for r in recs.values() if not r.human_label)


def test_audit_answers_are_never_training_labels(sample_db):
    from labeler.store import Store, add_annotation, add_audit, iter_face_records
    from labeler.training.data import labeled_data
    from labeler.types import LABELS

    store = Store(sample_db)
    fids = sorted(r.face_id for r in iter_face_records(store) if r.face_id is not None)
    add_audit(store, fids[0], "a", "label", ["happy"])
    add_annotation(store, fids[1], "b", "label", ["sad"])
    add_audit(store, fids[2], "a", "label", ["fear"])
    add_annotation(store, fids[2], "b", "label", ["fear"])  # reviewed too: a training label
    got, _, y, _ = labeled_data(store, LABELS)
    assert sorted(got.tolist()) == [fids[1], fids[2]]


def test_the_commands_say_where_auto_accept_stands_and_what_to_do_next(sample_db, capsys):
    from labeler.cli import main

    assert main(["status", "--db", sample_db]) == 0
    out = capsys.readouterr().out
    # 8 candidate faces: audits would cost more than they could save, so none is asked for
    assert "auto-accept: conformal selection at target precision 0.95" in out and "auto-accept is off here" in out
    assert "next: 1 grid page of happy" in out and "grid pages of likely-right faces first" in out
    assert main(["status", "--db", sample_db, "--audit-always"]) == 0
    out = capsys.readouterr().out
    assert "next: answer 4 audit cards" in out and "0 of 4 answered" in out
    assert main(["audit", "--db", sample_db, "--audit-always"]) == 0
    out = capsys.readouterr().out
    listed = [ln for ln in out.splitlines() if ln.startswith("  face ")]
    assert listed and "faces to audit blind" in out and "why" in out
    assert main(["audit", "--db", sample_db, "--method", "bucket"]) == 0
    assert "buckets at target precision 0.95" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["route", "--db", sample_db, "--method", "nonsense"])
    assert e.value.code == 2


def test_an_export_before_any_audit_says_why_it_is_empty_and_can_write_the_proposals_marked(sample_db, tmp_path, capsys):
    import csv
    import json

    from labeler.cli import main
    from labeler.store import Store, iter_face_records

    assert main(["export", "--db", sample_db, "--format", "csv", "--out", str(tmp_path / "a.csv")]) == 0
    out = capsys.readouterr().out
    assert "the data set is empty" in out and "--include-proposals" in out
    assert main(["export", "--db", sample_db, "--format", "csv", "--out", str(tmp_path / "b.csv"), "--include-proposals"]) == 0
    review = {r.face_id: r for r in iter_face_records(Store(sample_db)) if r.route == "review" and r.model_label}
    with open(tmp_path / "b.csv", newline="") as fh:
        rows = {int(r["face_id"]): r for r in csv.DictReader(fh) if r["face_id"]}
    assert review and all(rows[f]["label"] == r.model_label and rows[f]["label_source"] == "proposal (unverified)"
                          and rows[f]["included"] == "1" for f, r in review.items())
    meta = json.loads((tmp_path / "b.csv.metadata.json").read_text())
    acc = meta["label_accuracy"]
    assert acc["unverified_proposals"] == len(review) and acc["human_labels"] == acc["auto_accepted"] == 0
    assert "not measured" in acc["how"] and 0 < acc["precision"] < 1
    assert "UNVERIFIED" in (tmp_path / "b.csv.README.md").read_text()


def test_audits_are_asked_for_only_where_they_pay_for_themselves():
    from labeler.flow import audit_pays
    from labeler.selection import expected_selected

    rng = np.random.default_rng(0)
    sure = rng.beta(30, 1, 3000)  # a large project the model is sure of: most would be accepted
    assert expected_selected(sure, 100, Q) > 2000 and audit_pays(list(sure), 100, Q)
    unsure = rng.beta(3, 2, 3000)  # a model right 60% of the time: nothing would be accepted
    assert expected_selected(unsure, 100, Q) == 0 and not audit_pays(list(unsure), 100, Q)
    small = list(rng.beta(30, 1, 60))  # a small project: 30 audits for at best 30 faces
    assert not audit_pays(small, 30, Q)
    # the plan then asks nothing and accepts nothing, whatever the answers could have been
    ms = [member(i, score=float(s)) for i, s in enumerate(small, 1)]
    plan = calibration_plan(ms, 100, 0, Q)
    assert plan.asked == () and not plan.ready and plan.audit_size == 0 and len(plan.test) == 60
    assert calibration_plan(ms, 100, 0).asked  # without the check (--audit-always) it asks
