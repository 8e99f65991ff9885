"""Class-prior adjustment of a base FER model (numpy; ``onnx`` only to write the new bias).

A model trained on FER+ learns FER+'s class frequencies: a third of its vote mass is neutral, a
quarter happy, under 2 % disgust. A user's folder is not distributed like that (people scrape by
emotion word, one folder per class), and where a face is ambiguous between a frequent and a rarer
class (sad or neutral, fear or surprise) the learned prior decides. Logit adjustment divides the
prior out of the calibrated probabilities to a power ``alpha``::

    p_adj(c | x)  proportional to  p(c | x) / prior(c) ** alpha

(``alpha`` 0: the model as trained; 1: a uniform prior). It is one bias per class, so it is folded
into the last layer's bias (raw-logit shift ``-alpha * T * log prior``, ``T`` the model's temperature)
and the temperature is fitted again. ``alpha`` is chosen on the validation split (held out from
train by content hash, never PublicTest): the largest macro-F1 against the FER+ majority, the
balanced figure a labeling tool cares about (every class counts, not only the frequent ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from labeler.fer.calibration import class_scores, fit_temperature

#: the values of ``alpha`` tried on validation
ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))


@dataclass(frozen=True)
class PriorAdjustment:
    """The chosen ``alpha``, the prior it divides out, the raw-logit shift and the refitted temperature."""

    alpha: float
    prior: np.ndarray  # (K,), sums to 1
    shift: np.ndarray  # (K,): raw logits + shift
    temperature: float  # of the shifted logits
    table: tuple[tuple[float, float, float], ...]  # (alpha, validation macro-F1, validation accuracy)

    def describe(self, labels: Sequence[str], chosen_on: str) -> dict:
        return {"alpha": self.alpha, "rule": "p(c|x) / prior(c)^alpha, folded into the last layer's bias "
                                             "(raw-logit shift -alpha * T * log prior); temperature fitted again",
                "prior": {lab: round(float(p), 4) for lab, p in zip(labels, self.prior)},
                "shift": {lab: round(float(s), 4) for lab, s in zip(labels, self.shift)},
                "chosen_on": chosen_on, "criterion": "largest macro-F1 against the FER+ majority (ties: smaller alpha)",
                "validation": [{"alpha": a, "macro_f1": round(f, 4), "accuracy": round(acc, 4)} for a, f, acc in self.table]}


def class_prior(dist: np.ndarray) -> np.ndarray:
    """The class prior of a training set: the mean of its (N, K) target distributions, floored at 1e-4."""
    p = np.maximum(np.asarray(dist, np.float64).mean(axis=0), 1e-4)
    return p / p.sum()


def shift_for(alpha: float, prior: np.ndarray, temperature: float) -> np.ndarray:
    """The raw-logit shift that divides ``prior ** alpha`` out of ``softmax(logits / temperature)``."""
    return -float(alpha) * float(temperature) * np.log(np.asarray(prior, np.float64))


def choose(logits: np.ndarray, y: np.ndarray, prior: np.ndarray, temperature: float,
           alphas: Sequence[float] = ALPHAS) -> PriorAdjustment:
    """``alpha`` with the largest macro-F1 of ``argmax(logits + shift)`` against ``y`` (validation
    logits, flip-averaged as the labeler predicts; ``y`` < 0 left out); the temperature is fitted again
    on the shifted logits."""
    z = np.asarray(logits, np.float64)
    y = np.asarray(y, np.int64)
    ok = y >= 0
    z, y = z[ok], y[ok]
    if not len(y):
        raise ValueError("choose: no labeled validation rows")
    k = z.shape[1]
    table = []
    for a in alphas:
        s = class_scores(y, (z + shift_for(a, prior, temperature)).argmax(1), k)
        table.append((float(a), s["macro_f1"], s["accuracy"]))
    best = max(table, key=lambda r: (round(r[1], 6), -r[0]))
    shift = shift_for(best[0], prior, temperature)
    t_new = float(fit_temperature(z + shift, y))
    return PriorAdjustment(best[0], np.asarray(prior, np.float64), shift, t_new, tuple(table))


def shift_onnx_bias(src: Path, dst: Path, shift: np.ndarray, output: str = "logits") -> str:
    """Write ``src`` to ``dst`` with ``shift`` added to the bias of the Gemm (or Conv) that produces
    ``output``; returns the bias initializer's name. Raises ValueError when the graph has no such node."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(src))
    inits = {t.name: t for t in m.graph.initializer}
    node = next((n for n in m.graph.node if output in n.output), None)
    if node is None or node.op_type not in ("Gemm", "Conv") or len(node.input) < 3 or node.input[2] not in inits:
        found = f"{node.op_type} without a bias initializer" if node is not None else "no node"
        raise ValueError(f"{src}: expected '{output}' to come from a Gemm or Conv with a bias, found {found}")
    t = inits[node.input[2]]
    b = numpy_helper.to_array(t).astype(np.float64)
    if b.shape != np.shape(shift):
        raise ValueError(f"{src}: bias {t.name} has shape {b.shape}, the shift {np.shape(shift)}")
    t.CopyFrom(numpy_helper.from_array((b + shift).astype(np.float32), t.name))
    onnx.checker.check_model(m)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(dst))
    return t.name
