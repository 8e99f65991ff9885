"""Model files travel with their facts: every ONNX file has a JSON sidecar beside it.

A sidecar ``<stem>.json`` next to ``<stem>.onnx`` holds at least::

    {"name": ..., "version": ..., "kind": "fer" | "mtcnn-pnet" | ..., "file": "<stem>.onnx",
     "sha256": ..., "source": {...}, "licence": ..., "licence_file": ...}

and, for FER models, ``labels``, ``input`` (size, channels, normalisation) and ``outputs``.
Loading checks the checksum and fails loudly, never falls back to anything.
"""

from __future__ import annotations

from labeler.errors import LabelerError

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ModelFileError(LabelerError, RuntimeError):
    """A model file or its sidecar is missing, unreadable or does not match."""


def default_models_dir() -> Path:
    """``$LABELER_MODELS_DIR`` if set, else the shipped ``models/`` folder."""
    from labeler.resources import models_dir

    return models_dir()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


@dataclass
class ModelCard:
    """The parsed sidecar of one model file."""

    sidecar: Path
    name: str
    version: str
    kind: str
    file: Path
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return list(self.meta.get("labels", []))

    @property
    def ident(self) -> str:
        return f"{self.name}@{self.version}"


REQUIRED = ("name", "version", "kind", "file", "sha256")


def read_card(sidecar: Path, verify: bool = True) -> ModelCard:
    """Parse a sidecar and (by default) verify its model file's sha256."""
    sidecar = Path(sidecar)
    if not sidecar.is_file():
        raise ModelFileError(
            f"model sidecar not found: expected {sidecar}, found nothing. "
            "Regenerate the shipped models with `python scripts/convert/convert_models.py`, "
            "or point LABELER_MODELS_DIR at a folder that holds them."
        )
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFileError(f"model sidecar {sidecar} is not valid JSON ({e}); fix or regenerate it.") from e
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ModelFileError(
            f"model sidecar {sidecar} lacks the field(s) {', '.join(missing)}; expected all of "
            f"{', '.join(REQUIRED)}. Regenerate it with scripts/convert/convert_models.py."
        )
    model_path = (sidecar.parent / meta["file"]).resolve()
    card = ModelCard(
        sidecar=sidecar,
        name=str(meta["name"]),
        version=str(meta["version"]),
        kind=str(meta["kind"]),
        file=model_path,
        sha256=str(meta["sha256"]).lower(),
        meta=meta,
    )
    if verify:
        verify_card(card)
    return card


def verify_card(card: ModelCard) -> None:
    if not card.file.is_file():
        raise ModelFileError(
            f"model file for {card.ident} not found: expected {card.file} (named in {card.sidecar}), "
            "found nothing. Run `python scripts/convert/convert_models.py` to regenerate the shipped models."
        )
    found = sha256_file(card.file)
    if found != card.sha256:
        raise ModelFileError(
            f"checksum mismatch for {card.file}: expected sha256 {card.sha256} (from {card.sidecar.name}), "
            f"found {found}. The file is damaged or was replaced; regenerate it with "
            "`python scripts/convert/convert_models.py`, or update the sidecar if you replaced it on purpose."
        )


def find_cards(kind_prefix: str = "", dirs: list[Path] | None = None, verify: bool = False) -> list[ModelCard]:
    """All sidecars (``*.json`` with the required fields) under the given folders."""
    out: list[ModelCard] = []
    for d in dirs or [default_models_dir()]:
        d = Path(d)
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.json")):
            try:
                meta = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(meta, dict) or any(k not in meta for k in REQUIRED):
                continue
            if not str(meta["kind"]).startswith(kind_prefix):
                continue
            out.append(read_card(p, verify=verify))
    return out


def write_card(sidecar: Path, meta: dict[str, Any]) -> None:
    """Write a sidecar, filling ``sha256`` from the model file it names. An ``evaluation`` block (the
    model's benchmark figures) of the sidecar already there is kept when the weights are the same
    (same sha256): regenerating a sidecar does not lose its figures, new weights do."""
    sidecar = Path(sidecar)
    meta = dict(meta)
    meta["sha256"] = sha256_file(sidecar.parent / meta["file"])
    if "evaluation" not in meta and sidecar.is_file():
        try:
            old = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if isinstance(old, dict) and old.get("sha256") == meta["sha256"] and "evaluation" in old:
            meta["evaluation"] = old["evaluation"]
    sidecar.write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
