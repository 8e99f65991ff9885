"""The base's domain shipped as features, and the likeness that tells the project's faces from it
(issue 32)."""

from __future__ import annotations

import json
import shutil
import tomllib
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from labeler.fer.resolver import load_model, shipped_model
from labeler.training.basedomain import FILE_STEM, load_base_domain

from .conftest import ROOT, SAMPLE


def test_shipped_features_are_found_through_importlib_resources():
    model = shipped_model()
    dom, why = load_base_domain(model)
    assert dom is not None, why
    data = resources.files("labeler.data")
    npz = data / f"{FILE_STEM}{model.name}.npz"
    assert npz.is_file() and Path(dom.where) == Path(str(npz))
    assert len(npz.read_bytes()) < 5_000_000  # package data: a few MB, no images
    meta = json.loads((data / f"{FILE_STEM}{model.name}.json").read_text())
    assert meta["model"] == {"name": model.name, "version": model.version, "sha256": model.card.sha256}
    assert meta["command"].startswith("python scripts/train/base_domain_features.py") and meta["computed"]
    with zipfile.ZipFile(str(npz)) as z:  # features only: no 48x48 image among the arrays
        for name in z.namelist():
            assert name.split(".")[0].split("_", 1)[1] in (
                "emb", "logits", "probe", "probe_scale", "emb_flip", "logits_flip", "probe_flip", "probe_flip_scale", "y", "files")
    for s in (dom.gate, dom.replay):
        assert 1000 <= len(s) and s.E.shape == s.Ef.shape == (len(s), 256) and s.Z.shape == (len(s), 7)
        assert s.P.shape[0] == len(s) and set(np.unique(s.y)) == set(range(7))
    # real features: the base's own logits answer the FER+ majority of its validation faces as it does
    # there (82% on this class-capped sample; 83.9% on PublicTest)
    acc = ((dom.gate.Z + dom.gate.Zf).argmax(1) == dom.gate.y).mean()
    assert 0.75 < acc < 0.9
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "*.npz" in pyproject["tool"]["setuptools"]["package-data"]["labeler.data"]


def test_features_of_another_model_file_are_not_used(tmp_path):
    """Features describe one model file: another file of the same name (another sha256) or
    another model gets None and a line saying why, never the features."""
    model = shipped_model()
    for ext in ("npz", "json"):
        shutil.copy(Path(str(resources.files("labeler.data") / f"{FILE_STEM}{model.name}.{ext}")), tmp_path)
    assert load_base_domain(model, tmp_path)[0] is not None
    side = tmp_path / f"{FILE_STEM}{model.name}.json"
    meta = json.loads(side.read_text())
    meta["model"]["sha256"] = "0" * 64
    side.write_text(json.dumps(meta))
    dom, why = load_base_domain(model, tmp_path)
    assert dom is None and "not used" in why and "recompute them with scripts/train/base_domain_features.py" in why
    other = load_model("fer-mini-xception")
    dom, why = load_base_domain(other)
    assert dom is None and why.startswith(f"no shipped base-domain features for {other.name}")


def test_likeness_head_in_onnx_gives_the_numpy_answers(tmp_path):
    """The written head (the base graph + correction x likeness) answers what ResidualHead computes
    from the base's features, on real crops through the real network."""
    import cv2
    import onnxruntime as ort

    from labeler.fer.model import preprocess
    from labeler.training.likeness import ProbeRunner, fit_likeness
    from labeler.training.residual import ResidualHead, write_residual_onnx

    model = shipped_model()
    runner = ProbeRunner(model)
    assert len(runner.tensors) == 3  # the inputs of the network's three MaxPool nodes
    files = sorted(p for p in [*SAMPLE.glob("*.*"), *(SAMPLE / "crops").glob("*.*")] if cv2.imread(str(p)) is not None)
    imgs = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in files][:12]
    assert len(imgs) >= 6
    imgs += [np.ascontiguousarray(i[:, ::-1]) for i in imgs]
    E, Z, P = runner.run(imgs)
    F = np.concatenate([P, E], axis=1)
    lk = fit_likeness(F[::2], F[1::2], runner.tensors, epochs=50, power=2.0)
    rng = np.random.default_rng(0)
    head = ResidualHead(rng.normal(0, 0.05, (7, E.shape[1])), rng.normal(0, 0.5, 7), likeness=lk)
    w = head.weights(E, P)
    assert w.min() < w.max() - 0.05  # faces get different shares of the correction
    write_residual_onnx(model.card.file, tmp_path / "h.onnx", head.dW, head.db, likeness=lk)
    s = ort.InferenceSession(str(tmp_path / "h.onnx"), providers=["CPUExecutionProvider"])
    got = s.run(["logits"], {model.input_name: preprocess(imgs, model.input_spec)})[0]
    np.testing.assert_allclose(got, head.logits(E, Z, P), atol=2e-3)


def _convention_toy(seed=0):
    """Two domains with the same embeddings of each class: the base's domain A, and a project B
    whose annotators call the faces of class 2 "class 0" (a convention: FER+'s neutral, the
    project's sad); B differs from A in the earlier feature maps (the probe features), not in the
    embedding, so a distance in the embedding cannot tell them apart."""
    rng = np.random.default_rng(seed)
    k, c, p = 4, 8, 6
    centers = rng.normal(0, 3, (k, c))

    def draw(n, dom):
        looks = rng.integers(0, k, n)
        E = centers[looks] + rng.normal(0, 1, (n, c))
        Z = E @ centers.T / 8  # the base answers what a face looks like
        P = rng.normal(0, 1, (n, p)) + (2.5 if dom == "B" else 0.0)
        y = np.where((looks == 2) & (dom == "B"), 0, looks)  # B's annotators: class 2 is "0"
        return E, Z, P, y

    return k, draw


def test_likeness_learns_the_projects_convention_and_keeps_the_base_elsewhere():
    """Labels from B only: with the likeness (B's labeled faces against A's replay faces, on probe
    features + embedding) the head learns B's convention on most other B faces and A's answers stay
    the base's; with the kNN reach (which cannot tell A from B in the embedding) the replayed A faces
    hold the head back and B's convention is not learned."""
    from labeler.training.head import fit_residual_head
    from labeler.training.likeness import fit_likeness
    from labeler.training.residual import ResidualHead

    k, draw = _convention_toy(seed=1)
    E, Z, P, y = draw(400, "B")
    Er, Zr, Pr, _ = draw(800, "A")  # replay
    Ea, Za, Pa, _ = draw(800, "A")  # judged: the base's domain
    Eb, Zb, Pb, yb = draw(800, "B")  # judged: the project's domain
    two_b = Zb.argmax(1) == 2
    assert (Zb.argmax(1)[two_b] == yb[two_b]).mean() < 0.05  # the base does not follow B's convention
    kw = dict(t0=1.0, Er=Er, Zr=Zr, kd_replay=5.0, epochs=300)
    lk = fit_likeness(np.c_[P, E], np.c_[Pr, Er], epochs=300)
    dW, db, _, _ = fit_residual_head(E, Z, y, k, corr=(lk.weights(np.c_[P, E]), None, lk.weights(np.c_[Pr, Er])), **kw)
    like = ResidualHead(dW, db, likeness=lk)
    dW, db, _, reach = fit_residual_head(E, Z, y, k, reach_q=0.9, groups=np.arange(len(y)), **kw)
    near = ResidualHead(dW, db, reach=reach)
    res = {}
    for name, h in (("likeness", like), ("reach", near)):
        res[name] = {"A kept": (h.logits(Ea, Za, Pa).argmax(1) == Za.argmax(1)).mean(),
                     "B convention": (h.logits(Eb, Zb, Pb).argmax(1)[two_b] == 0).mean()}
    assert res["likeness"]["A kept"] >= 0.98 and res["likeness"]["B convention"] >= 0.7, res
    # the reach cannot have both: its replay (A's faces, in the same place of the embedding) holds B back
    assert res["reach"]["B convention"] < 0.3, res


def test_train_with_features_of_another_model_says_so_and_uses_the_offline_check(sample_db, tmp_path, monkeypatch):
    """Shipped features that do not describe the base model file are not used: the run says why
    (in its record) and the gate falls back to agreement with the base where it is sure."""
    import labeler.store as st
    from labeler.fer.resolver import USER_MODELS_ENV
    from labeler.training.retrain import train_head

    monkeypatch.setenv(USER_MODELS_ENV, str(tmp_path / "user_models"))
    store = st.Store(sample_db)
    recs = [r for r in st.iter_face_records(store) if r.face_id is not None and r.model_label]
    st.add_import_annotations(store, [(r.face_id, "t", "label", [r.model_label]) for r in recs[:8]], "test")
    model = shipped_model()
    for ext in ("npz", "json"):
        shutil.copy(Path(str(resources.files("labeler.data") / f"{FILE_STEM}{model.name}.{ext}")), tmp_path)
    side = tmp_path / f"{FILE_STEM}{model.name}.json"
    meta = json.loads(side.read_text())
    meta["model"]["sha256"] = "f" * 64
    side.write_text(json.dumps(meta))
    said = []
    res = train_head(store, out_dir=tmp_path / "m", epochs=30, holdout=0.5, domain_folder=tmp_path, log=said.append)
    assert any("not used" in s for s in said) and "not used" in res.metrics["training"]["base_domain"]
    assert res.metrics["training"]["weighting"]["kind"] == "reach"
    checks = [c["check"] for c in res.metrics["gate"]["checks"]]
    assert not any("the base's domain" in c and "significantly" in c for c in checks)
    assert any("where the base is sure" in c for c in checks) or "not worse on the base's domain" in checks
