"""scripts/train/train_base.py end to end on a tiny generated FER2013-like folder: one short epoch, ONNX
export, sidecar, and loading the result through labeler's model registry (torch needed: skipped without it, a failure where LABELER_REQUIRE_TORCH is set)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import cv2

from .conftest import need_module

torch = need_module("torch", "torch", "pip install 'labeler[train]'")

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
COLS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]
OUR_TO_COL = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness", "sad": "sadness",
              "surprise": "surprise", "neutral": "neutral"}


def _fake_fer(root, per_class=(10, 2)):
    """<root>/{train,public_test}/<class>/*.jpg (48x48 gray, a class-dependent pattern plus noise) and
    <root>/ferplus_votes.csv (mostly the folder's class, some neutral votes; a few special rows)."""
    rng = np.random.default_rng(0)
    rows = []
    for split, n in zip(("train", "public_test"), per_class):
        for k, lab in enumerate(LABELS):
            d = root / split / lab
            d.mkdir(parents=True)
            for i in range(n):
                img = np.full((48, 48), 60 + 25 * k, np.float32)
                img[8 + 4 * k: 14 + 4 * k, 10:38] = 230  # a class-dependent bar
                img += rng.normal(0, 12, img.shape)
                name = f"{'Training' if split == 'train' else 'PublicTest'}_{k}{i:03d}.jpg"
                cv2.imwrite(str(d / name), np.clip(img, 0, 255).astype(np.uint8))
                votes = dict.fromkeys(COLS, 0)
                votes[OUR_TO_COL[lab]] = 7
                votes["neutral"] += 3
                if i == 0 and split == "train":
                    votes = dict.fromkeys(COLS, 0) | {"NF": 10}  # not a face: left out
                rows.append({"file": f"{split}/{lab}/{name}", **votes, "note": ""})
    rows[-1] = {"file": rows[-1]["file"], **dict.fromkeys(COLS, ""), "note": ""}  # a file without votes
    with open(root / "ferplus_votes.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file"] + COLS + ["note"])
        w.writeheader()
        w.writerows(rows)


def test_vote_targets_rules():
    from labeler.training.base_train import vote_targets

    # columns: anger disgust fear happiness sadness surprise neutral contempt unknown NF
    v = np.array([
        [0, 0, 0, 6, 0, 0, 4, 0, 0, 0],   # happy 0.6 / neutral 0.4, majority happy
        [0, 0, 0, 0, 0, 0, 3, 2, 5, 0],   # unknown majority: left out
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],   # no votes: left out
        [4, 0, 0, 0, 4, 0, 0, 0, 0, 2],   # a tie: kept for training (0.5 / 0.5), no majority label
        [0, 0, 0, 0, 0, 0, 1, 6, 0, 3],   # contempt majority: kept (neutral 1.0), no majority label
    ], np.float32)
    keep, dist, maj = vote_targets(v)
    assert keep.tolist() == [True, False, False, True, True]
    np.testing.assert_allclose(dist[0], [0, 0, 0, 0.6, 0, 0, 0.4])
    np.testing.assert_allclose(dist[3], [0.5, 0, 0, 0, 0.5, 0, 0])
    assert maj.tolist() == [3, -1, -1, -1, -1]


@pytest.mark.slow
def test_train_one_epoch_export_and_load(tmp_path, monkeypatch):
    from labeler.fer.resolver import load_model
    from labeler.training.base_train import main

    data = tmp_path / "fer"
    _fake_fer(data)
    out = tmp_path / "models"
    res = main(["--data", str(data), "--out-dir", str(out), "--epochs", "1", "--batch-size", "16",
                "--widths", "4,8,8,8,16", "--depths", "1,2,1", "--val-frac", "0.2", "--seed", "1", "--version", "test"])
    assert res["epochs_run"] == 1 and len(res["curve"]) == 1
    assert res["counts"]["train_dropped_no_votes_or_nf_unknown_majority"] >= 1
    side = out / "fer_ferplus_cnn.json"
    meta = json.loads(side.read_text())
    assert meta["name"] == "fer-ferplus-cnn" and meta["labels"] == LABELS
    assert meta["input"]["size"] == [48, 48] and meta["embedding_dim"] == 16
    assert meta["calibration"]["temperature"] > 0
    assert set(meta["training"]["metrics"]) >= {"val", "public_test"}
    assert meta["training"]["seed"] == 1
    adj = meta["training"]["prior_adjustment"]  # the FER+ prior divided out to the power validation chose
    assert adj["alpha"] in [round(0.1 * i, 1) for i in range(11)] and len(adj["validation"]) == 11
    assert set(adj["prior"]) == set(LABELS) and abs(sum(adj["prior"].values()) - 1) < 1e-3
    arch = meta["training"]["architecture"]
    assert arch["widths"] == [4, 8, 8, 8, 16] and arch["depths"] == [1, 2, 1]
    convs = [m for m in res["model"].modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2 + 1 + (1 + 2) + (1 + 1) + 1  # stem, 24 px, 12 px, 6 px, embedding conv

    model = load_model(str(side))
    assert model.ident == "fer-ferplus-cnn@test"
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, size=s + (3,), dtype=np.uint8) for s in [(112, 112), (48, 48), (30, 70)]]
    p = model.predict(crops)
    assert p.shape == (3, 7)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    assert model.embed(crops).shape == (3, 16)
    # onnxruntime agrees with torch through the labeler's preprocessing
    x = model.preprocess(crops)
    with torch.no_grad():
        zt = res["model"].eval()(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(model.logits(crops), zt, atol=1e-4)


@pytest.mark.slow
def test_bf16_trains_in_bfloat16_and_keeps_float32_weights(tmp_path, monkeypatch):
    """``--bf16``: the training passes run under bfloat16 autocast, evaluation does not, and what is
    kept is float32 (the export is the float32 path of test_train_one_epoch_export_and_load)."""
    from labeler.training import base_net
    from labeler.training.base_train import main

    seen = {"train": set(), "eval": set()}
    forward = base_net.BaseFERNet.forward

    def spy(self, x):
        z, e = forward(self, x)
        seen["train" if self.training else "eval"].add(z.dtype)
        return z, e

    monkeypatch.setattr(base_net.BaseFERNet, "forward", spy)
    data = tmp_path / "fer"
    _fake_fer(data)
    out = tmp_path / "models"
    res = main(["--data", str(data), "--out-dir", str(out), "--epochs", "1", "--batch-size", "16", "--bf16",
                "--widths", "4,8,8,8,16", "--depths", "1,1,1", "--val-frac", "0.2", "--seed", "1", "--version", "test"])
    assert seen["train"] == {torch.bfloat16} and seen["eval"] == {torch.float32}
    assert {p.dtype for p in res["model"].parameters()} == {torch.float32}
    meta = json.loads((out / "fer_ferplus_cnn.json").read_text())
    assert "bfloat16" in meta["training"]["optimiser"]


def test_missing_data_is_one_line_not_a_traceback(tmp_path):
    """A wrong --data (e.g. a clone without ../shared beside it) says what was expected and how to fix it."""
    from labeler.training.base_train import main

    with pytest.raises(SystemExit) as e:
        main(["--data", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path / "m")])
    msg = str(e.value)
    assert msg.startswith("error: expected FER2013 as ") and "no train folder" in msg and "--data" in msg and "\n" not in msg
    (tmp_path / "fer" / "train").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no votes file"):
        main(["--data", str(tmp_path / "fer"), "--out-dir", str(tmp_path / "m")])


@pytest.mark.slow
def test_adjust_prior_script_on_a_model_trained_without_it(tmp_path):
    """scripts/train/adjust_prior.py: rebuilds the model's validation split, folds the chosen shift into the
    bias (logits move by exactly the shift), writes a new version whose sidecar verifies; refuses a
    model that is already adjusted."""
    import importlib.util

    from labeler.fer.resolver import load_model
    from labeler.training.base_train import main

    data = tmp_path / "fer"
    _fake_fer(data)
    out = tmp_path / "models"
    main(["--data", str(data), "--out-dir", str(out), "--epochs", "1", "--batch-size", "16", "--no-prior-adjust",
          "--widths", "4,8,8,8,16", "--depths", "1,1,1", "--val-frac", "0.2", "--seed", "1", "--version", "test"])
    assert json.loads((out / "fer_ferplus_cnn.json").read_text())["training"]["prior_adjustment"].startswith("none")
    spec = importlib.util.spec_from_file_location("adjust_prior", Path(__file__).resolve().parents[1] / "scripts" / "train" / "adjust_prior.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    adj_dir = tmp_path / "adjusted"
    with pytest.raises(SystemExit, match="rebuilt split differs"):
        mod.main(["--model", str(out / "fer_ferplus_cnn.json"), "--data", str(data), "--version", "t2",
                  "--out-dir", str(adj_dir), "--val-frac", "0.5"])
    assert mod.main(["--model", str(out / "fer_ferplus_cnn.json"), "--data", str(data), "--version", "t2",
                     "--val-frac", "0.2", "--out-dir", str(adj_dir)]) == 0
    meta = json.loads((adj_dir / "fer_ferplus_cnn.json").read_text())
    adj = meta["training"]["prior_adjustment"]
    assert meta["version"] == "t2" and adj["adjusted_from"].startswith("fer-ferplus-cnn@test")
    old, new = load_model(str(out / "fer_ferplus_cnn.json")), load_model(str(adj_dir / "fer_ferplus_cnn.json"))  # verifies sha256
    assert new.ident == "fer-ferplus-cnn@t2" and new.temperature == pytest.approx(meta["calibration"]["temperature"])
    crops = [np.random.default_rng(1).integers(0, 256, size=(48, 48, 3), dtype=np.uint8) for _ in range(4)]
    shift = np.array([adj["shift"][lab] for lab in LABELS])
    np.testing.assert_allclose(new.logits(crops) - old.logits(crops), np.tile(shift, (4, 1)), atol=2e-4)
    np.testing.assert_allclose(new.embed(crops), old.embed(crops), atol=1e-6)
    assert "dev" not in meta.get("evaluation", {}) and meta["evaluation"]["public_test"]["n"] == 14
    with pytest.raises(SystemExit, match="already prior-adjusted"):
        mod.main(["--model", str(adj_dir / "fer_ferplus_cnn.json"), "--data", str(data), "--version", "t3", "--val-frac", "0.2"])
