"""Which faces a head may change: faces like the project's labeled faces, not faces of the base
model's own domain (issue 32, "convention vs forgetting").

A project's labels may overrule the base on faces like the labeled ones (its annotators' convention:
web photos of mild sadness called "sad", where the FER+ crowd says "neutral"); on the base's own
domain the base must hold. The kNN reach (:mod:`labeler.training.reach`) does not tell these apart
in the base's embedding (issue 11: median reach weight web_keyword 0.71, FER2013 faces 0.65), so the
head of a project with base-domain features (shipped, :mod:`labeler.training.basedomain`, or
``--base-data``) uses a *likeness* instead: a small classifier (one hidden layer, numpy) trained to
tell the project's labeled faces from the base domain's replay faces, on the embedding and the
global averages of the network's earlier feature maps (the inputs of its ``MaxPool`` nodes: texture
and resolution, where the domains differ most). A face's correction is multiplied by
``p(like the labeled faces) ** power``. The same formula runs inside the head's ONNX graph
(:func:`likeness_nodes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

#: the likeness classifier: hidden units, L2 on its weights, Adam epochs and rate, and the power of
#: its probability that multiplies a face's correction; chosen on issue 11's experiment (dev), like
#: the head's weights: a tuned choice (docs/measurements.md, issue 32)
HIDDEN, L2, EPOCHS, LR, POWER = 32, 1e-3, 400, 0.01, 3.0
#: the nodes whose input feature maps are averaged into the likeness features
PROBE_OP = "MaxPool"


def probe_tensors(onnx_path: str | Path) -> list[str]:
    """The feature maps the likeness reads besides the embedding: the inputs of the graph's
    ``MaxPool`` nodes, in graph order (empty for a graph without one: the embedding alone)."""
    import onnx

    g = onnx.load(str(onnx_path)).graph
    return [n.input[0] for n in g.node if n.op_type == PROBE_OP]


def probe_nodes(tensors: Sequence[str], emb: str, out: str) -> list:
    """``out`` = concat(GAP(t) for t in tensors, emb): N x (channels + embedding)."""
    from onnx import helper

    nodes, parts = [], []
    for i, t in enumerate(tensors):
        nodes += [helper.make_node("GlobalAveragePool", [t], [f"head_probe/gap{i}"], name=f"head_probe/gap{i}"),
                  helper.make_node("Flatten", [f"head_probe/gap{i}"], [f"head_probe/flat{i}"], name=f"head_probe/flat{i}", axis=1)]
        parts.append(f"head_probe/flat{i}")
    nodes.append(helper.make_node("Concat", [*parts, emb], [out], name=out, axis=1))
    return nodes


class ProbeRunner:
    """Runs a FER model's graph with the likeness features as an extra output: (embeddings,
    raw logits, probe features) of crops in one pass."""

    OUT = "head_probe/features"

    def __init__(self, model):
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        self.model = model
        self.tensors = probe_tensors(model.card.file)
        m = onnx.load(str(model.card.file))
        m.graph.node.extend(probe_nodes(self.tensors, model.embedding_name, self.OUT))
        m.graph.output.append(helper.make_tensor_value_info(self.OUT, TensorProto.FLOAT, None))
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = 2, 1, 3
        self.session = ort.InferenceSession(m.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
        self.emb_dim = int(model.card.meta.get("embedding_dim") or 0)

    def run(self, items: list, batch: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(embeddings N x C, raw logits N x K, probe features N x P without the embedding)."""
        from labeler.fer.model import preprocess

        m = self.model
        es, zs, ps = [], [], []
        for i in range(0, len(items), batch):
            x = preprocess(items[i : i + batch], m.input_spec)
            e, z, f = self.session.run([m.embedding_name, m.logits_name, self.OUT], {m.input_name: x})
            es.append(e.reshape(len(x), -1))
            zs.append(z.reshape(len(x), -1))
            ps.append(f.reshape(len(x), -1)[:, : f.shape[1] - e.reshape(len(x), -1).shape[1]])
        if not es:
            return np.zeros((0, self.emb_dim)), np.zeros((0, len(m.labels))), np.zeros((0, 0))
        return (np.concatenate(es).astype(np.float64), np.concatenate(zs).astype(np.float64),
                np.concatenate(ps).astype(np.float64))


def _sigmoid(s: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * s))


@dataclass(frozen=True)
class Likeness:
    """``weight = sigmoid(w2 . relu(W1 (f - mu) / sd + b1) + b2) ** power``, ``f`` = the probe
    features followed by the embedding (:func:`probe_nodes`)."""

    tensors: tuple[str, ...]  # probe feature maps, in order
    mu: np.ndarray
    sd: np.ndarray
    W1: np.ndarray  # H x D
    b1: np.ndarray
    w2: np.ndarray  # H
    b2: float
    power: float
    floor: float = 0.0  # probabilities up to it give no correction at all

    def prob(self, F: np.ndarray) -> np.ndarray:
        h = np.maximum((F - self.mu) / self.sd @ self.W1.T + self.b1, 0.0)
        return _sigmoid(h @ self.w2 + self.b2)

    def weights(self, F: np.ndarray) -> np.ndarray:
        """The multiplier of each face's correction (rows of ``F``: probe features + embedding):
        ``max(0, (p - floor) / (1 - floor)) ** power``."""
        return np.maximum((self.prob(F) - self.floor) / (1.0 - self.floor), 0.0) ** self.power

    def describe(self) -> dict:
        return {"kind": "likeness", "features": f"global averages of {len(self.tensors)} feature maps (inputs of "
                f"{PROBE_OP}) + the embedding, {len(self.mu)} values", "hidden": int(len(self.b1)), "power": self.power,
                "rule": "correction x p(like the labeled faces, not the base's domain) ^ power; p from a one-hidden-layer "
                        "classifier of the labeled faces against the base domain's replay faces, classes weighed equally"}


def fit_likeness(pos: np.ndarray, neg: np.ndarray, tensors: Sequence[str] = (), *, hidden: int = HIDDEN, l2: float = L2,
                 epochs: int = EPOCHS, lr: float = LR, power: float = POWER, floor: float = 0.0, seed: int = 0) -> Likeness:
    """The classifier of rows ``pos`` (the project's labeled faces) against ``neg`` (the base
    domain's faces): class-balanced cross-entropy + ``l2`` * squared weights, full-batch Adam from a
    seeded start."""
    from labeler.training.head import _adam_step

    X = np.concatenate([pos, neg])
    t = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-6
    Xs = (X - mu) / sd
    sw = np.where(t == 1, 0.5 / max(len(pos), 1), 0.5 / max(len(neg), 1))
    rng = np.random.default_rng(seed)
    W1 = rng.normal(0, np.sqrt(2.0 / X.shape[1]), (hidden, X.shape[1]))
    b1, w2, b2 = np.zeros(hidden), rng.normal(0, np.sqrt(1.0 / hidden), hidden), np.zeros(1)
    state = [(np.zeros_like(p), np.zeros_like(p)) for p in (W1, b1, w2, b2)]
    for step in range(1, epochs + 1):
        a = Xs @ W1.T + b1
        h = np.maximum(a, 0.0)
        g = (_sigmoid(h @ w2 + b2[0]) - t) * sw  # d loss / d score
        gh = np.outer(g, w2) * (a > 0)
        grads = (gh.T @ Xs + 2 * l2 * W1, gh.sum(axis=0), h.T @ g + 2 * l2 * w2, np.array([g.sum()]))
        for i, (p, gr) in enumerate(zip((W1, b1, w2, b2), grads)):
            state[i] = _adam_step(p, gr, *state[i], step, lr)
    return Likeness(tuple(tensors), mu, sd, W1, b1, w2, float(b2[0]), float(power), float(floor))


def likeness_initializers(lk: Likeness) -> list:
    from onnx import numpy_helper

    consts = {"mu": lk.mu.reshape(1, -1), "sd": lk.sd.reshape(1, -1), "W1": lk.W1, "b1": lk.b1, "w2": lk.w2.reshape(1, -1),
              "b2": np.array([lk.b2]), "power": np.array(lk.power), "floor": np.array(lk.floor),
              "span": np.array(1.0 - lk.floor)}
    return [numpy_helper.from_array(np.asarray(v, np.float32), f"head_likeness/{n}") for n, v in consts.items()]


def likeness_nodes(lk: Likeness, emb: str, delta: str, out: str) -> list:
    """``out = delta * weight``, the weight as :meth:`Likeness.weights` computes it, from the
    graph's own feature maps (``lk.tensors``) and ``emb``."""
    from onnx import helper

    def c(n):
        return f"head_likeness/{n}"

    def node(op, ins, o, **kw):
        return helper.make_node(op, ins, [c(o)], name=c(o), **kw)

    return [
        *probe_nodes(lk.tensors, emb, c("f")),
        node("Sub", [c("f"), c("mu")], "centred"), node("Div", [c("centred"), c("sd")], "xs"),
        node("Gemm", [c("xs"), c("W1"), c("b1")], "a", transB=1), node("Relu", [c("a")], "h"),
        node("Gemm", [c("h"), c("w2"), c("b2")], "s", transB=1), node("Sigmoid", [c("s")], "p"),
        node("Sub", [c("p"), c("floor")], "above"), node("Div", [c("above"), c("span")], "rel"),
        node("Relu", [c("rel")], "share"), node("Pow", [c("share"), c("power")], "weight"),
        helper.make_node("Mul", [delta, c("weight")], [out], name=out),
    ]
