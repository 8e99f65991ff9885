"""The promotion gate: a new model becomes the project's default only when it is

1. better than the current default on the held-out human labels (macro-F1, ties by accuracy);
2. not worse on any class there: per-class recall within 1 point of the default's, or within one
   face where a class has fewer than 100 held-out faces (one face is then more than a point);
3. not worse than the base model (within 1 point, overall and on every class, same tolerance) on
   the base model's own domain, measured on what is available offline (:func:`base_domain_set`):
   a folder of the base's data (``--base-data DIR``, ``<class>/*.jpg``: a seeded class-balanced
   sample) when given; else the base's own answers on the project's faces without a human label
   where the base is sure (top probability >= ``SURE``): there the base scores 100 % by definition
   and the new model must keep (within the tolerance) what the base was sure of.

Pure functions on evaluation records (:func:`labeler.training.metrics.evaluate`); the data is
gathered in :mod:`labeler.training.versions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from labeler.training.metrics import better

#: tolerance of the "not worse" checks (fraction)
TOL = 0.01
#: the base's top probability above which its answer stands in for a label in the offline check
SURE = 0.6
#: images per class of a --base-data folder used by the gate
PER_CLASS = 100


def recalls(ev: dict) -> dict[str, tuple[float, int]]:
    """class -> (recall, faces) from an evaluation record's confusion matrix (classes with faces)."""
    out = {}
    for lab, row in zip(ev.get("labels") or [], ev.get("confusion") or []):
        n = int(sum(row))
        if n:
            out[lab] = (row[(ev["labels"]).index(lab)] / n, n)
    return out


def worse_classes(before: dict, after: dict, tol: float = TOL) -> list[str]:
    """Classes whose recall fell by more than ``tol`` (or by more than one face where 1/n > tol)."""
    rb, ra = recalls(before), recalls(after)
    out = []
    for lab, (r0, n) in rb.items():
        r1 = ra.get(lab, (0.0, n))[0]
        if r1 < r0 - max(tol, 1.0 / n) - 1e-9:
            out.append(f"{lab} {100 * r0:.0f}%->{100 * r1:.0f}% (n={n})")
    return out


@dataclass(frozen=True)
class GateResult:
    promoted: bool
    reason: str  # one line: why (not)
    checks: tuple[tuple[str, bool, str], ...] = field(default_factory=tuple)  # (check, passed, detail)

    def as_dict(self) -> dict[str, Any]:
        return {"promoted": self.promoted, "reason": self.reason,
                "checks": [{"check": c, "passed": p, "detail": d} for c, p, d in self.checks]}


def gate(before: dict, after: dict, base_before: Optional[dict], base_after: Optional[dict], how: str,
         force: bool = False, tol: float = TOL) -> GateResult:
    """The promotion decision from held-out figures (default model ``before``, new model ``after``)
    and the base-domain figures (the base model, the new model; ``how`` names the set)."""
    checks = []
    ok = better(after, before)
    checks.append(("better on held-out human labels", ok,
                   f"macro-F1 {before.get('macro_f1', 0):.3f} -> {after.get('macro_f1', 0):.3f}, "
                   f"accuracy {before.get('accuracy', 0):.3f} -> {after.get('accuracy', 0):.3f}"))
    bad = worse_classes(before, after, tol)
    checks.append(("no class worse on held-out", not bad, "; ".join(bad) or "every class within tolerance"))
    if base_before and base_before.get("n") and base_after:
        a0, a1 = base_before["accuracy"], base_after["accuracy"]
        checks.append((f"not worse on the base's domain ({how})", a1 >= a0 - tol - 1e-9,
                       f"accuracy {a0:.3f} -> {a1:.3f} (n={base_before['n']})"))
        bad = worse_classes(base_before, base_after, tol)
        checks.append(("no class worse on the base's domain", not bad, "; ".join(bad) or "every class within tolerance"))
    else:
        checks.append(("not worse on the base's domain", True, f"not measured: {how}"))
    failed = [c for c in checks if not c[1]]
    if force:
        return GateResult(True, "forced" + (f" (would have failed: {failed[0][0]}: {failed[0][2]})" if failed else ""), tuple(checks))
    if failed:
        return GateResult(False, f"{failed[0][0]}: failed ({failed[0][2]}); the default model is unchanged", tuple(checks))
    return GateResult(True, "better on held-out, no class worse, not worse on the base's domain "
                            f"({checks[2][2]})", tuple(checks))


def base_data_sample(folder: str | Path, labels: Sequence[str], per_class: Optional[int] = None, seed: int = 0) -> tuple[list[Path], np.ndarray]:
    """A seeded class-balanced sample of a ``<class>/*`` image folder (classes as the model names
    them; ``per_class`` default :data:`PER_CLASS`): (paths, class indices). The gate always judges on
    seed 0's sample, whatever the training seed. Raises FileNotFoundError when it holds none of the classes."""
    per_class = PER_CLASS if per_class is None else per_class
    root = Path(folder)
    rng = np.random.default_rng(seed)
    paths, ys = [], []
    for c, lab in enumerate(labels):
        d = root / lab
        files = sorted(p for p in d.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) if d.is_dir() else []
        for i in sorted(rng.permutation(len(files))[:per_class]):
            paths.append(files[i])
            ys.append(c)
    if not paths:
        raise FileNotFoundError(f"--base-data {root}: expected <class>/*.jpg folders named {', '.join(labels)}, found none")
    return paths, np.array(ys, dtype=np.int64)


def read_rgb(paths: Sequence[Path]) -> list[np.ndarray]:
    """The RGB arrays of ``--base-data`` image files (the gate's sample, the replayed images)."""
    import cv2

    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]


def replay_sample(folder: str | Path, labels: Sequence[str], per_class: int = 200, seed: int = 0) -> list[Path]:
    """Up to ``per_class`` images per class of a ``--base-data`` folder that the gate's sample
    (:func:`base_data_sample`, the gate's own seed) leaves out: the base-domain images a head is
    distilled on (replay), kept apart from those it is judged on whatever the training ``seed``."""
    judged = set(base_data_sample(folder, labels)[0])
    rng = np.random.default_rng(seed + 1)
    out = []
    for lab in labels:
        d = Path(folder) / lab
        files = sorted(p for p in d.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p not in judged) if d.is_dir() else []
        out += [files[i] for i in sorted(rng.permutation(len(files))[:per_class])]
    return out


def sure_set(base_probs: np.ndarray, sure: float = SURE) -> tuple[np.ndarray, np.ndarray]:
    """(mask, the base's top-1) of the faces where the base's top probability is >= ``sure``."""
    if not len(base_probs):
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    return base_probs.max(axis=1) >= sure, base_probs.argmax(axis=1)
