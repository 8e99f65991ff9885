"""The routing policy as a table: pure function, no I/O."""

import pytest

from labeler.routing import FaceEvidence, RoutingPolicy, candidate, evidence, route
from labeler.types import LABELS, BucketEstimate, text_pending

P = RoutingPolicy(agree_threshold=0.4, model_threshold=0.9, agree_top_k=1, method="bucket")


def est(bucket: str, lower: float, audited: int = 100, agreeing: int = 99) -> BucketEstimate:
    return BucketEstimate(bucket, 200, audited, agreeing, agreeing / audited, lower, 1.0, "audit")


class Certified(dict):
    """Estimates under which every bucket is certified (lower bound 0.97): the table below is about
    which faces are candidates, in which bucket, and why; whether a bucket certifies is tested apart."""

    def get(self, bucket, default=None):
        return est(bucket, 0.97)


ALL = Certified()


def probs(top: str, p: float) -> dict:
    rest = (1 - p) / (len(LABELS) - 1)
    return {lab: (p if lab == top else rest) for lab in LABELS}


@pytest.mark.parametrize(
    "ev, route_, label, reason_has",
    [
        # single face, rule and model agree above the agree threshold -> auto
        (FaceEvidence(1, "labeled", "happy", ("smiling",), probs("happy", 0.6)), "auto", "happy", "agree"),
        # agree, but below the threshold -> review
        (FaceEvidence(1, "labeled", "happy", ("smiling",), probs("happy", 0.3)), "review", "happy", "unsure"),
        # disagree -> review, even when the model is very sure
        (FaceEvidence(1, "labeled", "sad", ("cry",), probs("happy", 0.97)), "review", "happy", "rule says sad"),
        # no keyword, model above the high threshold -> auto
        (FaceEvidence(1, "none", None, (), probs("surprise", 0.95)), "auto", "surprise", "no keyword"),
        # no keyword, model below -> review
        (FaceEvidence(1, "none", None, (), probs("surprise", 0.8)), "review", "surprise", "unsure"),
        # ambiguous name: never auto, even with a sure model
        (FaceEvidence(1, "ambiguous", None, ("sad", "happy"), probs("happy", 0.99)), "review", "happy", "ambiguous"),
        # multi-face: the keyword alone with an agreeing but unsure model does not label the faces
        (FaceEvidence(3, "labeled", "happy", ("happy",), probs("happy", 0.6)), "review", "happy", "not given to faces"),
        # multi-face, model very sure and same class as the name -> auto on the model's evidence
        (FaceEvidence(3, "labeled", "happy", ("happy",), probs("happy", 0.95)), "auto", "happy", "multi-face"),
        # multi-face, model sure of another class than the name -> review
        (FaceEvidence(3, "labeled", "happy", ("happy",), probs("sad", 0.95)), "review", "sad", "not given to faces"),
        # multi-face without keyword, model sure -> auto
        (FaceEvidence(2, "none", None, (), probs("neutral", 0.93)), "auto", "neutral", "multi-face image"),
        # quality flag blocks auto
        (FaceEvidence(1, "labeled", "happy", ("happy",), probs("happy", 0.9), flags=("blurry",)), "review", "happy", "quality: blurry"),
        # whole-image face counts as a single face
        (FaceEvidence(0, "labeled", "happy", ("happy",), probs("happy", 0.6), whole_image=True, flags=("whole_image",)), "auto", "happy", "agree"),
        # no model proposal at all
        (FaceEvidence(1, "labeled", "happy", ("happy",), None), "review", None, "no model proposal"),
        # text on or beside the face (issue 17): never auto, even where everything else agrees
        (FaceEvidence(1, "labeled", "happy", ("happy",), probs("happy", 0.99), text_near=True), "review", "happy", "text on or beside"),
        (FaceEvidence(3, "none", None, (), probs("sad", 0.99), text_near=True), "review", "sad", "never auto-accepted"),
        (FaceEvidence(0, "none", None, (), probs("fear", 0.99), whole_image=True, text_near=True), "review", "fear", "text on or beside"),
        # text with an ambiguous name: the text is the reason given (it holds whatever the name says)
        (FaceEvidence(1, "ambiguous", None, ("sad", "happy"), probs("happy", 0.99), text_near=True), "review", "happy", "text on or beside"),
        # a class a human rejected on a Verify grid is never auto-accepted for that face; the next class is proposed
        (FaceEvidence(1, "none", None, (), probs("happy", 0.99), rejected=("happy",)), "review", "angry", "rejected as happy"),
        (FaceEvidence(1, "labeled", "happy", ("happy",), probs("happy", 0.9), rejected=("happy",)), "review", "angry", "rejected as happy"),
        (FaceEvidence(1, "none", None, (), probs("sad", 0.99), rejected=("happy",)), "auto", "sad", "no keyword"),
        # text not looked for yet: a certified candidate waits for the check (labeler.cleanup.check_text)...
        (FaceEvidence(1, "labeled", "happy", ("happy",), probs("happy", 0.99), text_pending=True), "review", "happy",
         "certified at target 0.95, text not looked for yet"),
        (FaceEvidence(2, "none", None, (), probs("sad", 0.99), text_pending=True), "review", "sad", "text not looked for yet"),
        # ...and a face that is no candidate is routed as without it
        (FaceEvidence(1, "labeled", "happy", ("happy",), probs("sad", 0.99), text_pending=True), "review", "sad", "rule says happy"),
    ],
)
def test_routing_table(ev, route_, label, reason_has):
    # semantics changed with issue 12: "auto" now means "a candidate whose bucket is certified"; the
    # rows keep their evidence and expectations, with every bucket certified (ALL)
    d = route(ev, P, ALL)
    assert (d.route, d.label) == (route_, label), d
    assert reason_has in d.reason
    assert "agree>=0.4" in d.source and "target=0.95" in d.source
    if d.route == "auto":
        assert d.bucket and d.bucket.endswith(":" + label) and d.lower == 0.97 and "certified" in d.reason


def test_review_order_most_useful_first():
    disagree = route(FaceEvidence(1, "labeled", "sad", ("sad",), probs("happy", 0.6)), P)
    unsure = route(FaceEvidence(1, "none", None, (), probs("happy", 0.5)), P)
    very_unsure = route(FaceEvidence(1, "none", None, (), probs("happy", 0.2)), P)
    blurry = route(FaceEvidence(1, "none", None, (), probs("happy", 0.5), flags=("blurry",)), P)
    assert disagree.priority > unsure.priority
    assert very_unsure.priority > unsure.priority  # more uncertainty = more to learn
    assert unsure.priority > blurry.priority  # unusable-looking faces last


def test_thresholds_come_from_the_policy():
    ev = FaceEvidence(1, "none", None, (), probs("happy", 0.85))
    assert route(ev, RoutingPolicy(model_threshold=0.9, method="bucket"), ALL).route == "review"
    assert route(ev, RoutingPolicy(model_threshold=0.8, method="bucket"), ALL).route == "auto"


def test_top_k_agreement_lets_the_model_veto_rather_than_confirm():
    pol = RoutingPolicy(agree_threshold=0.1, model_threshold=0.99, agree_top_k=2, method="bucket")
    p = {"angry": 0.05, "disgust": 0.05, "fear": 0.05, "happy": 0.45, "sad": 0.3, "surprise": 0.05, "neutral": 0.05}
    # keyword says sad, the model's #2 at 0.30: accepted as sad (the rule's label, not the model's top-1)
    d = route(FaceEvidence(1, "labeled", "sad", ("sad",), p), pol, ALL)
    assert (d.route, d.label, d.bucket) == ("auto", "sad", "keyword+model#2:sad") and "#2" in d.reason
    # keyword says fear, the model gives it 0.05 (#3 or lower): vetoed
    d = route(FaceEvidence(1, "labeled", "fear", ("fear",), p), pol, ALL)
    assert (d.route, d.label) == ("review", "happy") and "rule says fear" in d.reason
    assert "top2" in d.source


#: one evidence per decision kind: what route() decides and why, as the UI's filters see it
KIND_CASES = [
    (FaceEvidence(1, "labeled", "sad", ("cry",), probs("happy", 0.97)), "review", "disagree"),
    (FaceEvidence(1, "ambiguous", None, ("sad", "happy"), probs("happy", 0.99)), "review", "ambiguous"),
    (FaceEvidence(3, "labeled", "happy", ("happy",), probs("happy", 0.6)), "review", "multi_face"),
    (FaceEvidence(1, "none", None, (), probs("surprise", 0.8)), "review", "low_confidence"),
    (FaceEvidence(1, "labeled", "happy", ("happy",), None), "review", "low_confidence"),
    (FaceEvidence(1, "labeled", "happy", ("smiling",), probs("happy", 0.3)), "review", "agree_low"),
    (FaceEvidence(1, "labeled", "happy", ("happy",), probs("happy", 0.9), flags=("blurry",)), "review", "quality"),
    (FaceEvidence(1, "none", None, (), probs("happy", 0.99), text_near=True), "review", "quality"),
    (FaceEvidence(1, "labeled", "happy", ("smiling",), probs("happy", 0.6)), "auto", "agree"),
    (FaceEvidence(3, "labeled", "happy", ("happy",), probs("happy", 0.95)), "auto", "multi_face_agree"),
    (FaceEvidence(1, "none", None, (), probs("surprise", 0.95)), "auto", "model_confident"),
]


@pytest.mark.parametrize("ev, route_, kind", KIND_CASES)
def test_decision_kind_table(ev, route_, kind):
    d = route(ev, P, ALL)
    assert (d.route, d.kind) == (route_, kind), d
    if d.route == "review":
        assert d.priority >= P.weights[kind]  # the kind is also what orders the queue


def test_every_review_kind_is_reachable_and_offered_by_the_ui():
    """labeler.types.REVIEW_KINDS (what the UI's review filter offers) are the kinds route() writes:
    every kind route() writes is listed, every kind listed can be written, each has a review-order weight."""
    from labeler.types import AUTO_KINDS, REVIEW_KINDS

    made = {(route(ev, P, ALL).route, route(ev, P, ALL).kind) for ev, _r, _k in KIND_CASES}
    assert {k for r, k in made if r == "review"} == set(REVIEW_KINDS)
    assert {k for r, k in made if r == "auto"} == set(AUTO_KINDS)
    assert set(RoutingPolicy().weights) == set(REVIEW_KINDS)
    # that the review page's reason filter offers exactly these: tests/test_ui.py::test_the_reason_filter_offers_every_review_kind


def test_evidence_leaves_negated_words_out():
    from labeler.routing import evidence
    from labeler.types import RuleWord

    ev = evidence(1, "labeled", "happy", (RuleWord("smiling", "happy"), RuleWord("not sad", "", True)), probs("happy", 0.9), "m", ["blurry"], False)
    assert ev.rule_words == ("smiling",) and ev.flags == ("blurry",)
    assert route(ev, P).reason.startswith("quality: blurry")


BUCKETS = [  # evidence -> its bucket (None: never auto-accepted), under the default policy
    (FaceEvidence(1, "labeled", "happy", ("smiling",), probs("happy", 0.6)), "keyword+model:happy"),
    (FaceEvidence(0, "labeled", "happy", ("happy",), probs("happy", 0.3), whole_image=True), "keyword+model:happy"),
    (FaceEvidence(1, "labeled", "sad", ("sad",), {**probs("happy", 0.6), "sad": 0.3}), "keyword+model#2:sad"),
    (FaceEvidence(1, "none", None, (), probs("neutral", 0.99)), "model>=0.95:neutral"),
    (FaceEvidence(1, "none", None, (), probs("neutral", 0.95)), "model>=0.95:neutral"),
    (FaceEvidence(1, "none", None, (), probs("neutral", 0.94)), "model>=0.7:neutral"),
    (FaceEvidence(1, "none", None, (), probs("neutral", 0.75)), "model>=0.7:neutral"),
    (FaceEvidence(1, "none", None, (), probs("neutral", 0.6)), None),  # below model_threshold
    (FaceEvidence(3, "none", None, (), probs("sad", 0.92)), "group+model>=0.7:sad"),
    (FaceEvidence(3, "labeled", "happy", ("happy",), probs("happy", 0.99)), "group+keyword+model>=0.95:happy"),
    (FaceEvidence(3, "labeled", "happy", ("happy",), probs("sad", 0.99)), None),  # the name disagrees
    (FaceEvidence(1, "labeled", "sad", ("sad",), probs("happy", 0.97)), None),  # disagree
    (FaceEvidence(1, "ambiguous", None, ("sad", "happy"), probs("happy", 0.99)), None),
    (FaceEvidence(1, "none", None, (), probs("happy", 0.99), flags=("blurry",)), None),
    (FaceEvidence(1, "none", None, (), None), None),
]


@pytest.mark.parametrize("ev, bucket", BUCKETS)
def test_bucket_names_evidence_band_and_class(ev, bucket):
    c = candidate(ev)
    assert (c.bucket if c else None) == bucket
    d = route(ev, RoutingPolicy(method="bucket"))  # no estimates: nothing is certified, every candidate waits in review with its bucket
    assert d.route == "review" and d.bucket == bucket


def test_a_bucket_auto_accepts_only_when_its_lower_bound_reaches_the_target():
    ev = FaceEvidence(1, "none", None, (), probs("happy", 0.95))
    b = "model>=0.95:happy"
    at = {b: est(b, 0.93, 100, 97)}
    d = route(ev, RoutingPolicy(target_precision=0.95, method="bucket"), at)
    assert (d.route, d.kind, d.label, d.bucket) == ("review", "low_confidence", "happy", b)
    assert (d.precision, d.lower) == (0.97, 0.93) and "not certified at target 0.95" in d.reason
    d = route(ev, RoutingPolicy(target_precision=0.90, method="bucket"), at)
    assert (d.route, d.kind, d.label, d.bucket, d.lower) == ("auto", "model_confident", "happy", b, 0.93)
    assert "97/100 audits agree" in d.reason and "certified" in d.reason
    # another bucket's estimate does not help
    assert route(ev, RoutingPolicy(target_precision=0.5, method="bucket"), {"model>=0.95:sad": est("model>=0.95:sad", 0.99)}).route == "review"


def test_target_precision_must_be_a_probability():
    with pytest.raises(ValueError, match="between 0 and 1"):
        RoutingPolicy(target_precision=95)


def test_a_pending_text_check_holds_back_only_what_would_be_auto_accepted():
    ev = FaceEvidence(1, "none", None, (), probs("happy", 0.99), text_pending=True)
    waiting, done = route(ev, P, ALL), route(FaceEvidence(1, "none", None, (), probs("happy", 0.99)), P, ALL)
    assert (waiting.route, waiting.kind, waiting.bucket, waiting.lower) == ("review", "low_confidence", done.bucket, 0.97)
    assert done.route == "auto"
    # not certified: the same review as a face whose text was looked for
    assert route(ev, P, {}).reason == route(FaceEvidence(1, "none", None, (), probs("happy", 0.99)), P, {}).reason


def test_the_rule_for_a_pending_text_check():
    assert text_pending(None, 0.1) and text_pending(None, 0.0)  # measured image, text not looked for
    assert not text_pending(False, 0.1) and not text_pending(True, 0.1)  # looked for
    assert not text_pending(None, None)  # image never measured (--no-clean): `labeler clean` does it


def test_the_text_flag_reaches_the_evidence_and_blocks_whatever_the_block_flags():
    ev = evidence(1, "none", None, (), probs("happy", 0.99), "m@1", ("text",), False)
    assert ev.text_near and candidate(ev, P) is None
    assert route(ev, RoutingPolicy(block_flags=(), method="bucket"), ALL).route == "review"
    plain = evidence(1, "none", None, (), probs("happy", 0.99), "m@1", ("blurry_not",), False)
    assert not plain.text_near and route(plain, P, ALL).route == "auto"
