"""Fine-tuning on two domains (labeler/training/web_train.py, issue 38): the shipped ONNX's weights
loaded into BaseFERNet, the web split grouped by repository, label cleaning, and a tiny end-to-end
run that exports a sidecar with both domains' temperatures (torch needed: a failure where LABELER_REQUIRE_TORCH is set)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import need_module

torch = need_module("torch", "torch", "pip install 'labeler[train]'")
need_module("onnx", "torch", "pip install 'labeler[train]'")  # the export (the train extra)

from .test_train_base import LABELS, _fake_fer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "fer_ferplus_cnn.onnx"


def test_shipped_onnx_weights_load_into_the_torch_net():
    import onnxruntime as ort

    from labeler.training.base_net import BaseFERNet
    from labeler.training.web_train import load_onnx_init

    model = BaseFERNet(7)
    load_onnx_init(model, SHIPPED)
    model.eval()
    x = np.random.default_rng(0).uniform(-1, 1, (6, 1, 48, 48)).astype(np.float32)
    sess = ort.InferenceSession(str(SHIPPED), providers=["CPUExecutionProvider"])
    zo, eo = sess.run(["logits", "embedding"], {"input": x})
    with torch.no_grad():
        zt, et = (t.numpy() for t in model(torch.from_numpy(x)))
    np.testing.assert_allclose(zt, zo, atol=1e-4)
    np.testing.assert_allclose(et, eo, atol=1e-4)


def test_a_net_of_other_widths_is_refused_in_one_line():
    from labeler.training.base_net import BaseFERNet
    from labeler.training.web_train import load_onnx_init

    with pytest.raises(SystemExit, match="does not fit|convs"):
        load_onnx_init(BaseFERNet(7, widths=(4, 8, 8, 8, 16)), SHIPPED)


def test_web_split_holds_out_whole_repositories_and_a_share_of_one():
    from labeler.training.web_train import WebSet, web_split

    groups = ["a"] * 40 + ["b"] * 10 + ["c"] * 10
    y = [6] * 20 + [0] * 20 + [0] * 10 + [3] * 10
    ws = WebSet(np.zeros((60, 48, 48), np.uint8), y, groups, [f"f{i}" for i in range(60)])
    tr, va = web_split(ws, {"b"}, "a", 0.25, seed=1)
    assert set(tr).isdisjoint(va) and len(tr) + len(va) == 60
    g_va, y_va = ws.groups[va], ws.y[va]
    assert (g_va == "b").sum() == 10 and (g_va == "c").sum() == 0
    # a quarter of each class of the split repository: 5 neutral and 5 angry of "a"
    assert ((g_va == "a") & (y_va == 6)).sum() == 5 and ((g_va == "a") & (y_va == 0)).sum() == 5
    tr2, va2 = web_split(ws, {"b"}, "a", 0.25, seed=1)
    assert va.tolist() == va2.tolist()


def test_label_issues_flags_swapped_labels_of_separable_embeddings():
    from labeler.training.web_train import label_issues

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 16)) * 4
    y = np.repeat(np.arange(3), 60)
    emb = centres[y] + rng.normal(0, 1, (180, 16))
    noisy = y.copy()
    wrong = np.arange(0, 180, 20)  # 9 labels moved to the next class
    noisy[wrong] = (noisy[wrong] + 1) % 3
    flagged = label_issues(emb, noisy, seed=3)
    assert flagged[wrong].all()
    assert flagged.sum() <= len(wrong) + 3


def _fake_web(root: Path) -> None:
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    rows = []
    repos = ["r/one", "r/two", "r/three"]
    for i in range(42):
        lab = ["angry", "happy", "sad", "neutral"][i % 4]
        k = LABELS.index(lab)
        img = np.full((112, 112, 3), 60 + 25 * k, np.float32)
        img[30 + 6 * k: 40 + 6 * k, 25:85] = 230
        img += rng.normal(0, 12, img.shape)
        name = f"images/{i:06d}.jpg"
        cv2.imwrite(str(root / name), np.clip(img, 0, 255).astype(np.uint8))
        rows.append({"file": name, "label": lab, "source_repo": repos[i % 3]})
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "label", "source_repo"])
        w.writeheader()
        w.writerows(rows)


@pytest.mark.slow
def test_fine_tune_two_domains_exports_a_loadable_model_with_both_temperatures(tmp_path):
    from labeler.fer.resolver import load_model
    from labeler.training.web_train import main

    data, web, out = tmp_path / "fer", tmp_path / "web", tmp_path / "models"
    _fake_fer(data)
    _fake_web(web)
    res = main(["--data", str(data), "--web-faces", str(web), "--web-val-repos", "r/two", "--web-val-split-repo", "r/one",
                "--init", str(SHIPPED), "--steps", "3", "--eval-every", "2", "--batch-size", "16", "--val-frac", "0.2",
                "--seed", "1", "--version", "test", "--out-dir", str(out)])
    assert [r["step"] for r in res["curve"]] == [2, 3]
    assert res["web_counts"]["val_by_repo"]["r/two"] == 14 and "r/three" not in res["web_counts"]["val_by_repo"]
    meta = json.loads((out / "fer_ferplus_cnn.json").read_text())
    cal = meta["calibration"]
    assert cal["domain"] == "web" and set(cal["per_domain"]) == {"fer2013", "web"}
    assert cal["temperature"] == cal["per_domain"]["web"]["temperature"] > 0
    tr = meta["training"]
    assert tr["steps"] == 3 and tr["init"]["from"] == SHIPPED.name
    assert tr["data"]["web"]["noisy_labels"]["method"] == "cleanlab"
    assert set(tr["metrics"]) >= {"val", "public_test", "web_val"}
    assert tr["prior_adjustment"]["alpha"] in [round(0.1 * i, 1) for i in range(11)]
    model = load_model(str(out / "fer_ferplus_cnn.json"))
    assert model.ident == "fer-ferplus-cnn@test" and model.temperature == cal["temperature"]
    crops = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    x = model.preprocess(crops)
    with torch.no_grad():
        zt = res["model"].eval()(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(model.logits(crops), zt, atol=1e-4)
