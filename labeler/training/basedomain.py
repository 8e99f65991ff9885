"""The base model's own domain, shipped with it (issue 32): embeddings and raw logits of a few
thousand FER2013 faces and the global averages of earlier feature maps (each face as is and
mirrored; float16, the averages 8-bit) with their FER+ majority labels, in
``labeler/data/base_domain_<model name>.npz`` with a JSON sidecar saying which model file (sha256)
computed them, from which faces and when (``scripts/train/base_domain_features.py``). No image is
shipped. Two sets: ``replay`` (faces the base was trained on: a head is distilled toward the base
there) and ``gate`` (faces of the base's own validation split: the promotion gate judges there).

Found through ``importlib.resources`` (``labeler.data``), so a wheel, an editable install and a
checkout behave alike. Features are used only with the model file that computed them: for any
other model (another name, or the same name with other weights: a different sha256)
:func:`load_base_domain` returns None and says why, and `labeler train` falls back to what it can
measure offline (see :mod:`labeler.training.gate`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import numpy as np

from labeler.training.likeness import probe_tensors

#: file names: ``<FILE_STEM><model name>.npz`` / ``.json``
FILE_STEM = "base_domain_"
#: the layout of the arrays (bumped when it changes; another format is not read)
FORMAT = 1


@dataclass(frozen=True)
class DomainSet:
    """Features of one set of base-domain faces: embeddings, raw logits and probe features
    (:mod:`labeler.training.likeness`) of each face as is and mirrored (float64 here), and the
    label (index into the model's labels; the FER+ majority for the shipped sets)."""

    E: np.ndarray
    Z: np.ndarray
    P: np.ndarray
    Ef: np.ndarray
    Zf: np.ndarray
    Pf: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(len(self.y))

    def both_views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(embeddings, logits, probe features) of both views stacked: 2N rows, as a head is trained."""
        return np.concatenate([self.E, self.Ef]), np.concatenate([self.Z, self.Zf]), np.concatenate([self.P, self.Pf])


@dataclass(frozen=True)
class BaseDomain:
    """The shipped base-domain features of one model file."""

    model: str  # name@version of the model that computed them
    sha256: str  # of that model's ONNX file
    gate: DomainSet
    replay: DomainSet
    where: str  # the .npz it was read from
    meta: dict[str, Any]
    tensors: tuple[str, ...] = ()  # the probe feature maps (labeler.training.likeness.probe_tensors)

    def describe(self, which: str) -> str:
        s = (self.meta.get("sets") or {}).get(which) or {}
        return f"{len(getattr(self, which))} shipped FER2013 faces ({which}: {s.get('what', '?')})"


def _data_files(folder: Optional[str | Path]):
    return Path(folder) if folder is not None else resources.files("labeler.data")


def _set(z, name: str) -> DomainSet:
    def f(k):
        v = np.asarray(z[f"{name}_{k}"], dtype=np.float64)
        return v * (np.asarray(z[f"{name}_{k}_scale"], dtype=np.float64) / 255.0) if k.startswith("probe") else v

    return DomainSet(f("emb"), f("logits"), f("probe"), f("emb_flip"), f("logits_flip"), f("probe_flip"),
                     np.asarray(z[f"{name}_y"], dtype=np.int64))


def load_base_domain(model, folder: Optional[str | Path] = None) -> tuple[Optional[BaseDomain], str]:
    """(the shipped features of ``model``'s own domain, a line saying what was found). None when
    there are none for this model's name, when they were computed with another model file
    (sha256), another format or other labels: never silently used with a model they do not
    describe. ``folder``: where to look instead of the shipped ``labeler/data`` (tests)."""
    root = _data_files(folder)
    name = model.card.name
    side, data = root / f"{FILE_STEM}{name}.json", root / f"{FILE_STEM}{name}.npz"
    if not side.is_file() or not data.is_file():
        return None, f"no shipped base-domain features for {name} (expected {FILE_STEM}{name}.json/.npz in labeler/data)"
    meta = json.loads(side.read_text(encoding="utf-8"))
    m = meta.get("model") or {}
    if meta.get("format") != FORMAT:
        return None, f"{side.name}: format {meta.get('format')!r}, expected {FORMAT}; not used"
    if m.get("sha256") != model.card.sha256:
        return None, (f"{side.name} was computed with {m.get('name')}@{m.get('version')} (sha256 {str(m.get('sha256'))[:12]}), "
                      f"not with {model.ident} (sha256 {model.card.sha256[:12]}): not used; recompute them with "
                      "scripts/train/base_domain_features.py")
    if list(meta.get("labels") or []) != list(model.labels):
        return None, f"{side.name}: labels {meta.get('labels')} differ from {model.ident}'s {model.labels}; not used"
    tensors = list((meta.get("probe") or {}).get("tensors") or [])
    if tensors != probe_tensors(model.card.file):
        return None, f"{side.name}: probe feature maps {tensors} are not {model.ident}'s; not used"
    with np.load(io.BytesIO(data.read_bytes())) as z:
        gate, replay = _set(z, "gate"), _set(z, "replay")
    dom = BaseDomain(f"{m.get('name')}@{m.get('version')}", str(m["sha256"]), gate, replay, str(data), meta, tuple(tensors))
    return dom, f"shipped base-domain features of {dom.model}: gate {len(gate)} faces, replay {len(replay)} faces"


# --------------------------------------------------------------------------------------------
# a user's own reference set: a ``<class>/*.jpg`` folder (``--base-data DIR``)

#: images per class of a --base-data folder the gate judges on
PER_CLASS = 100
_IMAGES = (".jpg", ".jpeg", ".png")


def _class_files(root: Path, lab: str) -> list[Path]:
    d = root / lab
    return sorted(p for p in d.glob("*") if p.suffix.lower() in _IMAGES) if d.is_dir() else []


def base_data_sample(folder: str | Path, labels, per_class: Optional[int] = None, seed: int = 0) -> tuple[list[Path], np.ndarray]:
    """A seeded class-balanced sample of a ``<class>/*`` image folder (classes as the model names
    them; ``per_class`` default :data:`PER_CLASS`): (paths, class indices). The gate always judges on
    seed 0's sample, whatever the training seed. Raises FileNotFoundError when it holds none of the classes."""
    per_class = PER_CLASS if per_class is None else per_class
    root = Path(folder)
    rng = np.random.default_rng(seed)
    paths, ys = [], []
    for c, lab in enumerate(labels):
        files = _class_files(root, lab)
        for i in sorted(rng.permutation(len(files))[:per_class]):
            paths.append(files[i])
            ys.append(c)
    if not paths:
        raise FileNotFoundError(f"--base-data {root}: expected <class>/*.jpg folders named {', '.join(labels)}, found none")
    return paths, np.array(ys, dtype=np.int64)


def replay_sample(folder: str | Path, labels, per_class: int = 200, seed: int = 0) -> list[Path]:
    """Up to ``per_class`` images per class of a ``--base-data`` folder that the gate's sample
    (:func:`base_data_sample`, the gate's own seed) leaves out: the base-domain images a head is
    distilled on (replay), kept apart from those it is judged on whatever the training ``seed``."""
    judged = set(base_data_sample(folder, labels)[0])
    rng = np.random.default_rng(seed + 1)
    out = []
    for lab in labels:
        files = [p for p in _class_files(Path(folder), lab) if p not in judged]
        out += [files[i] for i in sorted(rng.permutation(len(files))[:per_class])]
    return out


def read_rgb(paths) -> list[np.ndarray]:
    """The RGB arrays of image files (a ``--base-data`` folder's)."""
    import cv2

    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]


def images_set(runner, paths, y: np.ndarray) -> DomainSet:
    """The features of image files (each as is and mirrored) with a :class:`~labeler.training.likeness.ProbeRunner`."""
    imgs = read_rgb(paths)
    a = runner.run(imgs)
    b = runner.run([np.ascontiguousarray(im[:, ::-1]) for im in imgs])
    return DomainSet(a[0], a[1], a[2], b[0], b[1], b[2], np.asarray(y, dtype=np.int64))


def folder_domain(runner, folder: str | Path, replay_per_class: int = 200, seed: int = 0) -> BaseDomain:
    """A ``--base-data`` folder as the base's domain: the gate's seeded sample (folder labels) and
    other images of it to replay."""
    model = runner.model
    labels = list(model.labels)
    paths, y = base_data_sample(folder, labels)
    rpaths = replay_sample(folder, labels, replay_per_class, seed) if replay_per_class > 0 else []
    ry = np.array([labels.index(p.parent.name) for p in rpaths], dtype=np.int64)
    meta = {"sets": {"gate": {"what": f"--base-data {folder}: up to {PER_CLASS} images per class (seeded), folder labels"},
                     "replay": {"what": f"--base-data {folder}: up to {replay_per_class} other images per class (seed {seed + 1})"}}}
    return BaseDomain(model.ident, model.card.sha256, images_set(runner, paths, y), images_set(runner, rpaths, ry),
                      str(folder), meta, tuple(runner.tensors))
