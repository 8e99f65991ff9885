"""Trained and calibrated model versions: where they are written, their sidecars, the promotion to
the project's default model, the ``model_versions`` record, and the table of known models.

User models live in ``$LABELER_USER_MODELS`` or a ``labeler_models/`` folder beside the SQLite file.
Which model a name means is decided by :mod:`labeler.fer.resolver`, with this project's registry.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np

from labeler.fer.cards import ModelCard, find_cards, write_card, default_models_dir
from labeler.fer.model import FERModel
from labeler.fer.resolver import USER_MODELS_ENV, load_model, shipped_model
from labeler.store import Store, model_registry, model_version_rows, record_model_version
from labeler.fer.model import softmax
from labeler.training.data import LabeledSet, features, model_probs
from labeler.training.gate import PER_CLASS, SURE, base_data_sample, gate, read_rgb, sure_set
from labeler.training.metrics import evaluate, format_metrics
from labeler.types import LABELS


def load(store: Store, name_or_path: Optional[str] = None) -> FERModel:
    """The model a name means in this project (None: the project's default), as `autolabel` sees it."""
    return load_model(name_or_path, registry=model_registry(store))


def user_models_dir(store: Store) -> Path:
    """Where trained / calibrated models go: ``$LABELER_USER_MODELS``, else ``labeler_models/``
    beside the SQLite database file (else in the working directory)."""
    env = os.environ.get(USER_MODELS_ENV)
    if env:
        return Path(env.split(os.pathsep)[0])
    url = store.url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///"):]).resolve().parent / "labeler_models"
    return Path.cwd() / "labeler_models"


def new_version() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


#: suffixes of the models `labeler train` makes (``<base>-head``, ``<base>-ft``)
TRAINED_SUFFIXES = ("-head", "-ft")


def trained_name(base_name: str, suffix: str) -> str:
    """The name of a model trained on ``base_name``: the shipped model it descends from plus ``suffix``
    (a head trained on ``fer-ferplus-cnn-head`` is ``fer-ferplus-cnn-head`` again, not ``...-head-head``)."""
    root = base_name
    while root.endswith(TRAINED_SUFFIXES):
        root = root[: root.rfind("-")]
    return f"{root}{suffix}"


def write_model(out_dir: Path, stem: str, base_card: ModelCard, meta_extra: dict[str, Any]) -> Path:
    """Write ``<stem>.json`` beside ``<stem>.onnx`` (already written) with the base card's FER facts."""
    base = base_card.meta
    meta_extra = dict(meta_extra)
    meta = {
        "name": meta_extra.pop("name"),
        "version": meta_extra.pop("version"),
        "kind": base.get("kind", "fer"),
        "file": f"{stem}.onnx",
        "sha256": "",
        "labels": list(base.get("labels", LABELS)),
        "input": base.get("input"),
        "outputs": base.get("outputs"),
        "embedding_dim": base.get("embedding_dim"),
        "licence": base.get("licence", ""),
        "licence_file": base.get("licence_file", ""),
        "source": {"parent": base_card.ident, "parent_sidecar": str(Path(base_card.sidecar).resolve()),
                   "parent_source": base.get("source")},
        **meta_extra,
    }
    if base.get("licence_file") and not os.path.isabs(base["licence_file"]):
        meta["licence_file"] = str((Path(base_card.sidecar).parent / base["licence_file"]).resolve())
    sidecar = out_dir / f"{stem}.json"
    write_card(sidecar, meta)
    return sidecar


@dataclass
class Candidate:
    """A freshly trained model, written but not yet judged."""

    base: FERModel  # the model it was trained from
    name: str
    version: str
    sidecar: Path
    onnx: Path
    data: LabeledSet
    temperature: float
    training: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)
    root: Optional[FERModel] = None  # the base model whose domain the gate protects (None: ``base``)
    unlabeled: Any = None  # face ids without a human label (the gate's offline base-domain set)
    base_data: Optional[str | Path] = None  # a folder of the base's own data (<class>/*.jpg)

    @property
    def ident(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass
class TrainResult:
    """What `labeler train` did: the new model, its held-out figures and whether it became the default."""

    name: str
    version: str
    sidecar: str
    onnx: str
    promoted: bool
    reason: str
    metrics: dict[str, Any]  # before, after, base, temperature, training, data, seconds (as recorded in the DB)

    @property
    def ident(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def before(self) -> dict[str, Any]:
        return self.metrics["before"]

    @property
    def after(self) -> dict[str, Any]:
        return self.metrics["after"]

    def lines(self) -> list[str]:
        m = self.metrics
        d = m.get("data", {})
        out = [f"model {self.ident} (from {m.get('base')})  ->  {self.sidecar}",
               f"human-labeled faces: {d.get('labeled_faces')} (train {d.get('train_faces')} from {d.get('train_images')} images, "
               f"held out {d.get('heldout_faces')} from {d.get('heldout_images')} images); temperature {m.get('temperature')}"]
        out += format_metrics(m)
        for c in (m.get("gate") or {}).get("checks", []):
            out.append(f"gate: [{'ok' if c['passed'] else 'FAILED'}] {c['check']}: {c['detail']}")
        out.append(("promoted to default: " if self.promoted else "not promoted: ") + self.reason)
        return out


def _residual(model: FERModel) -> Optional[tuple[str, np.ndarray, np.ndarray]]:
    """(base ident, dW, db) of a residual head (:mod:`labeler.training.head`), else None."""
    res = model.card.meta.get("residual") or {}
    if not res.get("base"):
        return None
    import onnx
    from onnx import numpy_helper

    inits = {t.name: t for t in onnx.load(str(model.card.file)).graph.initializer}
    if "head_residual/dW" not in inits:
        return None
    return (str(res["base"]), numpy_helper.to_array(inits["head_residual/dW"]).astype(np.float64),
            numpy_helper.to_array(inits["head_residual/db"]).astype(np.float64))


def probs(store: Store, model: FERModel, face_ids, root: Optional[FERModel] = None) -> np.ndarray:
    """Flip-averaged calibrated probabilities of stored faces, as the pipeline computes them. The
    base ``root`` and residual heads on it are computed from the cached embeddings and base logits
    (no network run); any other model runs on the crops."""
    face_ids = np.asarray(face_ids, dtype=np.int64)
    res = _residual(model) if root is not None else None
    if root is not None and (model.ident == root.ident or (res and res[0] == root.ident)):
        (e1, z1), (e2, z2) = features(store, root, face_ids), features(store, root, face_ids, flip=True)
        if res and model.ident != root.ident:
            z1, z2 = z1 + e1 @ res[1].T + res[2], z2 + e2 @ res[1].T + res[2]
        return softmax(0.5 * (z1 + z2), float(model.temperature or 1.0))
    return model_probs(store, model, face_ids, flip=True)


def base_domain(store: Store, cand: Candidate, new: FERModel) -> tuple[Optional[dict], Optional[dict], str]:
    """The base model's and the new model's figures on the base's domain, and what the set was
    (see :mod:`labeler.training.gate`)."""
    root = cand.root or cand.base
    labels = list(root.labels)
    if cand.base_data:
        paths, y = base_data_sample(cand.base_data, labels)
        imgs = read_rgb(paths)
        how = f"{len(paths)} images of --base-data {cand.base_data} (up to {PER_CLASS} per class, seeded)"
        return (evaluate(np.asarray(root.predict(imgs, flip=True), dtype=np.float64), y, labels),
                evaluate(np.asarray(new.predict(imgs, flip=True), dtype=np.float64), y, labels), how)
    ids = np.asarray(cand.unlabeled if cand.unlabeled is not None else [], dtype=np.int64)
    if not len(ids):
        return None, None, "no --base-data and no face without a human label"
    pb = probs(store, root, ids, root)
    mask, yb = sure_set(pb)
    if not mask.any():
        return None, None, f"the base is sure (p >= {SURE}) of none of the {len(ids)} faces without a human label"
    pn = probs(store, new, ids[mask], root)
    how = (f"agreement with {root.ident} on the {int(mask.sum())} of {len(ids)} faces without a human label "
           f"where it is sure, p >= {SURE}; no --base-data")
    return evaluate(pb[mask], yb[mask], labels), evaluate(pn, yb[mask], labels), how


def finish(store: Store, cand: Candidate, force: bool = False) -> TrainResult:
    """The shared end of a training run: before/after on the held-out faces, the base-domain
    figures, the promotion gate, the figures written into the sidecar and the model_versions row."""
    d = cand.data
    new = load_model(str(cand.sidecar))
    hf = d.face_ids[d.held]
    root = cand.root or cand.base
    before = evaluate(probs(store, cand.base, hf, root), d.y[d.held], d.labels)
    after = evaluate(probs(store, new, hf, root), d.y[d.held], d.labels)
    base_before, base_after, how = base_domain(store, cand, new)
    g = gate(before, after, base_before, base_after, how, force)
    promoted, why = g.promoted, g.reason
    sidecar = str(cand.sidecar.resolve())
    if promoted:
        model_registry(store).set_default_model(sidecar)
    # the sidecar records the same figures as the database row
    meta = json.loads(cand.sidecar.read_text(encoding="utf-8"))
    meta["metrics"] = {"heldout_before": before, "heldout_after": after, "base_domain_base": base_before,
                       "base_domain_after": base_after, "base_domain_set": how}
    write_card(cand.sidecar, meta)
    metrics = {"before": before, "after": after, "base": cand.base.ident, "temperature": cand.temperature,
               "promoted": promoted, "reason": why, "gate": g.as_dict(),
               "base_domain": {"model": (cand.root or cand.base).ident, "set": how, "base": base_before, "after": base_after},
               "training": cand.training, "data": d.counts(), "seconds": round(time.perf_counter() - cand.started, 2),
               # the faces whose labels it learned from: their audits say nothing about its buckets
               "trained_on": sorted(int(f) for f in d.face_ids[d.train])}
    record_model_version(store, cand.name, cand.version, sidecar, metrics)
    return TrainResult(cand.name, cand.version, sidecar, str(cand.onnx.resolve()), promoted, why, metrics)


# --------------------------------------------------------------------------------------------
# the project's models


def set_default(store: Store, name_or_path: Optional[str]) -> str:
    """Make a model the project's default (a sidecar/ONNX path, a name or name@version, or
    ``shipped``/None for the shipped model). Loads it first: a broken model is refused. Returns its ident."""
    reg = model_registry(store)
    if name_or_path in (None, "", "shipped", "none"):
        reg.set_default_model(None)
        return shipped_model().ident
    m = load(store, str(name_or_path))
    reg.set_default_model(str(Path(m.card.sidecar).resolve()))
    return m.ident


@dataclass
class ModelRow:
    """One FER model known to a project, for `labeler models`."""

    name: str
    version: str
    path: str
    where: str  # shipped | user | registered | registered (file missing)
    default: bool = False
    temperature: Optional[float] = None
    metrics: Optional[dict[str, Any]] = None  # as recorded in model_versions
    evaluation: Optional[dict[str, Any]] = None  # the sidecar's own benchmark figures (shipped models)

    @property
    def ident(self) -> str:
        return f"{self.name}@{self.version}"

    def line(self) -> str:
        m = self.metrics or {}
        after = m.get("after") or {}
        fig = f" held-out macro-F1 {after['macro_f1']:.3f} acc {after['accuracy']:.3f}" if after.get("n") else ""
        bd = m.get("base_domain") or {}
        if (bd.get("after") or {}).get("n"):
            fig += (f"; base domain acc {bd['after']['accuracy']:.3f} (base {bd['base']['accuracy']:.3f}, "
                    f"n={bd['after']['n']}{', base data' if 'images of --base-data' in bd.get('set', '') else ', agreement where the base is sure'})")
        if "promoted" in m and not m.get("calibration"):
            fig += "; promoted" if m["promoted"] else "; not promoted"
        t = f" T={self.temperature:g}" if self.temperature else ""
        fig += evaluation_summary(self.evaluation)
        return f"{'*' if self.default else ' '} {self.ident:55s} [{self.where}]{t}{fig}  {self.path}"


def evaluation_summary(ev: Optional[dict[str, Any]]) -> str:
    """`` PublicTest FER+ 83.9% ECE 0.018; dev web_keyword 46.4% muxspace 58.5%`` from a sidecar's
    ``evaluation`` block (empty when it has none)."""
    if not ev:
        return ""
    out = []
    pt = ev.get("public_test") or {}
    if "acc_ferplus_majority" in pt:
        out.append(f"PublicTest FER+ {pt['acc_ferplus_majority']:.1%}" + (f" ECE {pt['ece_ferplus']:.3f}" if "ece_ferplus" in pt else ""))
    dev = ev.get("dev") or {}
    subs = [f"{k} {v['acc']:.1%}" for k, v in dev.items() if isinstance(v, dict) and "acc" in v and k != "fer2013_48px"]
    if subs:
        out.append("dev " + " ".join(subs))
    return (" " + "; ".join(out)) if out else ""


def project_models(store: Store) -> list[ModelRow]:
    """Every FER model known to the project: shipped (models/), in the user models folder, and
    registered in the database; with the default marked and held-out metrics where known."""
    reg = {r["path"]: r for r in model_version_rows(store)}
    try:
        dflt_ident = load(store).ident
    except Exception:  # noqa: BLE001 - a broken default is shown, not fatal here
        dflt_ident = None
    out: list[ModelRow] = []
    seen = set()
    for d, where in ((default_models_dir(), "shipped"), (user_models_dir(store), "user")):
        for c in find_cards("fer", [d]):
            p = str(Path(c.sidecar).resolve())
            seen.add(p)
            out.append(ModelRow(c.name, c.version, p, where, c.ident == dflt_ident,
                                (c.meta.get("calibration") or {}).get("temperature"), (reg.get(p) or {}).get("metrics"),
                                c.meta.get("evaluation")))
    for p, r in reg.items():
        if p not in seen:
            where = "registered" if Path(p).is_file() else "registered (file missing)"
            out.append(ModelRow(r["name"], r["version"], p, where, False, None, r.get("metrics")))
    return out
