"""A residual head as one value: the base model's logits plus a linear correction of its embedding,
times a per-face weight (its :class:`~labeler.training.reach.Reach` or its
:class:`~labeler.training.likeness.Likeness`), computed in numpy (:class:`ResidualHead`) and
written into the base's ONNX graph (:func:`write_residual_onnx`) with the same formula, so the
figures the gate judges on are the answers the written model gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from labeler.fer.cards import ModelFileError
from labeler.training.likeness import Likeness, likeness_initializers, likeness_nodes
from labeler.training.reach import Reach, reach_initializers, reach_nodes


@dataclass(frozen=True)
class ResidualHead:
    """``logits = Z + weight(face) * (E dW^T + db)``; the weight is the likeness where there is one,
    else the reach, else 1."""

    dW: np.ndarray  # K x C, raw embedding -> raw logits
    db: np.ndarray
    reach: Optional[Reach] = None
    likeness: Optional[Likeness] = None

    def weights(self, E: np.ndarray, P: Optional[np.ndarray] = None) -> np.ndarray:
        """Each face's share of the correction from its embedding ``E`` (and probe features ``P``,
        needed with a likeness)."""
        if self.likeness is not None:
            if P is None:
                raise ValueError("a head with a likeness needs the probe features of its faces")
            return self.likeness.weights(np.concatenate([P, E], axis=1))
        if self.reach is not None:
            return self.reach.weights(E)
        return np.ones(len(E))

    def logits(self, E: np.ndarray, Z: np.ndarray, P: Optional[np.ndarray] = None) -> np.ndarray:
        """Raw logits of faces from the base's embeddings, raw logits (and probe features)."""
        return Z + self.weights(E, P)[:, None] * (E @ self.dW.T + self.db)

    def flip_logits(self, view: tuple, mirrored: Optional[tuple] = None) -> np.ndarray:
        """The flip-averaged raw logits, as ``OnnxFERModel.predict(flip=True)`` averages them; each
        view is (E, Z) or (E, Z, P)."""
        a = self.logits(*view)
        return a if mirrored is None else 0.5 * (a + self.logits(*mirrored))

    def describe(self) -> dict:
        if self.likeness is not None:
            return self.likeness.describe()
        if self.reach is not None:
            return {"kind": "reach", **self.reach.describe()}
        return {"kind": "none", "rule": "every face gets the whole correction"}


def write_residual_onnx(base_onnx: Path, out_onnx: Path, dW: np.ndarray, db: np.ndarray, reach: Optional[Reach] = None,
                        likeness: Optional[Likeness] = None) -> None:
    """The base graph with ``logits = base logits + Gemm(embedding, dW^T) + db``, times the face's
    :class:`Likeness` weight where ``likeness`` is given, else its :class:`Reach` weight where
    ``reach`` is: every node of the base kept (its logits renamed ``head_residual/base_logits``);
    input/output names unchanged."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(base_onnx))
    g = m.graph
    outs = [o.name for o in g.output]
    if "logits" not in outs or "embedding" not in outs:
        raise ModelFileError(f"{base_onnx}: expected outputs 'logits' and 'embedding', found {', '.join(outs)}")
    base_name = "head_residual/base_logits"
    for n in g.node:
        n.output[:] = [base_name if o == "logits" else o for o in n.output]
        n.input[:] = [base_name if i == "logits" else i for i in n.input]
    for v in g.value_info:
        if v.name == "logits":
            v.name = base_name
    wn, bn = "head_residual/dW", "head_residual/db"
    g.initializer.extend([numpy_helper.from_array(dW.astype(np.float32), wn), numpy_helper.from_array(db.astype(np.float32), bn)])
    delta = "head_residual/delta"
    g.node.append(helper.make_node("Gemm", ["embedding", wn, bn], [delta], name="head_residual/Gemm", transB=1))
    if likeness is not None:
        g.initializer.extend(likeness_initializers(likeness))
        g.node.extend(likeness_nodes(likeness, "embedding", delta, "head_residual/weighted"))
        delta = "head_residual/weighted"
    elif reach is not None:
        g.initializer.extend(reach_initializers(reach))
        g.node.extend(reach_nodes("embedding", delta, "head_residual/reached"))
        delta = "head_residual/reached"
    g.node.append(helper.make_node("Add", [base_name, delta], ["logits"], name="head_residual/Add"))
    onnx.checker.check_model(m)
    out_onnx.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(out_onnx))
