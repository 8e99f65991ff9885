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
from labeler.training.data import LabeledSet
from labeler.training.gate import Outcomes, gate
from labeler.training.metrics import format_metrics
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
        out = [f"model {self.ident} (from {m.get('base')})  ->  {self.sidecar}"]
        if d.get("folds"):
            out.append(f"human-labeled faces: {d.get('labeled_faces')} from {d.get('train_images')} images, all learned from; "
                       f"judged out of fold ({d['folds']} folds grouped by image); temperature {m.get('temperature')}")
        else:
            out.append(f"human-labeled faces: {d.get('labeled_faces')} (train {d.get('train_faces')} from {d.get('train_images')} "
                       f"images, held out {d.get('heldout_faces')} from {d.get('heldout_images')} images); temperature {m.get('temperature')}")
        out += format_metrics(m)
        g = m.get("gate") or {}
        if g.get("rule"):
            out.append(f"gate rule: {g['rule']}")
        for c in g.get("checks", []):
            out.append(f"gate: [{'ok' if c['passed'] else 'FAILED'}] {c['check']}: {c['detail']}")
        out.append(("promoted to default: " if self.promoted else "not promoted: ") + self.reason)
        return out


@dataclass
class Judged:
    """What the gate judges a candidate on (gathered by the mode: :mod:`labeler.training.retrain`
    for heads, :func:`labeler.training.judge.judge_model` for other models)."""

    before: dict[str, Any]  # evaluate() of the project's default on the judged human-labeled faces
    after: dict[str, Any]  # the same of the new model (out of fold for heads)
    held: Outcomes
    domains: list[Outcomes] = field(default_factory=list)
    domain_figures: dict[str, Any] = field(default_factory=dict)  # {"set", "base", "after"}: evaluate() records
    not_measured: Optional[str] = None  # why no base-domain set, if none


def finish(store: Store, cand: Candidate, judged: Judged, force: bool = False) -> TrainResult:
    """The shared end of a training run: the promotion gate on the judged outcomes, the figures
    written into the sidecar and the model_versions row, the default changed if promoted."""
    g = gate(judged.held, judged.domains, force, judged.not_measured)
    promoted, why = g.promoted, g.reason
    sidecar = str(cand.sidecar.resolve())
    if promoted:
        model_registry(store).set_default_model(sidecar)
    df = judged.domain_figures
    # the sidecar records the same figures as the database row
    meta = json.loads(cand.sidecar.read_text(encoding="utf-8"))
    meta["metrics"] = {"heldout_before": judged.before, "heldout_after": judged.after, "base_domain_base": df.get("base"),
                       "base_domain_after": df.get("after"), "base_domain_set": df.get("set") or judged.not_measured,
                       "gate": g.as_dict()}
    write_card(cand.sidecar, meta)
    d = cand.data
    trained = d.face_ids if d.fold is not None else d.face_ids[d.train]
    metrics = {"before": judged.before, "after": judged.after, "base": cand.base.ident, "temperature": cand.temperature,
               "promoted": promoted, "reason": why, "gate": g.as_dict(),
               "base_domain": {"model": (cand.root or cand.base).ident, "set": df.get("set") or judged.not_measured,
                               "base": df.get("base"), "after": df.get("after")},
               "training": cand.training, "data": d.counts(), "seconds": round(time.perf_counter() - cand.started, 2),
               # the faces whose labels it learned from: their audits say nothing about its buckets
               "trained_on": sorted(int(f) for f in trained)}
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
            fig += f"; base domain acc {bd['after']['accuracy']:.3f} (base {bd['base']['accuracy']:.3f}, n={bd['after']['n']})"
        fig += gate_summary(m.get("gate"))
        if "promoted" in m and not m.get("calibration"):
            fig += "; promoted" if m["promoted"] else "; not promoted"
        t = f" T={self.temperature:g}" if self.temperature else ""
        fig += evaluation_summary(self.evaluation)
        return f"{'*' if self.default else ' '} {self.ident:55s} [{self.where}]{t}{fig}  {self.path}"


def gate_summary(g: Optional[dict[str, Any]]) -> str:
    """``; gate: held-out +40/-5 p=1e-07; worst class neutral -3.0 pt [-5.1, -0.9] (margin 2)`` from a
    recorded gate (empty for a record without the paired figures)."""
    checks = (g or {}).get("checks") or []
    held = next((c["stats"]["all"] for c in checks if c.get("check", "").startswith("better on held-out") and c.get("stats")), None)
    if not held:
        return ""
    out = f"; gate: held-out {100 * (held['after'] - held['before']):+.1f} pt (+{held['gains']}/-{held['losses']}, p={held['p_better']:.2g})"
    worst = None
    for c in checks:
        if c.get("check", "").startswith("no class") and "held-out" not in c["check"]:
            for lab, st in (c.get("stats") or {}).items():
                if worst is None or st["upper"] < worst[1]["upper"]:
                    worst = (lab, st)
    if worst:
        lab, st = worst
        out += (f"; base domain nearest class {lab} {100 * (st['after'] - st['before']):+.1f} pt "
                f"[{100 * st['lower']:+.1f}, {100 * st['upper']:+.1f}] (margin {100 * g.get('margin', 0.02):.0f})")
    claim = next((c for c in checks if c.get("check", "").startswith("at most")), None)
    if claim:
        out += f"; like the project's {claim['detail'].split(';')[0]}"
    return out


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
