"""Retraining: the numpy head, the ONNX head edit, calibration, promotion, re-proposal.

The default run needs no torch; the finetune test is marked slow and skipped without torch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

import labeler.store as st
from labeler import training
from labeler.fer.cards import read_card, sha256_file
from labeler.fer.model import softmax
from labeler.fer.resolver import USER_MODELS_ENV, load_model, shipped_model
from labeler.training.data import holdout_mask, labeled_data
from labeler.training.head import fit_softmax_head, old_head, write_head_onnx
from labeler.training.retrain import train_head
from labeler.training.metrics import better, evaluate, fit_temperature_pair
from labeler.training.versions import load

from .conftest import need_module


def _f(rec, key):
    """A face record's field (records are typed; a dict still works while the store migrates)."""
    return getattr(rec, key)


# --------------------------------------------------------------------------------------------
# pure parts


def test_holdout_mask_keeps_images_together_and_stratifies():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 2)  # two faces per image
    y = np.repeat(rng.integers(0, 3, 60), 2)
    held = holdout_mask(groups, y, 0.25, seed=1)
    for g in np.unique(groups):
        assert len(set(held[groups == g])) == 1  # an image is never split
    for c in range(3):
        n_img = len(np.unique(groups[y == c]))
        n_held = len(np.unique(groups[(y == c) & held]))
        assert 1 <= n_held <= n_img - 1
        assert abs(n_held - 0.25 * n_img) <= 1
    assert (holdout_mask(groups, y, 0.25, seed=1) == held).all()  # deterministic


def test_softmax_head_learns_and_keeps_absent_classes():
    rng = np.random.default_rng(0)
    k, c = 4, 6
    centers = rng.normal(0, 3, (3, c))
    y = rng.integers(0, 3, 300)  # class 3 absent
    X = centers[y] + rng.normal(0, 1, (300, c))
    w0 = rng.normal(0, 0.1, (k, c))
    b0 = np.zeros(k)
    W, b = fit_softmax_head(X, y, k, w0=w0, b0=b0, l2=1e-4, epochs=300)
    acc = ((X @ W.T + b).argmax(1) == y).mean()
    assert acc > 0.95
    assert np.allclose(W[3], w0[3]) and np.isclose(b[3], b0[3])
    W2, b2 = fit_softmax_head(X, y, k, l2=1e-4, epochs=300)  # no prior: absent class kept, suppressed
    assert np.allclose(W2[3], 0) and b2[3] < b2[:3].min()


def test_the_pair_temperature_is_fitted_on_the_flip_averaged_logits():
    """fit_temperature_pair fits the logits the model answers with under flip averaging: two noisy
    views whose mean is the true logits recover the true temperature, one view alone does not.
    (Recovering a known temperature from one set of logits: tests/test_calibration.py.)"""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (4000, 5))
    y = np.array([rng.choice(5, p=pi) for pi in softmax(z, 2.0)])
    e = rng.normal(0, 3, z.shape)
    assert 1.8 < fit_temperature_pair(z + e, z - e, y) < 2.2
    assert fit_temperature_pair(z + e, None, y) > 3.0  # the noisy view alone looks over-confident
    assert fit_temperature_pair(z[:0], z[:0], y[:0]) == 1.0  # no labels: unchanged


def test_evaluate_and_promotion_rule():
    labels = ["a", "b", "c"]
    y = np.array([0, 0, 1, 1, 2])
    probs = np.eye(3)[[0, 0, 1, 2, 2]] * 0.8 + 0.2 / 3
    m = evaluate(probs, y, labels)
    assert m["accuracy"] == 0.8 and m["confusion"][1] == [0, 1, 1]
    assert better({"macro_f1": 0.5, "accuracy": 0.1}, {"macro_f1": 0.4, "accuracy": 0.9})
    assert better({"macro_f1": 0.5, "accuracy": 0.6}, {"macro_f1": 0.5, "accuracy": 0.5})
    assert not better({"macro_f1": 0.5, "accuracy": 0.5}, {"macro_f1": 0.5, "accuracy": 0.5})
    assert not better({"macro_f1": 0.3, "accuracy": 0.9}, {"macro_f1": 0.4, "accuracy": 0.1})


def _toy_onnx(path: Path) -> None:
    """input (N,1,8,8) -> Conv 4ch -> Relu = feat; embedding = Flatten(GAP(feat)); logits = Flatten(GAP(Conv1x1 7ch(feat)))."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.5, (7, 4, 1, 1)).astype(np.float32)
    b2 = rng.normal(0, 0.5, (7,)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["feat"]),
        helper.make_node("GlobalAveragePool", ["feat"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["embedding"]),
        helper.make_node("Conv", ["feat", "w2", "b2"], ["c2"]),
        helper.make_node("GlobalAveragePool", ["c2"], ["gap2"]),
        helper.make_node("Flatten", ["gap2"], ["logits"]),
    ]
    g = helper.make_graph(
        nodes, "toy", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 7]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def test_head_onnx_edit_keeps_names_and_computes_the_new_head(tmp_path):
    import onnxruntime as ort

    base, new = tmp_path / "toy.onnx", tmp_path / "toy_head.onnx"
    _toy_onnx(base)
    labels = list("abcdefg")
    W0, b0, how = old_head(base, labels)
    assert how == "conv1x1"
    x = np.random.default_rng(1).normal(size=(5, 1, 8, 8)).astype(np.float32)
    s0 = ort.InferenceSession(str(base), providers=["CPUExecutionProvider"])
    l0, e0 = s0.run(["logits", "embedding"], {"input": x})
    assert np.abs(e0 @ W0.T + b0 - l0).max() < 1e-4  # a 1x1 conv head is exactly linear in the embedding
    W = np.random.default_rng(2).normal(size=(7, 4))
    b = np.arange(7, dtype=float)
    write_head_onnx(base, new, W, b)
    s1 = ort.InferenceSession(str(new), providers=["CPUExecutionProvider"])
    assert [i.name for i in s1.get_inputs()] == ["input"]
    assert sorted(o.name for o in s1.get_outputs()) == ["embedding", "logits"]
    l1, e1 = s1.run(["logits", "embedding"], {"input": x})
    assert np.allclose(e1, e0, atol=1e-6) and np.allclose(l1, e0 @ W.T + b, atol=1e-4)
    assert old_head(new, labels)[2] == "gemm"


# --------------------------------------------------------------------------------------------
# end to end on the sample database (needs the shipped models)


def _annotate_with_model_labels(store, shift: int = 0, annotator: str = "tester") -> dict[int, str]:
    """Label every sample face with the shipped model's own top-1 (so the shipped model is right on
    all of them); returns face_id -> label."""
    from labeler.types import LABELS

    items, out = [], {}
    for rec in st.iter_face_records(store):
        fid, lab = _f(rec, "face_id"), _f(rec, "model_label")
        if fid is None or not lab:
            continue
        out[fid] = lab
        items.append((fid, annotator, "label", [lab]))
    st.add_import_annotations(store, items, "test")
    return out


def _annotations(store):
    with store.session() as s:
        return [(a.id, a.face_id, a.annotator, a.action, a.labels) for a in s.scalars(select(st.Annotation).order_by(st.Annotation.id))]


@pytest.fixture
def labeled_sample(sample_db, tmp_path, monkeypatch):
    monkeypatch.setenv(USER_MODELS_ENV, str(tmp_path / "user_models"))
    store = st.Store(sample_db)
    labels = _annotate_with_model_labels(store)
    # sample_data/ holds photos that always have faces (the astronauts, the team photo): fewer is a regression
    assert len(labels) >= 8, f"the sample database has {len(labels)} labeled faces, expected 8 or more: a detector or pipeline regression"
    return store, labels


def test_train_head_end_to_end(labeled_sample, tmp_path):
    from labeler.ingest.imageio import decode_crop

    store, labels = labeled_sample
    res = train_head(store, out_dir=tmp_path / "m", epochs=100, holdout=0.3)
    side = Path(res.sidecar)
    card = read_card(side)  # verifies sha256
    meta = json.loads(side.read_text())
    shipped = shipped_model()
    assert meta["sha256"] == sha256_file(Path(res.onnx))
    assert meta["labels"] == list(shipped.labels)
    assert meta["outputs"] == shipped.card.meta.get("outputs")
    assert meta["input"] == shipped.card.meta.get("input")
    assert meta["source"]["parent"] == shipped.ident
    assert meta["calibration"]["temperature"] > 0 and meta["data"]["labeled_faces"] == len(labels)
    m = load_model(str(side))
    assert m.ident == card.ident == res.ident
    crops = [decode_crop(b) for b in st.face_crops(store, list(labels)[:3]).values()]
    p = m.predict(crops)
    assert p.shape == (len(crops), len(m.labels)) and np.allclose(p.sum(1), 1, atol=1e-4)
    rows = st.model_version_rows(store)
    assert rows[-1]["version"] == res.version and "before" in rows[-1]["metrics"] and "after" in rows[-1]["metrics"]
    # the faces it learned from are recorded: their audits do not measure it (labeler.store.audit)
    assert len(rows[-1]["metrics"]["trained_on"]) == rows[-1]["metrics"]["data"]["train_faces"] > 0
    assert set(rows[-1]["metrics"]["trained_on"]) <= set(labels)
    for side_ in ("before", "after"):
        assert {"accuracy", "macro_f1", "ece", "confusion"} <= set(res.metrics[side_])
    # the shipped model is right on every label here: a head can at best tie, so it is not promoted
    assert res.metrics["before"]["accuracy"] == 1.0
    assert not res.promoted and store.get_setting(st.DEFAULT_MODEL_KEY) is None
    rows = {r.ident: r for r in training.project_models(store)}
    assert rows[res.ident].metrics["after"] == res.after and not rows[res.ident].default
    assert sum(r.default for r in rows.values()) == 1 and rows[shipped.ident].default


def test_worse_model_is_not_promoted_and_force_promotes(labeled_sample, tmp_path):
    store, labels = labeled_sample
    fids, iids, y, _ = labeled_data(store, shipped_model().labels)
    wrong = (y + 1) % 7  # systematically wrong labels: a worse model
    res = train_head(store, out_dir=tmp_path / "m", epochs=300, l2=0.0, lr=0.1, holdout=0.3, labels_override=wrong,
                     min_class=0, kd=0.0)
    assert res.metrics["after"]["macro_f1"] < res.metrics["before"]["macro_f1"]
    assert not res.promoted and store.get_setting(st.DEFAULT_MODEL_KEY) is None
    forced = train_head(store, out_dir=tmp_path / "m", epochs=50, holdout=0.3, force=True)
    assert forced.promoted and store.get_setting(st.DEFAULT_MODEL_KEY) == forced.sidecar
    assert training.set_default(store, "shipped") == shipped_model().ident
    assert store.get_setting(st.DEFAULT_MODEL_KEY) is None
    assert training.set_default(store, forced.ident) == forced.ident


def test_repropose_with_new_model_keeps_human_labels(sample_db, tmp_path, monkeypatch):
    from labeler.config import Config
    from labeler.pipeline import Autolabeler

    monkeypatch.setenv(USER_MODELS_ENV, str(tmp_path / "user_models"))
    store = st.Store(sample_db)
    all_faces = [_f(r, "face_id") for r in st.iter_face_records(store) if _f(r, "face_id") is not None]
    labels = _annotate_with_model_labels(store)
    # leave some faces unlabeled so re-proposal has work; undo the labels of the last two
    on_frames = st.video_face_ids(store)  # faces of the sample video keep their tracks' proposals
    all_faces = [f for f in all_faces if f not in on_frames]
    with store.session() as s:
        last = s.scalars(select(st.Annotation).where(st.Annotation.face_id.not_in(on_frames))
                         .order_by(st.Annotation.id.desc()).limit(2)).all()
        for a in last:
            s.add(st.Annotation(face_id=a.face_id, annotator=a.annotator, action="undo", undoes_id=a.id, source="test"))
    res = train_head(store, out_dir=tmp_path / "m", epochs=50, holdout=0.3, force=True)
    before = _annotations(store)
    human = {fid for fid, *_ in st.human_labeled_faces(store)}
    al = Autolabeler(store, Config())
    assert al.model.ident == res.ident
    n = al.repropose(only_stale=False)
    assert n == len([f for f in all_faces if f not in human])
    assert _annotations(store) == before  # annotations untouched
    recs = {_f(r, "face_id"): r for r in st.iter_face_records(store) if _f(r, "face_id") is not None}
    for fid, r in recs.items():
        if fid in human:
            assert _f(r, "label") == labels[fid] and _f(r, "label_source").startswith("human:")
            assert _f(r, "model_source") != res.ident  # labeled faces are not re-proposed
        else:
            assert _f(r, "model_source") == res.ident


def test_calibrate_writes_a_calibrated_copy_and_makes_it_default(labeled_sample, tmp_path):
    store, _labels = labeled_sample
    shipped = shipped_model()
    res = training.calibrate(store)
    side = Path(res.sidecar)
    meta = json.loads(side.read_text())
    assert Path(meta["file"]).resolve() == Path(shipped.card.file).resolve()
    assert meta["sha256"] == shipped.card.sha256
    assert meta["calibration"]["temperature"] == res.temperature > 0
    assert store.get_setting(st.DEFAULT_MODEL_KEY) == str(side.resolve())
    m = load(store)
    assert m.ident == res.ident != shipped.ident
    assert load_model(str(side)).ident == res.ident


def test_train_entry_point_takes_a_url_and_passes_its_options_on(labeled_sample, tmp_path):
    """training.train with the database URL alone (as a thread or a subprocess calls it): the model
    is written where asked, registered in that database, and trained with the options given."""
    store, _labels = labeled_sample
    said = []
    url = store.engine.url.render_as_string(hide_password=False)
    res = training.train(url, mode="head", holdout=0.5, seed=3, epochs=20, out_dir=tmp_path / "m", log=said.append)
    assert isinstance(res, training.TrainResult)
    t = res.metrics["training"]
    assert (t["mode"], t["epochs"], t["holdout"], t["seed"], t["folds"]) == ("head", 20, 0.5, 3, 2)
    assert Path(res.sidecar).parent == tmp_path / "m" and json.loads(Path(res.sidecar).read_text())["training"]["epochs"] == 20
    assert res.ident in {r.ident for r in training.project_models(st.Store(url))}
    assert said and all(isinstance(s, str) and s for s in said)
    assert res.lines()[0].startswith(f"model {res.ident} (from {shipped_model().ident})")
    assert res.lines()[-1].startswith("not promoted: ")
    with pytest.raises(training.ConfigError, match="expected one of head, finetune"):
        training.train(store, mode="bogus")


def test_too_few_labels_say_what_to_do(sample_db):
    from labeler.errors import LabelerError

    with pytest.raises(LabelerError, match="not enough human labels to train: expected at least 4"):
        train_head(st.Store(sample_db))


# --------------------------------------------------------------------------------------------
# the `train` extra


@pytest.mark.slow
def test_torch_rebuild_matches_onnxruntime_and_finetune_runs(labeled_sample, tmp_path):
    need_module("torch", "torch", "pip install 'labeler[train]'")
    from labeler.training import torchnet

    store, _labels = labeled_sample
    shipped = shipped_model()
    diffs = torchnet.check_against_onnxruntime(shipped.card.file)
    assert max(diffs.values()) < 1e-4, diffs
    from labeler.training.finetune import train_finetune

    res = train_finetune(store, out_dir=tmp_path / "ft", head_epochs=1, epochs=1, batch_size=8, holdout=0.3)
    card = read_card(Path(res.sidecar))
    m = load_model(str(card.sidecar))
    assert m.labels == shipped.labels
    assert max(torchnet.check_against_onnxruntime(card.file).values()) < 1e-4


def test_cli_train_models_calibrate(labeled_sample, capsys):
    """The three commands end to end: one report, one table, one JSON; user errors are one line, exit 2."""
    from labeler.cli import main

    store, _labels = labeled_sample
    db = store.url
    assert main(["train", "--db", db, "--holdout", "0.3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("model fer-ferplus-cnn-head@") and out[-1].startswith("not promoted: ")
    head = out[0].split()[1]
    # issue 32: no --base-data, yet the gate judges on the base's domain from the shipped features,
    # and says its p-values and bounds
    dom = next(line for line in out if line.startswith("gate: [ok] not significantly worse on the base's domain"))
    assert "n=1538" in dom and "shipped FER2013 faces" in dom and "McNemar p" in dom and "95% bounds" in dom
    rec = st.model_version_rows(store)[-1]["metrics"]
    assert "shipped base-domain features" in rec["training"]["base_domain"] and rec["training"]["weighting"]["kind"] == "likeness"
    stats = next(c for c in rec["gate"]["checks"] if c["check"] == "not significantly worse on the base's domain")["stats"]["all"]
    assert stats["n"] == 1538 and 0 <= stats["p_worse"] <= 1 and stats["lower"] <= stats["upper"]
    assert main(["models", "--db", db]) == 0
    table = capsys.readouterr().out.splitlines()
    assert any(head in line and "gate: held-out" in line and "base domain nearest class" in line for line in table)
    assert any(line.startswith("* fer-ferplus-cnn@") for line in table)
    # the shipped models show their own benchmark figures (sidecar "evaluation")
    shipped_lines = [line for line in table if "[shipped]" in line]
    assert len(shipped_lines) == 2 and all(re.search(r"PublicTest FER\+ \d+\.\d% ECE 0\.\d+; dev web_keyword \d", line)
                                           for line in shipped_lines)
    assert any(head in line and "[user]" in line and "held-out macro-F1" in line for line in table)
    assert main(["models", "--db", db, "--default", head]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"default model: {head}"
    assert main(["calibrate", "--db", db]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) == {"sidecar", "ident", "temperature"} and res["ident"].startswith("fer-ferplus-cnn-head@")
    assert store.get_setting(st.DEFAULT_MODEL_KEY) == res["sidecar"]  # the calibrated default stays the default
    assert main(["train", "--db", db, "--base", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'no-such-model' not found" in err[0]


# --------------------------------------------------------------------------------------------
# issue 11: the residual head, its guards and the promotion gate


def test_residual_onnx_is_the_base_plus_the_correction(tmp_path):
    import onnxruntime as ort

    from labeler.training.residual import write_residual_onnx

    base, new = tmp_path / "toy.onnx", tmp_path / "toy_res.onnx"
    _toy_onnx(base)
    x = np.random.default_rng(1).normal(size=(5, 1, 8, 8)).astype(np.float32)
    l0, e0 = ort.InferenceSession(str(base), providers=["CPUExecutionProvider"]).run(["logits", "embedding"], {"input": x})
    dW = np.random.default_rng(2).normal(size=(7, 4))
    db = np.arange(7, dtype=float)
    write_residual_onnx(base, new, dW, db)
    s1 = ort.InferenceSession(str(new), providers=["CPUExecutionProvider"])
    assert [i.name for i in s1.get_inputs()] == ["input"] and sorted(o.name for o in s1.get_outputs()) == ["embedding", "logits"]
    l1, e1 = s1.run(["logits", "embedding"], {"input": x})
    assert np.allclose(e1, e0, atol=1e-6) and np.allclose(l1, l0 + e0 @ dW.T + db, atol=1e-4)
    write_residual_onnx(base, new, np.zeros((7, 4)), np.zeros(7))  # a zero correction IS the base
    assert np.allclose(ort.InferenceSession(str(new), providers=["CPUExecutionProvider"]).run(["logits"], {"input": x})[0], l0, atol=1e-5)


def _two_domain_toy(seed=0):
    """Embeddings of 4 classes in two domains; the base's logits are right in domain A and
    shifted in domain B; the human labels cover classes 0 and 1 of domain B only."""
    rng = np.random.default_rng(seed)
    k, c = 4, 8
    centers = rng.normal(0, 3, (k, c))
    shift = np.zeros(c)
    shift[0] = 4.0

    def draw(n, classes, dom):
        y = rng.choice(classes, n)
        E = centers[y] + rng.normal(0, 1, (n, c)) + (shift if dom == "B" else 0)
        Z = E[:, :k] * 0 + (E - (shift if dom == "B" else 0)) @ centers.T / 4  # the base sees through the shift, roughly
        Z = Z - (1.5 * (dom == "B")) * np.eye(k)[y]  # ...but is worse in domain B
        return E, Z, y

    return k, draw


def test_guards_keep_the_base_where_the_labels_say_nothing():
    from labeler.training.head import fit_residual_head

    k, draw = _two_domain_toy(seed=2)
    E, Z, y = draw(300, [0, 1], "B")  # labels: two classes, one domain
    Eu, Zu, yu = draw(600, [0, 1, 2, 3], "A")  # unlabeled: every class, the other domain
    dW, db, guarded, _ = fit_residual_head(E, Z, y, k, t0=1.0, Eu=Eu, Zu=Zu, kd=25.0)
    assert list(guarded) == [False, False, True, True]
    assert np.all(dW[2:] == 0)  # classes without labels keep the base's weights (their bias follows the distillation)
    base_top, new_top = Zu.argmax(1), (Zu + Eu @ dW.T + db).argmax(1)
    uncovered = np.isin(base_top, [2, 3])
    assert uncovered.sum() > 100
    assert (new_top[uncovered] == base_top[uncovered]).mean() >= 0.98  # the base's prediction of an uncovered class stays
    # without the guards (no class guard, no distillation) a one-domain label set erases classes 2 and 3
    dW0, db0, _, _ = fit_residual_head(E, Z, y, k, t0=1.0, Eu=Eu, Zu=Zu, kd=0.0, min_class=0)
    assert ((Zu + Eu @ dW0.T + db0).argmax(1)[uncovered] == base_top[uncovered]).mean() < 0.9


def test_guarded_bias_moves_by_distillation_only():
    """A class without labels: its weights stay the base's; its bias is moved by the distillation
    terms alone (no distillation: it stays zero; labels never move it), and on the unlabeled
    faces the base called it, more of those answers are kept than with the bias held at zero."""
    from labeler.training.head import fit_residual_head

    k, draw = _two_domain_toy(seed=2)
    E, Z, y = draw(300, [0, 1], "B")
    Eu, Zu, _ = draw(600, [0, 1, 2, 3], "A")
    Er, Zr, _ = draw(600, [0, 1, 2, 3], "A")  # other faces of the unlabeled domain, to judge on
    dW, db, guarded, _ = fit_residual_head(E, Z, y, k, t0=1.0, kd=0.0)
    assert list(guarded) == [False, False, True, True] and np.all(dW[2:] == 0) and np.all(db[2:] == 0)
    kept = {}
    for on in (False, True):
        dW, db, _, _ = fit_residual_head(E, Z, y, k, t0=1.0, Eu=Eu, Zu=Zu, kd=1.0, guarded_bias_kd=on)
        assert np.all(dW[2:] == 0) and (np.any(db[2:] != 0) if on else np.all(db[2:] == 0))
        base_top = Zr.argmax(1)
        unc = np.isin(base_top, [2, 3])
        kept[on] = ((Zr + Er @ dW.T + db).argmax(1)[unc] == base_top[unc]).mean()
    assert kept[True] > kept[False] + 0.03, kept


def test_replay_keeps_the_base_on_its_own_domain():
    """A project whose faces (labeled and not) are all of domain B, where class 0 looks much like
    class 2 and the base calls a quarter of them class 2 (as fer-ferplus-cnn calls web photos' "sad"
    faces neutral); the labels cover classes 0 and 1. Distilling on the project's faces cannot see
    domain A: the head that learns "more 0" there moves A's class-2 answers too. Replayed images of
    the base's domain A keep more of them (at some cost on B: the trade-off kd_replay weighs)."""
    from labeler.training.head import fit_residual_head

    rng = np.random.default_rng(3)
    k, c = 4, 8
    centers = rng.normal(0, 3, (k, c))

    def draw(n, classes, dom):
        y = rng.choice(classes, n)
        m = centers[y].copy()
        if dom == "B":
            m[y == 0] = 0.2 * centers[0] + 0.8 * centers[2]
        E = m + rng.normal(0, 1, (n, c))
        return E, E @ centers.T / 8, y

    E, Z, y = draw(300, [0, 1], "B")
    Eu, Zu, _ = draw(600, [0, 1, 2, 3], "B")
    Er, Zr, _ = draw(600, [0, 1, 2, 3], "A")  # replay
    Ea, Za, ya = draw(600, [0, 1, 2, 3], "A")  # judged: other images of domain A
    assert (Z.argmax(1) == y).mean() < 0.8 and (Za.argmax(1) == ya).mean() > 0.95
    kept, learned = {}, {}
    for name, extra in (("no replay", {}), ("replay", dict(Er=Er, Zr=Zr, kd_replay=25.0))):
        dW, db, _, _ = fit_residual_head(E, Z, y, k, t0=1.0, Eu=Eu, Zu=Zu, kd=1.0, **extra)
        learned[name] = ((Z + E @ dW.T + db).argmax(1) == y).mean()
        kept[name] = ((Za + Ea @ dW.T + db).argmax(1) == Za.argmax(1)).mean()
    assert min(learned.values()) > (Z.argmax(1) == y).mean() + 0.08, learned  # both learn domain B
    assert kept["replay"] >= 0.985 and kept["replay"] > kept["no replay"] + 0.015, kept


def test_reach_keeps_the_base_away_from_the_labeled_faces():
    """Labels from domain B only (far from domain A in the embedding): with its reach the head still
    learns B, and A's answers stay the base's; the same head applied to every face alike moves them."""
    from labeler.training.head import fit_residual_head

    rng = np.random.default_rng(4)
    k, c = 4, 8
    centers = rng.normal(0, 3, (k, c))
    off = np.zeros(c)
    off[-1] = 12.0  # domain B sits apart in one direction of the embedding

    def draw(n, classes, dom):
        y = rng.choice(classes, n)
        m = centers[y].copy()
        if dom == "B":  # in domain B class 0 looks much like class 2 (the base calls most of them 2)
            m[y == 0] = 0.2 * centers[0] + 0.8 * centers[2]
        E = m + rng.normal(0, 1, (n, c)) + (off if dom == "B" else 0)
        return E, (E - (off if dom == "B" else 0)) @ centers.T / 8, y

    E, Z, y = draw(300, [0, 1, 2, 3], "B")
    Eb, Zb, yb = draw(400, [0, 1, 2, 3], "B")  # other faces of B
    assert (Zb.argmax(1) == yb).mean() < 0.85
    Ea, Za, _ = draw(600, [0, 1, 2, 3], "A")
    res = {}
    for name, q in (("everywhere", None), ("reach", 0.9)):
        dW, db, _, reach = fit_residual_head(E, Z, y, k, t0=1.0, kd=0.0, reach_q=q, groups=np.arange(len(y)))
        wa = reach.weights(Ea)[:, None] if reach else 1.0
        wb = reach.weights(Eb)[:, None] if reach else 1.0
        res[name] = {"A kept": ((Za + wa * (Ea @ dW.T + db)).argmax(1) == Za.argmax(1)).mean(),
                     "B right": ((Zb + wb * (Eb @ dW.T + db)).argmax(1) == yb).mean()}
        if reach:
            assert np.median(reach.weights(Eb)) > 0.5 and reach.weights(Ea).max() < 0.05
    assert res["reach"]["A kept"] >= 0.995 and res["everywhere"]["A kept"] < 0.97, res
    assert res["reach"]["B right"] > (Zb.argmax(1) == yb).mean() + 0.05, res  # it still learns domain B


def test_residual_onnx_with_reach_matches_numpy(tmp_path):
    import onnxruntime as ort

    from labeler.training.residual import write_residual_onnx
    from labeler.training.reach import make_reach

    base, new = tmp_path / "toy.onnx", tmp_path / "toy_reach.onnx"
    _toy_onnx(base)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 1, 8, 8)).astype(np.float32)
    l0, e0 = ort.InferenceSession(str(base), providers=["CPUExecutionProvider"]).run(["logits", "embedding"], {"input": x})
    e0 = e0.astype(np.float64)
    mu, sd = e0.mean(0), e0.std(0) + 1e-3
    reach = make_reach((e0[:4] - mu) / sd, mu, sd, np.arange(4), k=2)
    dW, db = rng.normal(size=(7, 4)), rng.normal(size=7)
    write_residual_onnx(base, new, dW, db, reach)
    l1 = ort.InferenceSession(str(new), providers=["CPUExecutionProvider"]).run(["logits"], {"input": x})[0]
    w = reach.weights(e0)
    assert w.min() < 0.99 and w.max() > 0.3  # the faces are weighted differently
    np.testing.assert_allclose(l1, l0 + w[:, None] * (e0 @ dW.T + db), atol=1e-3)


def test_replay_images_are_not_the_ones_the_gate_judges(tmp_path):
    import cv2

    from labeler.training.basedomain import base_data_sample, replay_sample

    rng = np.random.default_rng(0)
    for lab, n in (("happy", 130), ("sad", 40)):
        (tmp_path / lab).mkdir()
        for i in range(n):
            cv2.imwrite(str(tmp_path / lab / f"{i}.png"), rng.integers(0, 255, (8, 8), dtype=np.uint8))
    judged, _ = base_data_sample(tmp_path, ["happy", "sad"])
    replay = replay_sample(tmp_path, ["happy", "sad"], per_class=200)
    assert len(judged) == 100 + 40 and len(replay) == 30 and not set(judged) & set(replay)
    assert replay == replay_sample(tmp_path, ["happy", "sad"], per_class=200)  # seeded
    for seed in (1, 2):  # another training seed draws other replay images, never the ones the gate judges
        other = replay_sample(tmp_path, ["happy", "sad"], per_class=20, seed=seed)
        assert len(other) == 20 and not set(judged) & set(other)


def _outcomes(name, per_class, labels=("a", "b")):
    """Paired outcomes with, per class, (both right, gains, losses, neither) faces."""
    from labeler.training.gate import Outcomes

    old, new, y = [], [], []
    for c, lab in enumerate(labels):
        both, gains, losses, neither = per_class[lab]
        old += [1] * both + [0] * gains + [1] * losses + [0] * neither
        new += [1] * both + [1] * gains + [0] * losses + [0] * neither
        y += [c] * (both + gains + losses + neither)
    return Outcomes(name, "toy", np.array(old, bool), np.array(new, bool), np.array(y), tuple(labels))


@pytest.mark.parametrize("held, base, promoted, why", [
    # held-out +10 of 100 (p ~ 0.001), base domain two faces of 100 lost in a class: promoted
    ({"a": (40, 6, 0, 4), "b": (40, 4, 0, 6)}, {"a": (98, 0, 2, 0), "b": (100, 0, 0, 0)}, True, "significantly better on held-out"),
    # held-out +2 of 100: not evidence
    ({"a": (40, 1, 0, 9), "b": (40, 1, 0, 9)}, {"a": (100, 0, 0, 0), "b": (100, 0, 0, 0)}, False, "better on held-out human labels"),
    # a held-out class loses 10 of 50 (while the other wins 20): significantly worse beyond the margin
    ({"a": (30, 0, 10, 10), "b": (20, 20, 0, 10)}, {"a": (100, 0, 0, 0), "b": (100, 0, 0, 0)}, False,
     "no class significantly worse on held-out"),
    # the base domain loses 10 of 100 in one class (and overall 10 of 200: -5 points, bound below -2)
    ({"a": (40, 6, 0, 4), "b": (40, 4, 0, 6)}, {"a": (90, 0, 10, 0), "b": (100, 0, 0, 0)}, False,
     "not significantly worse on the base's domain"),
    # 6 of 100 in one class, spread over a big set: the set holds, the class does not
    ({"a": (40, 6, 0, 4), "b": (40, 4, 0, 6)}, {"a": (94, 0, 6, 0), "b": (900, 0, 0, 0)}, False,
     "no class significantly worse on the base's domain"),
])
def test_gate_table(held, base, promoted, why):
    from labeler.training.gate import gate

    g = gate(_outcomes("held-out human labels", held), [_outcomes("the base's domain", base)])
    assert g.promoted is promoted and g.reason.startswith(why), g.reason
    assert len(g.checks) == 4 and all("p better" in c.detail or "within the margin" in c.detail or "bounds" in c.detail
                                      for c in g.checks)
    forced = gate(_outcomes("held-out human labels", held), [_outcomes("the base's domain", base)], force=True)
    assert forced.promoted and forced.reason.startswith("forced")
    d = g.as_dict()  # what the model's record keeps: the rule, the margin and every p-value and bound
    assert d["margin"] == 0.02 and d["alpha"] == 0.05 and "McNemar" in d["rule"]
    assert {"p_better", "p_worse", "lower", "upper", "gains", "losses"} <= set(d["checks"][0]["stats"]["all"])


def test_gate_refuses_a_head_trained_on_one_class(sample_db, tmp_path, monkeypatch):
    """Every human label says 'sad' (a deliberately one-class label set): an unguarded head learns
    to say sad everywhere and wins on the held-out labels, but the base-domain check sees the harm."""
    import cv2

    from labeler.ingest.imageio import decode_crop

    monkeypatch.setenv(USER_MODELS_ENV, str(tmp_path / "user_models"))
    store = st.Store(sample_db)
    recs = [r for r in st.iter_face_records(store) if r.face_id is not None and r.model_label]
    assert len(recs) >= 8, f"the sample database has {len(recs)} faces with a proposal, expected 8 or more"
    st.add_import_annotations(store, [(r.face_id, "one-class", "label", ["sad"]) for r in recs], "test")
    # the base's own domain, as a folder: the faces filed under the base's answer
    base_dir = tmp_path / "base_data"
    for fid, raw in st.face_crops(store, [r.face_id for r in recs]).items():
        lab = next(r.model_label for r in recs if r.face_id == fid)
        (base_dir / lab).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(base_dir / lab / f"{fid}.png"), cv2.cvtColor(decode_crop(raw), cv2.COLOR_RGB2BGR))
    res = train_head(store, out_dir=tmp_path / "m", epochs=300, lr=0.1, l2=0.0, holdout=0.3, min_class=0, kd=0.0,
                     base_data=base_dir)
    assert res.after["accuracy"] > res.before["accuracy"]  # "better on held-out": the held-out part is all sad too
    checks = {c["check"]: c for c in res.metrics["gate"]["checks"]}
    print("\n".join(res.lines()))
    assert checks["better on held-out human labels"]["passed"]
    assert not checks["not significantly worse on the base's domain"]["passed"]
    assert not res.promoted and res.reason.startswith("not significantly worse on the base's domain")
    assert store.get_setting(st.DEFAULT_MODEL_KEY) is None
    assert res.metrics["base_domain"]["base"]["accuracy"] == 1.0
    rows = {r.ident: r for r in training.project_models(store)}
    assert "base domain acc" in rows[res.ident].line() and "not promoted" in rows[res.ident].line()


def test_holdout_mask_is_stable_as_labels_grow():
    rng = np.random.default_rng(3)
    groups = np.arange(200)
    y = rng.integers(0, 4, 200)
    small = holdout_mask(groups[:150], y[:150], 0.2, seed=0)
    big = holdout_mask(groups, y, 0.2, seed=0)
    moved = (small != big[:150]).sum()
    assert moved <= 8  # only groups at each class's boundary change side
    assert big.sum() >= 35
