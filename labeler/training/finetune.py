"""`labeler train --mode finetune` (the ``train`` extra): the whole FER network in PyTorch, head
first with the backbone frozen, then every layer at a lower rate; exported to ONNX and judged like
every trained model. torch is imported here only when a finetune runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

from labeler.errors import LabelerError
from labeler.store import Store
from labeler.training.data import crops, model_probs, training_set, unlabeled_sample
from labeler.training.metrics import fit_temperature_pair
from labeler.training.versions import Candidate, TrainResult, finish, load, new_version, trained_name, user_models_dir, write_model

#: a finetuned model is named after the shipped model it descends from: ``fer-ferplus-cnn-ft``
FINETUNE_SUFFIX = "-ft"


class TorchMissing(LabelerError, RuntimeError):
    """Finetuning was asked for without PyTorch installed."""


def train_finetune(
    store: Store, *, base: Optional[str] = None, out_dir: Optional[str | Path] = None, holdout: float = 0.2, seed: int = 0,
    force: bool = False, head_epochs: int = 5, epochs: int = 10, lr_head: float = 1e-3, lr: float = 1e-4,
    batch_size: int = 64, threads: Optional[int] = None, kd: float = 25.0, unlabeled: int = 1000,
    base_data: Optional[str | Path] = None, log: Optional[Callable[[str], None]] = None,
) -> TrainResult:
    """Finetune the whole FER network on the human labels (needs torch: ``pip install '.[train]'``).

    The same guards as the head: distillation toward the base's probabilities on up to ``unlabeled``
    faces without a human label (weight ``kd``), classes without labels get no label loss, and the
    promotion gate (``base_data``: a folder of the base's domain for it)."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise TorchMissing("`labeler train --mode finetune` needs PyTorch: expected it installed, found none; "
                           "pip install 'labeler[train]' (torch==2.13.0), or use --mode head") from e
    from labeler.training import torchfit, torchnet

    t0 = time.perf_counter()
    model = load(store, base)
    data = training_set(store, model.labels, holdout, seed)
    y, tr, held = data.y, data.train, data.held
    x_all = model.preprocess(crops(store, data.face_ids))
    ufaces = unlabeled_sample(store, unlabeled, seed)
    xu = model.preprocess(crops(store, ufaces)) if len(ufaces) else None
    pu = model_probs(store, model, ufaces, flip=True) if len(ufaces) else None
    net = torchnet.OnnxNet.from_onnx(model.card.file)
    fit_log = torchfit.finetune(net, x_all[tr], y[tr], len(data.labels), head_epochs=head_epochs, epochs=epochs,
                                lr_head=lr_head, lr=lr, batch_size=batch_size, seed=seed, threads=threads, say=log,
                                x_unlabeled=xu, p_base=pu, t0=float(model.temperature or 1.0), kd=kd)
    hl = torchnet.logits(net, x_all[held])
    hlf = torchnet.logits(net, x_all[held][..., ::-1].copy())
    # the starting weights kept: keep their calibration too (a temperature fitted on data the base
    # model was trained on would only sharpen it)
    temp = model.temperature if torchfit.kept_start(fit_log) else fit_temperature_pair(hl, hlf, y[held])
    out = Path(out_dir) if out_dir else user_models_dir(store)
    version = new_version()
    name = trained_name(model.name, FINETUNE_SUFFIX)
    stem = f"{name}-{version}"
    out.mkdir(parents=True, exist_ok=True)
    torchnet.export_onnx(net, out / f"{stem}.onnx", x_all[:1])
    training = {"mode": "finetune", "holdout": holdout, "seed": seed, "head_epochs": head_epochs, "epochs": epochs,
                "lr_head": lr_head, "lr": lr, "batch_size": batch_size, "class_balanced": True, "kd": kd,
                "distilled_on": f"{len(ufaces)} faces without a human label",
                "augment": "flip, rotation +-10 deg, scale 0.9-1.1, brightness/contrast +-20%", "log": fit_log,
                "split": "grouped by source image, stratified by class"}
    sidecar = write_model(out, stem, model.card, {
        "name": name, "version": version,
        "calibration": {"temperature": temp, "fitted_on": f"{int(held.sum())} held-out human-labeled faces (seed {seed})"},
        "training": training, "data": data.counts()})
    cand = Candidate(model, name, version, sidecar, out / f"{stem}.onnx", data, temp, training, started=t0, root=model)
    from labeler.fer.resolver import load_model
    from labeler.training.judge import judge_model

    return finish(store, cand, judge_model(store, cand, load_model(str(sidecar)), base_data, ufaces), force)
