"""Settings for a run, with defaults chosen from measurements on ../shared/data/dev (see README).

A TOML file can override any field: ``labeler autolabel PATH --config my.toml`` with sections
``[detect]``, ``[crop]``, ``[model]`` and ``[routing]``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

from labeler.faces.detect import MAX_SIDE, WHOLE_MIN_SIDE, WHOLE_SMALL_SIDE
from labeler.routing import RoutingPolicy


@dataclass(frozen=True)
class DetectConfig:
    detector: str = "mtcnn"
    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    #: a kept face must score this much and be at least this fraction of the largest face's size
    min_score: float = 0.9
    min_rel_size: float = 0.25
    min_size: int = 20
    #: the whole-image rule's bounds (labeler.faces.detect.faces_to_label)
    whole_image_min_side: int = WHOLE_MIN_SIDE
    whole_image_max_side: int = WHOLE_SMALL_SIDE
    #: quality flags
    small_px: int = 32
    blur_var: float = 20.0
    max_yaw_deg: float = 45.0
    #: detection runs on a copy whose long side is at most this many px (0: full resolution);
    #: boxes are mapped back and crops cut from the full-resolution image
    max_side: int = MAX_SIDE


@dataclass(frozen=True)
class CropConfig:
    size: int = 112  # stored aligned crop, px
    margin: float = 0.05  # proportional to the face box (measured: tight crops suit the FER model best)


@dataclass(frozen=True)
class ModelConfig:
    name: Optional[str] = None  # None: the project's default model (see `labeler models`)
    flip: bool = True  # horizontal-flip averaging
    batch_images: int = 16  # images whose faces are proposed and committed together


@dataclass(frozen=True)
class Config:
    detect: DetectConfig = field(default_factory=DetectConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    routing: RoutingPolicy = field(default_factory=RoutingPolicy)


def _apply(obj, values: dict[str, Any], where: str):
    names = {f.name for f in fields(obj)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}; expected some of {', '.join(sorted(names))}.")
    conv = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return replace(obj, **conv)


def load_config(path: Optional[str | Path] = None) -> Config:
    cfg = Config()
    if not path:
        return cfg
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"config file not found: {p}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p}: not valid TOML ({e})") from None
    unknown = set(data) - {"detect", "crop", "model", "routing"}
    if unknown:
        raise ValueError(f"{p}: unknown section(s) {', '.join(sorted(unknown))}; expected detect, crop, model, routing.")
    return Config(
        detect=_apply(cfg.detect, data.get("detect", {}), f"{p} [detect]"),
        crop=_apply(cfg.crop, data.get("crop", {}), f"{p} [crop]"),
        model=_apply(cfg.model, data.get("model", {}), f"{p} [model]"),
        routing=_apply(cfg.routing, data.get("routing", {}), f"{p} [routing]"),
    )
