"""The one model resolver: which FER model a name means, for `autolabel`, `train`, `calibrate`,
`models` and the UI alike.

A request is resolved in this order:

1. a path to a sidecar (``.json``) or ONNX file (its sidecar beside it);
2. ``name`` or ``name@version`` registered in the project's database (``model_versions``; the
   newest registration of a name wins), as handed in by a :class:`ModelRegistry`;
3. ``name`` or ``name@version`` of a sidecar of kind ``fer`` in the shipped ``models/`` folder or a
   folder of ``$LABELER_USER_MODELS`` (the last one listed wins: user folders come after the shipped one);
4. no name: the project's default (the ``default_model`` setting, a sidecar path or a name), else
   the shipped default :data:`DEFAULT_MODEL`.

fer/ knows models, not the database: the caller passes the registry in (``labeler.store`` has one,
:func:`labeler.store.model_registry`). Loaded models are cached per process.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterable, Mapping, Optional, Protocol, Union

from labeler.fer.cards import ModelCard, ModelFileError, default_models_dir, find_cards, read_card
from labeler.fer.model import OnnxFERModel


#: the shipped model used when nothing else is asked for
DEFAULT_MODEL = "fer-ferplus-cnn"
#: folders of user models (os.pathsep-separated), searched after the shipped one
USER_MODELS_ENV = "LABELER_USER_MODELS"

PathLike = Union[str, Path]


class ModelRegistry(Protocol):
    """What the resolver needs from a project's database."""

    def registered_models(self) -> Mapping[str, str]:
        """``name`` and ``name@version`` -> sidecar path of the registered model versions (newest wins)."""
        ...

    def default_model(self) -> Optional[str]:
        """The project's default model (a sidecar path or a name), None for the shipped default."""
        ...


def model_dirs(dirs: Optional[Iterable[PathLike]] = None) -> list[Path]:
    """The shipped models folder, then ``$LABELER_USER_MODELS`` (os.pathsep-separated), then ``dirs``."""
    out = [default_models_dir()]
    env = os.environ.get(USER_MODELS_ENV)
    if env:
        out += [Path(p) for p in env.split(os.pathsep) if p]
    out += [Path(d) for d in (dirs or [])]
    seen, uniq = set(), []
    for d in out:
        key = str(Path(d).resolve())
        if key not in seen:
            seen.add(key)
            uniq.append(Path(d))
    return uniq


def list_models(dirs: Optional[Iterable[PathLike]] = None) -> list[ModelCard]:
    """Sidecars of kind ``fer`` in the shipped folder, ``$LABELER_USER_MODELS`` and ``dirs`` (not verified)."""
    return [c for c in find_cards("fer", model_dirs(dirs), verify=False) if c.kind == "fer"]


def _is_path(want: str) -> bool:
    return want.endswith((".json", ".onnx")) or Path(want).expanduser().is_file()


def _card_of_path(want: str) -> ModelCard:
    p = Path(want).expanduser()
    return read_card(p.with_suffix(".json") if p.suffix == ".onnx" else p, verify=False)


def resolve_card(
    name_or_path: Optional[PathLike] = None,
    registry: Optional[ModelRegistry] = None,
    dirs: Optional[Iterable[PathLike]] = None,
) -> ModelCard:
    """The sidecar a request means (see the module's docstring for the order); not verified yet."""
    want = None if name_or_path in (None, "") else str(name_or_path)
    if want is None and registry is not None:
        want = registry.default_model() or None
    want = want or DEFAULT_MODEL
    if _is_path(want):
        return _card_of_path(want)
    if registry is not None:
        hit = registry.registered_models().get(want)
        if hit:
            return _card_of_path(hit)
    cards = list_models(dirs)
    if "@" in want:
        name, version = want.split("@", 1)
        hits = [c for c in cards if c.name == name and c.version == version]
    else:
        hits = [c for c in cards if c.name == want]
    if not hits:
        known = sorted({c.ident for c in cards} | set(registry.registered_models() if registry is not None else ()))
        searched = ", ".join(str(d) for d in model_dirs(dirs))
        raise ModelFileError(
            f"FER model {want!r} not found: expected a sidecar of kind 'fer' with that name in {searched}"
            f"{' or registered in the database' if registry is not None else ''}; found {', '.join(known) or 'none'}. "
            f"Put <stem>.onnx and <stem>.json in one of those folders (or set ${USER_MODELS_ENV}), "
            "pass a path to the sidecar, or run `python scripts/convert/convert_models.py` for the shipped model."
        )
    return hits[-1]


def shipped_card() -> ModelCard:
    """The shipped default model's own sidecar (not a same-named copy in a user folder)."""
    for c in find_cards("fer", [default_models_dir()]):
        if c.name == DEFAULT_MODEL:
            return c
    return resolve_card(DEFAULT_MODEL)


_CACHE: dict[tuple, OnnxFERModel] = {}
_CACHE_LOCK = threading.Lock()


def _stamp(p: Path) -> tuple:
    try:
        st = Path(p).stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return (None, None)


def load_card(card: ModelCard, intra_op_num_threads: int = 2) -> OnnxFERModel:
    """The loaded (checksum-verified) model of a sidecar, cached per process; a changed sidecar or
    model file is loaded and verified again."""
    key = (str(Path(card.sidecar).resolve()), _stamp(card.sidecar), str(card.file), _stamp(card.file), int(intra_op_num_threads))
    with _CACHE_LOCK:
        m = _CACHE.get(key)
        if m is None:
            m = OnnxFERModel(card, intra_op_num_threads=intra_op_num_threads)
            _CACHE[key] = m
        return m


def load_model(
    name_or_path: Optional[PathLike] = None,
    dirs: Optional[Iterable[PathLike]] = None,
    intra_op_num_threads: int = 2,
    registry: Optional[ModelRegistry] = None,
) -> OnnxFERModel:
    """A loaded FER model by name, ``name@version`` or a path to its sidecar/ONNX file (None: the
    registry's default, else the shipped default)."""
    return load_card(resolve_card(name_or_path, registry, dirs), intra_op_num_threads)


def shipped_model(intra_op_num_threads: int = 2) -> OnnxFERModel:
    """The shipped default FER model itself."""
    return load_card(shipped_card(), intra_op_num_threads)
