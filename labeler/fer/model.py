"""FER models: the interface, the ONNX implementation and the registry (numpy + onnxruntime only).

A FER model is an ONNX file plus its JSON sidecar (see :mod:`labeler.fer.cards`) of kind ``fer``::

    "labels": [...],                                   # the model's output order
    "input": {"size": [H, W], "channels": 1 | 3, "color": "gray" | "rgb" | "bgr",
              "layout": "NCHW" | "NHWC", "mean": 127.5, "std": 127.5, "name": "input"},
    "outputs": {"logits": "<output name>", "embedding": "<output name>"},   # embedding optional
    "calibration": {"temperature": 1.0}

To add a model, drop ``<stem>.onnx`` and ``<stem>.json`` into the shipped ``models/`` folder or a
folder named by ``$LABELER_USER_MODELS``; no code is needed. Which file a name means is decided in
one place, :mod:`labeler.fer.resolver`. Loading verifies the sha256 and fails with
:class:`~labeler.fer.cards.ModelFileError`, never falls back to other weights.
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Protocol, Sequence, Union, runtime_checkable

import numpy as np

from labeler.fer.cards import ModelCard, ModelFileError

BATCH = 64

Crops = Union[Sequence[np.ndarray], np.ndarray]


@runtime_checkable
class FERModel(Protocol):
    """What every caller of a FER model uses (the pipeline, training, calibration, the UI)."""

    name: str
    version: str
    labels: list[str]
    #: the parsed sidecar the model was loaded from
    card: ModelCard
    #: the sidecar's calibration temperature that ``predict`` applies
    temperature: float

    @property
    def ident(self) -> str:
        """``name@version``, the source written with every proposal."""
        ...

    def preprocess(self, crops: Crops) -> np.ndarray:
        """The float32 network input for crops, as the sidecar's ``input`` describes."""
        ...

    def logits(self, crops: Crops) -> np.ndarray:
        """N x K pre-softmax values (not temperature-scaled)."""
        ...

    def embed(self, crops: Crops) -> np.ndarray:
        """N x C features (the sidecar's ``embedding`` output)."""
        ...

    def predict(self, crops: Crops, flip: bool = False) -> np.ndarray:
        """N x len(labels) calibrated class probabilities for RGB uint8 crops (any size) or an
        N x H x W x 3 array; with ``flip`` the logits of each crop and its mirror image are averaged."""
        ...


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (float64, numerically stable)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------------
# preprocessing


def _spec_size(spec: dict) -> tuple[int, int]:
    size = spec.get("size")
    if isinstance(size, (int, float)):
        return int(size), int(size)
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ModelFileError(f"input.size: expected [height, width] or an int, found {size!r}; fix the model's sidecar.")


def preprocess(crops: Crops, spec: dict) -> np.ndarray:
    """Crops -> float32 batch as the sidecar's ``input`` describes: colour conversion (RGB input;
    2-D or 1-channel crops are taken as gray), resize with cv2.INTER_AREA, (x - mean) / std, layout."""
    import cv2

    h, w = _spec_size(spec)
    channels = int(spec.get("channels", 1))
    color = str(spec.get("color", "gray" if channels == 1 else "rgb")).lower()
    mean = np.asarray(spec.get("mean", 127.5), dtype=np.float32)
    std = np.asarray(spec.get("std", 127.5), dtype=np.float32)
    n = len(crops)
    out = np.empty((n, h, w, channels), dtype=np.float32)
    for i in range(n):
        c = np.asarray(crops[i])
        if c.ndim == 3 and c.shape[2] == 1:
            c = c[:, :, 0]
        if c.ndim == 3 and c.shape[2] == 4:
            c = c[:, :, :3]
        if c.ndim not in (2, 3) or (c.ndim == 3 and c.shape[2] != 3) or c.shape[0] == 0 or c.shape[1] == 0:
            raise ValueError(f"crop {i}: expected an H x W x 3 RGB (or H x W gray) image, found shape {c.shape}")
        if c.dtype != np.uint8:
            c = np.clip(c, 0, 255).astype(np.uint8)
        if channels == 1:
            g = c if c.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(c), cv2.COLOR_RGB2GRAY)
        else:
            g = cv2.cvtColor(c, cv2.COLOR_GRAY2RGB) if c.ndim == 2 else c
            if color == "bgr":
                g = g[:, :, ::-1]
        if g.shape[:2] != (h, w):
            g = cv2.resize(np.ascontiguousarray(g), (w, h), interpolation=cv2.INTER_AREA)
        out[i] = g.reshape(h, w, channels)
    out = (out - mean) / std
    if str(spec.get("layout", "NCHW")).upper() == "NCHW":
        out = out.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out, dtype=np.float32)


def _as_list(crops: Crops) -> list[np.ndarray]:
    if isinstance(crops, np.ndarray):
        if crops.ndim == 3 and crops.shape[-1] not in (1, 3, 4):  # N x H x W gray batch
            return [crops[i] for i in range(crops.shape[0])]
        if crops.ndim in (2, 3):
            return [crops]
        return [crops[i] for i in range(crops.shape[0])]
    return list(crops)


# --------------------------------------------------------------------------------------------
# sidecar validation


def validate_fer_card(card: ModelCard) -> None:
    """Check the FER-specific facts of a sidecar; raise ModelFileError saying what to fix."""
    m = card.meta
    where = f"model sidecar {card.sidecar}"
    labels = m.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise ModelFileError(
            f"{where}: expected 'labels' to be a non-empty list of class names in the model's output order, "
            f"found {labels!r}. Add e.g. \"labels\": [\"angry\", \"disgust\", \"fear\", \"happy\", \"sad\", \"surprise\", \"neutral\"]."
        )
    inp = m.get("input")
    if not isinstance(inp, dict) or "size" not in inp:
        raise ModelFileError(
            f"{where}: expected 'input' with at least 'size' ([height, width]), found {inp!r}. "
            "Add e.g. \"input\": {\"size\": [64, 64], \"channels\": 1, \"color\": \"gray\", \"layout\": \"NCHW\", "
            "\"mean\": 127.5, \"std\": 127.5}."
        )
    _spec_size(inp)
    if int(inp.get("channels", 1)) not in (1, 3):
        raise ModelFileError(f"{where}: expected input.channels 1 or 3, found {inp.get('channels')!r}.")
    outs = m.get("outputs")
    if outs is not None and not isinstance(outs, dict):
        raise ModelFileError(
            f"{where}: expected 'outputs' to map roles to ONNX output names, e.g. "
            f"{{\"logits\": \"logits\", \"embedding\": \"embedding\"}}, found {outs!r}."
        )
    t = (m.get("calibration") or {}).get("temperature", 1.0)
    try:
        ok = float(t) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelFileError(f"{where}: expected calibration.temperature > 0, found {t!r}.")


# --------------------------------------------------------------------------------------------
# the ONNX model


class OnnxFERModel:
    """A FER model from an ONNX file and its sidecar (checksum verified at load)."""

    def __init__(self, card: ModelCard, intra_op_num_threads: int = 2, batch_size: int = BATCH, verify: bool = True):
        import onnxruntime as ort

        if verify:
            from labeler.fer.cards import verify_card

            verify_card(card)
        if card.kind != "fer":
            raise ModelFileError(f"model sidecar {card.sidecar}: expected kind 'fer', found {card.kind!r}.")
        validate_fer_card(card)
        self.card = card
        self.name, self.version = card.name, card.version
        self.labels: list[str] = list(card.meta["labels"])
        self.input_spec: dict[str, Any] = dict(card.meta["input"])
        self.temperature = float((card.meta.get("calibration") or {}).get("temperature", 1.0) or 1.0)
        self.batch_size = int(batch_size)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(intra_op_num_threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(card.file), sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{card.file}: onnxruntime could not load it ({e}); regenerate or replace the file.") from e
        self._lock = threading.Lock()
        in_names = [i.name for i in self.session.get_inputs()]
        self.input_name = str(self.input_spec.get("name") or in_names[0])
        if self.input_name not in in_names:
            raise ModelFileError(
                f"{card.file}: expected an input named {self.input_name!r} (from {card.sidecar.name}), found {in_names}."
            )
        out_names = [o.name for o in self.session.get_outputs()]
        outs = card.meta.get("outputs") or {}
        self.logits_name = str(outs.get("logits") or out_names[0])
        self.embedding_name: Optional[str] = outs.get("embedding")
        for role, nm in (("logits", self.logits_name), ("embedding", self.embedding_name)):
            if nm is not None and nm not in out_names:
                raise ModelFileError(
                    f"{card.file}: expected an output named {nm!r} for {role} (from {card.sidecar.name}), "
                    f"found {out_names}; fix 'outputs' in the sidecar."
                )
        k = self.session.get_outputs()[out_names.index(self.logits_name)].shape[-1]
        if isinstance(k, int) and k != len(self.labels):
            raise ModelFileError(
                f"{card.file}: the {self.logits_name!r} output has {k} classes but {card.sidecar.name} lists "
                f"{len(self.labels)} labels ({', '.join(self.labels)}); make them agree."
            )

    @property
    def ident(self) -> str:
        return f"{self.name}@{self.version}"

    def __repr__(self) -> str:
        return f"OnnxFERModel({self.ident}, {self.card.file})"

    # ---------------------------------------------------------------- inference
    def preprocess(self, crops: Crops) -> np.ndarray:
        return preprocess(_as_list(crops), self.input_spec)

    def _run(self, crops: Crops, names: list[str]) -> list[np.ndarray]:
        items = _as_list(crops)
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for i in range(0, len(items), self.batch_size):
            x = preprocess(items[i : i + self.batch_size], self.input_spec)
            with self._lock:
                res = self.session.run(names, {self.input_name: x})
            for p, r in zip(parts, res):
                p.append(np.asarray(r, dtype=np.float32).reshape(r.shape[0], -1))
        out = []
        for nm, p in zip(names, parts):
            if p:
                out.append(np.concatenate(p))
            else:
                dim = len(self.labels) if nm == self.logits_name else int(self.card.meta.get("embedding_dim", 0))
                out.append(np.zeros((0, dim), dtype=np.float32))
        return out

    def logits(self, crops: Crops) -> np.ndarray:
        """N x K pre-softmax values (not temperature-scaled)."""
        return self._run(crops, [self.logits_name])[0]

    def embed(self, crops: Crops) -> np.ndarray:
        """N x C features (the sidecar's ``embedding`` output) for training new heads."""
        if not self.embedding_name:
            raise ModelFileError(
                f"{self.ident}: the sidecar {self.card.sidecar} names no 'embedding' output; expected "
                "outputs.embedding, found none. Add it (the name of an N x C ONNX output) to use this model for retraining."
            )
        return self._run(crops, [self.embedding_name])[0]

    def predict(self, crops: Crops, flip: bool = False) -> np.ndarray:
        """N x K probabilities: softmax(logits / T), T from the sidecar's calibration. With ``flip``
        the logits of each crop and of its mirror image are averaged first."""
        items = _as_list(crops)
        z = self.logits(items).astype(np.float64)
        if flip and items:
            z = 0.5 * (z + self.logits([np.ascontiguousarray(np.asarray(c)[:, ::-1]) for c in items]))
        return softmax(z, self.temperature)
