"""`labeler calibrate`: a temperature for any model (the shipped one included) fitted on held-out
human labels.

It is written as a *calibrated copy of the sidecar* in the user models folder, pointing at the same
ONNX file, with ``calibration.temperature`` set and a version suffixed ``+cal...``; it is registered
in ``model_versions`` and becomes the default model. Nothing else has to know about it: loading the
sidecar applies its temperature, and the changed ident makes `autolabel`/`repropose` re-propose the
faces with the calibrated probabilities.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from labeler.fer.cards import write_card
from labeler.store import Store, model_registry, record_model_version
from labeler.training.data import NotEnoughLabels, holdout_mask, labeled_data, model_logits
from labeler.training.metrics import evaluate, fit_temperature_pair, probs_from_logits
from labeler.training.versions import load, new_version, user_models_dir


@dataclass
class CalibrationResult:
    ident: str  # the calibrated copy
    base: str  # the model it was fitted for
    sidecar: str
    temperature: float
    previous_temperature: float
    faces: int  # held-out faces it was fitted on
    fitted_on: str  # which faces, in words
    default: bool  # now the project's default model
    metrics: dict[str, Any]  # before, after (as recorded in model_versions)

    def lines(self) -> list[str]:
        b, a = self.metrics["before"], self.metrics["after"]
        return [f"calibrated {self.base}: temperature {self.previous_temperature:g} -> {self.temperature:g} "
                f"on {self.faces} faces ({self.fitted_on})",
                f"ECE {b['ece']:.3f} -> {a['ece']:.3f}, NLL {b['nll']:.3f} -> {a['nll']:.3f}",
                f"wrote {self.sidecar}" + ("; now the default model" if self.default else "")]


def calibrate(store: Store, model: Optional[str] = None, *, holdout: float = 0.2, seed: int = 0,
              out_dir: Optional[str | Path] = None, set_default: Optional[bool] = None) -> CalibrationResult:
    """Fit a temperature for ``model`` (default: the default model) on held-out human labels.

    For a model trained here (its sidecar has ``training``) the held-out part is that of its own
    split (same seed/holdout); for any other model every human label is held out. Writes a
    calibrated copy of the sidecar (same ONNX file) into the user models folder, registers it, and
    makes it the default when the calibrated model was the default (or ``set_default``)."""
    reg = model_registry(store)
    was_default = model is None or reg.default_model() == model
    m = load(store, model)
    labels = list(m.labels)
    fids, iids, y, _skipped = labeled_data(store, labels)
    tr = m.card.meta.get("training")
    if tr:
        held = holdout_mask(iids, y, float(tr.get("holdout", holdout)), int(tr.get("seed", seed)))
        where = f"held-out part of its training split (seed {tr.get('seed', seed)})"
    else:
        held = np.ones(len(y), dtype=bool)
        where = "all human labels (the model was not trained on them)"
    if held.sum() < 2:
        raise NotEnoughLabels(f"not enough held-out human labels to calibrate {m.ident}: expected at least 2, "
                              f"found {int(held.sum())}; label more faces first")
    l1, l2 = model_logits(store, m, fids[held])
    t_old = float((m.card.meta.get("calibration") or {}).get("temperature", 1.0) or 1.0)
    t_new = fit_temperature_pair(l1, l2, y[held])
    before = evaluate(probs_from_logits(l1, l2, t_old), y[held], labels)
    after = evaluate(probs_from_logits(l1, l2, t_new), y[held], labels)
    out = Path(out_dir) if out_dir else user_models_dir(store)
    out.mkdir(parents=True, exist_ok=True)
    base_version = str(m.card.meta.get("calibration", {}).get("base_version") or m.card.version)
    version = f"{base_version}+cal{new_version()}"
    meta = dict(m.card.meta)
    meta["version"] = version
    meta["file"] = str(Path(m.card.file).resolve())  # the same ONNX file, wherever it is
    if meta.get("licence_file") and not os.path.isabs(meta["licence_file"]):
        meta["licence_file"] = str((Path(m.card.sidecar).parent / meta["licence_file"]).resolve())
    meta["calibration"] = {**(m.card.meta.get("calibration") or {}), "temperature": t_new, "previous_temperature": t_old,
                           "base_version": base_version, "fitted_on": f"{int(held.sum())} human-labeled faces: {where}"}
    meta["calibrated_from"] = str(Path(m.card.sidecar).resolve())
    sidecar = (out / f"{m.card.name}-{version.replace('+', '-')}.json").resolve()
    write_card(sidecar, meta)
    metrics = {"calibration": True, "before": before, "after": after, "base": m.ident,
               "temperature": t_new, "previous_temperature": t_old}
    record_model_version(store, m.card.name, version, str(sidecar), metrics)
    make_default = was_default if set_default is None else set_default
    if make_default:
        reg.set_default_model(str(sidecar))
    return CalibrationResult(f"{m.card.name}@{version}", m.ident, str(sidecar), t_new, t_old, int(held.sum()), where,
                             make_default, metrics)
