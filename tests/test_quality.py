"""labeler.quality, pure: label-issue scores (cleanlab), Krippendorff's alpha and its interval,
Cohen's kappa, the Dawid-Skene consensus. Each guarantee is checked over many random draws; alpha
against NLTK's independent implementation. The store, CLI, export and UI paths on real crops are in
tests/test_quality_store.py."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import need_module  # noqa: E402

need_module("cleanlab", "quality", "pip install 'labeler[quality]'")
need_module("crowdkit", "quality", "pip install 'labeler[quality]'")

from labeler.quality import Assessment, GivenLabel, QualityInputs, Rating, assess  # noqa: E402
from labeler.quality import agreement as ag  # noqa: E402
from labeler.quality.consensus import consensus  # noqa: E402
from labeler.quality.issues import METHODS, scores  # noqa: E402
from labeler.types import LABELS  # noqa: E402

K = len(LABELS)


def _noisy(rng, n: int, noise: float, sharp: float = 8.0):
    """True classes, calibrated-ish probabilities around them, and labels with ``noise`` flipped."""
    truth = rng.integers(0, K, n)
    logits = rng.normal(0, 1, (n, K))
    logits[np.arange(n), truth] += sharp * rng.uniform(0.3, 1.0, n)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    given = truth.copy()
    hit = rng.choice(n, int(noise * n), replace=False)
    given[hit] = (truth[hit] + rng.integers(1, K, len(hit))) % K
    return truth, p, given, np.isin(np.arange(n), hit)


def test_default_score_is_one_minus_the_probability_of_the_given_label():
    rng = np.random.default_rng(0)
    for _ in range(20):
        _t, p, given, _w = _noisy(rng, 60, 0.2)
        s = scores(given, p)
        assert np.allclose(s.score, 1 - p[np.arange(60), given], atol=1e-9)
        assert (s.suggested == p.argmax(1)).all()
        assert s.flagged is not None and s.flagged.dtype == bool


def test_flipped_labels_rank_first_over_many_draws():
    """Guarantee (model assumption: the probabilities favour the true class by a clear margin):
    flipped labels are ranked above kept ones: AUROC >= 0.95 on each of 30 draws; what confident
    learning flags is mostly flips (precision >= 0.8 each draw) and finds most of them (mean recall >= 0.75)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    recall = []
    for _ in range(30):
        _t, p, given, wrong = _noisy(rng, 300, 0.1)
        s = scores(given, p)
        assert roc_auc_score(wrong, s.score) >= 0.95
        assert wrong[s.flagged].mean() >= 0.8
        recall.append(s.flagged[wrong].mean())
    assert np.mean(recall) >= 0.75


@pytest.mark.parametrize("method", METHODS)
def test_every_method_scores_in_unit_interval(method):
    rng = np.random.default_rng(2)
    _t, p, given, wrong = _noisy(rng, 200, 0.15)
    s = scores(given, p, method)
    assert s.score.shape == (200,) and (0 <= s.score).all() and (s.score <= 1).all()
    assert s.score[wrong].mean() > s.score[~wrong].mean()


def test_scores_refuse_bad_input_and_handle_tiny_sets():
    with pytest.raises(ValueError, match="method must be one of"):
        scores([0], np.eye(K)[:1], "nope")
    with pytest.raises(ValueError, match="class indices"):
        scores([K], np.eye(K)[:1])
    with pytest.raises(ValueError, match="one row of class probabilities"):
        scores([0, 1], np.eye(K)[:1])
    one = scores([3], np.eye(K)[[5]])  # one label, one class: no confident-learning verdict
    assert one.flagged is None and one.score[0] == pytest.approx(1.0) and one.suggested[0] == 5
    assert scores([], np.zeros((0, K))).score.shape == (0,)


# ---------------------------------------------------------------------------------- agreement


def _ratings(rng, faces: int, raters: int, p_missing: float, skill: float) -> list[Rating]:
    out = []
    for f in range(faces):
        true = rng.integers(0, K)
        for a in range(raters):
            if rng.random() < p_missing:
                continue
            lab = true if rng.random() < skill else rng.integers(0, K)
            out.append(Rating(f, f"r{a}", LABELS[lab], len(out)))
    return out


def test_alpha_equals_nltk_over_many_draws():
    """Our vectorised alpha is NLTK's AnnotationTask.alpha (nominal and with the label distance),
    any number of raters, missing ratings included."""
    import importlib

    nltk = importlib.import_module("nltk.metrics.agreement")  # the test extra (nltk's own `metrics` attribute is another module)

    rng = np.random.default_rng(3)
    dist = ag.label_distance(LABELS)
    for _ in range(25):
        rs = _ratings(rng, int(rng.integers(5, 40)), int(rng.integers(2, 6)), 0.3, rng.uniform(0, 1))
        _f, n = ag.counts(rs, LABELS)
        if (n.sum(1) >= 2).sum() == 0:
            continue
        data = [(r.annotator, str(r.face_id), r.label) for r in rs if sum(1 for x in rs if x.face_id == r.face_id) >= 2]
        want = nltk.AnnotationTask(data=data)
        want_w = nltk.AnnotationTask(data=data, distance=lambda a, b: dist[LABELS.index(a), LABELS.index(b)])
        got, got_w = ag.alpha(n), ag.alpha(n, dist)
        if got is not None:
            assert got == pytest.approx(want.alpha(), abs=1e-9)
        if got_w is not None:
            assert got_w == pytest.approx(want_w.alpha(), abs=1e-9)


def test_alpha_known_cases():
    n_perfect = np.array([[2, 0, 0, 0, 0, 0, 0], [0, 3, 0, 0, 0, 0, 0], [0, 0, 0, 2, 0, 0, 0]])
    assert ag.alpha(n_perfect) == pytest.approx(1.0)
    assert ag.alpha(np.array([[2, 0, 0, 0, 0, 0, 0]])) is None  # one class only: undefined
    assert ag.alpha(np.zeros((0, K))) is None


def test_alpha_interval_covers_the_population_value():
    """Guarantee: the 95% bootstrap interval covers the alpha of the population the faces are drawn
    from in most draws (coverage >= 85% over 40 draws of 150 faces; nominally 95%)."""
    rng = np.random.default_rng(4)
    pop = _ratings(rng, 20000, 3, 0.0, 0.6)
    _f, npop = ag.counts(pop, LABELS)
    truth = ag.alpha(npop)
    covered = 0
    for k in range(40):
        pick = rng.choice(len(npop), 150, replace=False)
        e = ag.alpha_estimate(npop[pick], reps=400, seed=k)
        assert e.lower <= e.alpha <= e.upper and e.faces == 150 and e.ratings == 450
        covered += e.lower <= truth <= e.upper
    assert covered >= 34


def test_weighted_alpha_forgives_confusable_disagreements():
    """Two raters who only ever confuse sad with neutral agree more under the label distance than
    two who confuse happy with fear, at the same nominal alpha."""
    dist = ag.label_distance(LABELS)
    sad, neu, hap, fea = (LABELS.index(c) for c in ("sad", "neutral", "happy", "fear"))

    def n_for(a, b):
        rows = []
        for c in range(K):
            for _ in range(10):
                r = np.zeros(K)
                r[c] += 2
                rows.append(r)
        for _ in range(10):
            r = np.zeros(K)
            r[a] += 1
            r[b] += 1
            rows.append(r)
        return np.array(rows)

    near, far = n_for(sad, neu), n_for(hap, fea)
    assert ag.alpha(near) == pytest.approx(ag.alpha(far))
    assert ag.alpha(near, dist) > ag.alpha(far, dist)
    assert dist[sad, neu] < dist[hap, fea] and np.allclose(dist, dist.T) and (np.diag(dist) == 0).all()


def test_kappas_match_sklearn_and_see_a_bad_class():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(5)
    rs = _ratings(rng, 300, 3, 0.2, 0.8)
    pairs = ag.pair_kappas(rs, LABELS)
    assert {(p.a, p.b) for p in pairs} == {("r0", "r1"), ("r0", "r2"), ("r1", "r2")}
    by = {(r.annotator, r.face_id): r.label for r in rs}
    p = pairs[0]
    common = sorted({f for (a, f) in by if a == p.a} & {f for (a, f) in by if a == p.b})
    assert p.faces == len(common)
    assert p.kappa == pytest.approx(cohen_kappa_score([by[(p.a, f)] for f in common], [by[(p.b, f)] for f in common]))
    # a class the raters split on at random has a lower per-class kappa than the others
    rs2 = [Rating(r.face_id, r.annotator, "fear" if r.label in ("fear", "surprise") and rng.random() < 0.5 else
                  ("surprise" if r.label in ("fear", "surprise") else r.label), r.order) for r in rs]
    per = {c.label: c.kappa for c in ag.class_kappas(rs2, LABELS)}
    assert per["fear"] < per["happy"] and per["surprise"] < per["angry"]


# ---------------------------------------------------------------------------------- consensus


def _crowd(rng, faces: int, bad_answer):
    """Two good annotators (85% right) and three bad ones (right 20% of the time, else ``bad_answer(rng)``)."""
    truth = rng.integers(0, K, faces)
    rs = []
    for f, t in enumerate(truth):
        for a in ("good1", "good2"):
            rs.append(Rating(f, a, LABELS[t if rng.random() < 0.85 else rng.integers(0, K)], len(rs)))
        for a in ("bad1", "bad2", "bad3"):
            rs.append(Rating(f, a, bad_answer(rng) if rng.random() < 0.8 else LABELS[t], len(rs)))
    return truth, rs


def _majority_right(truth, rs) -> float:
    by: dict[int, list[str]] = {}
    for r in rs:
        by.setdefault(r.face_id, []).append(r.label)
    return float(np.mean([max(set(by[f]), key=by[f].count) == LABELS[t] for f, t in enumerate(truth)]))


@pytest.mark.parametrize("model,bad_answer,margin", [
    ("dawid-skene", lambda rng: "neutral", 0.1),  # three annotators who mostly say neutral: a shared bias
    ("one-coin", lambda rng: LABELS[rng.integers(0, K)], 0.02),  # three careless ones: errors spread evenly
])
def test_dawid_skene_beats_majority_with_bad_annotators_over_many_draws(model, bad_answer, margin):
    """Guarantee (Dawid-Skene's assumption: annotators err independently given the true class; the
    one-coin form also assumes the errors are spread over the classes): with two good annotators and
    three bad ones the consensus is right more often than the majority (by ``margin``) in each of 8 draws, and the
    bad annotators are estimated worse than the good ones. The full model sees a bias three annotators
    share; the one-coin model does not (it takes them for a reliable majority), which is why
    ``auto`` uses it only on small projects."""
    rng = np.random.default_rng(6)
    for _ in range(8):
        truth, rs = _crowd(rng, 400, bad_answer)
        cons, skills = consensus(rs, LABELS, model)
        ds_ok = np.mean([cons[f].label == LABELS[t] for f, t in enumerate(truth)])
        assert ds_ok > _majority_right(truth, rs) + margin
        acc = {s.annotator: s.accuracy for s in skills}
        assert min(acc["good1"], acc["good2"]) > max(acc["bad1"], acc["bad2"], acc["bad3"])
        assert all(0 < c.posterior <= 1 and c.method == model for c in cons.values())


def test_auto_takes_the_full_model_only_with_many_faces(monkeypatch):
    import labeler.quality.consensus as C

    rs = [Rating(f, a, "happy", 0) for f in range(30) for a in ("x", "y")]
    assert {c.method for c in consensus(rs, LABELS)[0].values()} == {"one-coin"}
    monkeypatch.setattr(C, "FULL_FROM", 30)
    assert {c.method for c in consensus(rs, LABELS)[0].values()} == {"dawid-skene"}
    with pytest.raises(ValueError, match="crowd model must be one of"):
        consensus(rs, LABELS, "glad")


def test_consensus_of_single_ratings_is_the_rating():
    rs = [Rating(1, "a", "happy", 1), Rating(2, "a", "sad", 2), Rating(3, "b", "fear", 3)]
    cons, skills = consensus(rs, LABELS)
    assert {f: (c.label, c.posterior, c.method) for f, c in cons.items()} == {
        1: ("happy", None, "majority"), 2: ("sad", None, "majority"), 3: ("fear", None, "majority")}
    assert [(s.annotator, s.accuracy, s.faces) for s in skills] == [("a", None, 2), ("b", None, 1)]


def test_assess_puts_it_together():
    rng = np.random.default_rng(7)
    _t, p, given, wrong = _noisy(rng, 80, 0.1)
    gl = tuple(GivenLabel(i, LABELS[g], "import", tuple(p[i])) for i, g in enumerate(given)) + (
        GivenLabel(999, "happy", "keyword", None),)
    rs = tuple(Rating(i, a, LABELS[given[i]] if a == "x" or rng.random() < 0.7 else "fear", i)
               for i in range(40) for a in ("x", "y"))
    a = assess(QualityInputs(LABELS, gl, rs), reps=200)
    assert isinstance(a, Assessment) and len(a.issues) == 80 and a.unscored == 1
    top = a.ranked()[:8]
    assert sum(wrong[x.face_id] for x in top) >= 6
    assert a.agreement is not None and a.agreement.faces == 40 and a.agreement.annotators == 2
    assert a.agreement.nominal.lower <= a.agreement.nominal.alpha <= a.agreement.nominal.upper
    assert len(a.consensus) == 40
    assert [x.kind for x in a.ranked(("keyword",))] == []
