"""Learning from the human labels without forgetting what the base model knows: a residual head
(numpy: the base's logits plus a correction distilled toward the base on unlabeled faces), a
finetuned network (torch, the ``train`` extra, same distillation) and temperature calibration;
every new model judged on held-out human labels (a head: out of fold, grouped by source image,
stratified by class) and on the base's own domain (shipped features, :mod:`labeler.training.basedomain`),
and promoted to the project's default only on evidence, through the paired tests of
:mod:`labeler.training.gate` (:mod:`labeler.training.stats`), or when forced.

Modules: ``data`` (labeled faces, folds, crops, embeddings), ``metrics`` (evaluation, temperature),
``stats``/``gate`` (paired tests, the promotion rule), ``basedomain`` (the shipped features),
``likeness``/``reach`` (which faces a head changes), ``head`` (fitting), ``residual`` (the head as a
value and an ONNX graph), ``retrain`` (the head's training run), ``judge`` (answers of models),
``finetune`` (+ ``torchnet``/``torchfit``, torch only there), ``calibrate``, ``versions`` (writing,
promoting, recording and listing models). The one entry point for the CLI, the UI and background
retraining is :func:`train`. No torch at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from labeler.errors import ConfigError
from labeler.training.calibrate import CalibrationResult, calibrate  # noqa: F401
from labeler.training.versions import ModelRow, TrainResult, project_models, set_default  # noqa: F401

if TYPE_CHECKING:
    from labeler.store import Store

MODES = ("head", "finetune")


def train(
    store: "Store | str", mode: str = "head", *, base: Optional[str] = None, holdout: float = 0.2, seed: int = 0, force: bool = False,
    epochs: Optional[int] = None, out_dir: Optional[str | Path] = None, log: Optional[Callable[[str], None]] = None,
    base_data: Optional[str | Path] = None,
) -> TrainResult:
    """Train a new model of ``mode`` (``head`` or ``finetune``) from ``base`` (None: the project's
    default model) on the human labels in ``store``; write, register and, if it is better on the
    held-out part and passes the gate (or ``force``), make it the default. ``epochs`` None: the
    mode's default. ``base_data``: a ``<class>/*.jpg`` folder of the base's own data for the gate.
    ``log`` receives progress lines. Nothing is printed. ``store``: a store or a database URL (so a
    thread or a subprocess can call it with the URL alone); the result is a :class:`TrainResult`
    (promoted or not, why, the gate's figures)."""
    if isinstance(store, str):
        from labeler.store import Store

        store = Store(store)
    kw = dict(base=base, holdout=holdout, seed=seed, force=force, out_dir=out_dir, log=log, base_data=base_data)
    if epochs is not None:
        kw["epochs"] = int(epochs)
    if mode == "head":
        from labeler.training.retrain import train_head

        return train_head(store, **kw)
    if mode == "finetune":
        from labeler.training.finetune import train_finetune

        return train_finetune(store, **kw)
    raise ConfigError(f"unknown training mode {mode!r}: expected one of {', '.join(MODES)}")
