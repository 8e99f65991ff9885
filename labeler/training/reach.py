"""The reach of a residual head (numpy; ``onnx`` only to write it into a graph).

A head learned from one project's labels should change the answers on faces like the labeled ones
and leave the base model's answers alone elsewhere: faces of another domain or kind of crop than
any labeled face. :class:`Reach` turns a face's distance to the labeled faces (in the base model's
standardised embedding) into the share of the correction it gets; :func:`reach_nodes` is the same
formula as ONNX operators, appended to the head's graph by ``head.write_residual_onnx``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

#: the head's reach (:class:`Reach`): the correction applies in full near the labeled faces and fades
#: with distance; the radius is this quantile of the labeled faces' distances to the other labeled
#: faces, the fall-off this power, the distance the mean over this many nearest labeled faces; at most
#: this many labeled faces are kept as anchors in the model file
REACH_Q, REACH_POWER, REACH_K, REACH_ANCHORS = 0.9, 4.0, 5, 3000


def knn_distance(X: np.ndarray, A: np.ndarray, k: int, groups: Optional[np.ndarray] = None,
                 anchor_groups: Optional[np.ndarray] = None) -> np.ndarray:
    """Mean distance of each row of ``X`` to its ``k`` nearest rows of ``A`` (rows of the same group
    left out where ``groups``/``anchor_groups`` are given: a face's own views are not its neighbours)."""
    d2 = (X ** 2).sum(1)[:, None] + (A ** 2).sum(1)[None, :] - 2 * X @ A.T
    if groups is not None and anchor_groups is not None:
        d2 = np.where(groups[:, None] == anchor_groups[None, :], np.inf, d2)
    kk = min(k, A.shape[0])
    near = np.partition(d2, kk - 1, axis=1)[:, :kk] if kk < A.shape[0] else d2
    return np.sqrt(np.maximum(near, 0.0)).mean(1)


@dataclass(frozen=True)
class Reach:
    """Where a residual head applies. A face's correction is multiplied by ``1 / (1 + (d / radius) **
    power)``, ``d`` the mean distance of its standardised embedding ((e - mu) / sd) to the ``k``
    nearest ``anchors`` (labeled faces): faces like the labeled ones get the correction, faces unlike
    any of them (another domain, another kind of crop) keep the base model's answer. The same formula
    runs in the ONNX graph (:func:`reach_nodes`, written by ``head.write_residual_onnx``)."""

    mu: np.ndarray
    sd: np.ndarray
    anchors: np.ndarray  # standardised
    k: int
    radius: float
    power: float

    def of_standardised(self, Xs: np.ndarray) -> np.ndarray:
        d = knn_distance(Xs, self.anchors, self.k)
        return 1.0 / (1.0 + (d / self.radius) ** self.power)

    def weights(self, E: np.ndarray) -> np.ndarray:
        """The multiplier of each row of raw embeddings ``E`` (1: full correction, 0: the base)."""
        return self.of_standardised((E - self.mu) / self.sd)

    def describe(self) -> dict:
        return {"anchors": int(self.anchors.shape[0]), "k": self.k, "radius": round(self.radius, 4), "power": self.power,
                "rule": "correction x 1 / (1 + (d / radius)^power), d = mean distance of the standardised embedding "
                        "to the k nearest labeled faces"}


def make_reach(Xs: np.ndarray, mu: np.ndarray, sd: np.ndarray, groups: Optional[np.ndarray], q: float = REACH_Q,
               power: float = REACH_POWER, k: int = REACH_K, max_anchors: int = REACH_ANCHORS, seed: int = 0) -> Reach:
    """The reach of a head whose labeled faces are the standardised rows ``Xs`` (``groups``: the
    face of each row, several views of one face share it): radius = the ``q`` quantile of each
    labeled row's distance to the labeled rows of other faces."""
    idx = np.arange(len(Xs))
    if len(idx) > max_anchors:
        idx = np.sort(np.random.default_rng(seed).choice(len(Xs), max_anchors, replace=False))
    A = Xs[idx]
    ga = groups[idx] if groups is not None else None
    d = knn_distance(A, A, k, ga, ga) if ga is not None else knn_distance(A, A, k + 1)  # +1: itself
    d = d[np.isfinite(d)]
    radius = float(np.quantile(d, q)) if len(d) else 1.0
    return Reach(mu=mu, sd=sd, anchors=A, k=k, radius=max(radius, 1e-6), power=float(power))


def reach_initializers(reach: Reach) -> list:
    """The constants of :func:`reach_nodes` as ONNX initializers (float32; ``head_reach/*``)."""
    from onnx import numpy_helper

    c, k = reach.anchors.shape[1], reach.k
    consts = {
        "mu": reach.mu.reshape(1, c), "sd": reach.sd.reshape(1, c), "anchorsT": reach.anchors.T,
        "anchors_sq": (reach.anchors ** 2).sum(1).reshape(1, -1), "ones_c": np.ones((c, 1)),
        "mean_k": np.full((min(k, reach.anchors.shape[0]), 1), 1.0 / min(k, reach.anchors.shape[0])),
        "two": np.array(2.0), "one": np.array(1.0), "radius": np.array(reach.radius), "power": np.array(reach.power),
    }
    out = [numpy_helper.from_array(np.asarray(v, np.float32), f"head_reach/{n}") for n, v in consts.items()]
    out.append(numpy_helper.from_array(np.array([min(k, reach.anchors.shape[0])], np.int64), "head_reach/k"))
    return out


def reach_nodes(emb: str, delta: str, out: str) -> list:
    """``out = delta * 1 / (1 + (d / radius)^power)``, d as in :meth:`Reach.of_standardised`, on the
    constants of :func:`reach_initializers`, with operators of every opset >= 11 (no reductions,
    whose axes moved from attribute to input between opsets)."""
    from onnx import helper

    def c(n):
        return f"head_reach/{n}"

    def node(op, ins, o, **kw):
        return helper.make_node(op, ins, [c(o)], name=c(o), **kw)

    return [
        node("Sub", [emb, c("mu")], "centred"), node("Div", [c("centred"), c("sd")], "xs"),
        node("Mul", [c("xs"), c("xs")], "xs2"), node("MatMul", [c("xs2"), c("ones_c")], "xx"),  # N x 1
        node("MatMul", [c("xs"), c("anchorsT")], "cross"),  # N x M
        node("Mul", [c("cross"), c("two")], "cross2"), node("Add", [c("xx"), c("anchors_sq")], "sq"),
        node("Sub", [c("sq"), c("cross2")], "d2"), node("Neg", [c("d2")], "negd2"),
        helper.make_node("TopK", [c("negd2"), c("k")], [c("near_neg"), c("near_idx")], name=c("TopK"), axis=-1),
        node("Neg", [c("near_neg")], "near_d2"), node("Relu", [c("near_d2")], "near_d2_pos"),
        node("Sqrt", [c("near_d2_pos")], "near_d"), node("MatMul", [c("near_d"), c("mean_k")], "d"),  # N x 1
        node("Div", [c("d"), c("radius")], "rel"), node("Pow", [c("rel"), c("power")], "relp"),
        node("Add", [c("relp"), c("one")], "den"), node("Reciprocal", [c("den")], "weight"),
        helper.make_node("Mul", [delta, c("weight")], [out], name=out),
    ]
