"""Settings for a run, with defaults chosen from measurements on ../shared/data/dev (see README).

A TOML file can override any field: ``labeler autolabel PATH --config my.toml`` with sections
``[detect]``, ``[crop]``, ``[model]``, ``[video]`` and ``[routing]``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

from labeler.errors import ConfigError
from labeler.faces.detect import COARSE_FACE, MAX_SIDE, WHOLE_MIN_SIDE, WHOLE_SMALL_SIDE
from labeler.routing import METHODS, RoutingPolicy


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
    #: detection looks for faces of this many px (in that copy) and more first, then only down to
    #: the size a kept face could still have next to them (0: the whole pyramid at once)
    coarse_face: int = COARSE_FACE


@dataclass(frozen=True)
class CropConfig:
    size: int = 112  # stored aligned crop, px
    #: proportional to the face box, on every side; negative crops inside it. -0.10 is about FER2013's
    #: own framing (-0.05, measured) and was best on the dev set's real photos (scripts/eval/eval_crop_margin.py)
    margin: float = -0.10


@dataclass(frozen=True)
class ModelConfig:
    name: Optional[str] = None  # None: the project's default model (see `labeler models`)
    flip: bool = True  # horizontal-flip averaging
    batch_images: int = 16  # images whose faces are proposed and committed together


@dataclass(frozen=True)
class VideoConfig:
    fps: float = 2.0  # sampled frames per second of video (plus the first frame of every shot)
    cut_threshold: float = 0.5  # histogram distance of consecutive frames that is a scene cut
    max_gap_ms: float = 1500.0  # a face track unseen for longer ends


#: where text is looked for (config ``[clean] text``)
TEXT_BEFORE_AUTO, TEXT_EVERY_IMAGE = "before_auto", "every_image"


@dataclass(frozen=True)
class CleanConfig:
    #: "before_auto": text is looked for on an image only before one of its faces is auto-accepted
    #: (text only ever blocks auto-accept; the detector was half of autolabel's time); "every_image":
    #: on every image as it is detected (every face's text flag and image text share in the export)
    text: str = TEXT_BEFORE_AUTO


@dataclass(frozen=True)
class Config:
    detect: DetectConfig = field(default_factory=DetectConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    routing: RoutingPolicy = field(default_factory=RoutingPolicy)
    video: VideoConfig = field(default_factory=VideoConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)


# ---------------------------------------------------------------- validation
@dataclass(frozen=True)
class Spec:
    """What one setting accepts: ``kind`` int | float | bool | str | name (str or None) | floats |
    strs | weights, with bounds ``lo``..``hi`` (numbers, or each item), ``length`` for tuples,
    ``choices`` for strings, ``zero_ok`` for an int whose 0 means "off", ``open_ends`` for a number
    strictly between ``lo`` and ``hi``; ``what`` says what it is."""

    kind: str
    lo: Optional[float] = None
    hi: Optional[float] = None
    what: str = ""
    length: Optional[int] = None
    choices: tuple[str, ...] = ()
    zero_ok: bool = False
    open_ends: bool = False


_PROB = dict(lo=0.0, hi=1.0)
#: every setting of every section (tests/test_validation.py checks that none is missing)
SPECS: dict[str, dict[str, Spec]] = {
    "detect": {
        "detector": Spec("str", what="face detector", choices=("mtcnn",)),
        "min_face_size": Spec("int", 8, 4096, "smallest face the detector looks for, px"),
        "thresholds": Spec("floats", **_PROB, what="MTCNN stage thresholds", length=3),
        "min_score": Spec("float", **_PROB, what="detection score a kept face needs"),
        "min_rel_size": Spec("float", **_PROB, what="fraction of the largest face's size"),
        "min_size": Spec("int", 1, 4096, "short side of a kept face, px"),
        "whole_image_min_side": Spec("int", 8, 4096, "whole-image rule's smallest side, px"),
        "whole_image_max_side": Spec("int", 8, 4096, "whole-image rule's largest side, px"),
        "small_px": Spec("int", 0, 4096, "face size below which a face is flagged small, px"),
        "blur_var": Spec("float", 0.0, 1e6, "Laplacian variance below which a face is flagged blurry"),
        "max_yaw_deg": Spec("float", 0.0, 90.0, "yaw above which a face is flagged profile, degrees"),
        "max_side": Spec("int", 64, 20000, "long side of the copy detection sees, px", zero_ok=True),
        "coarse_face": Spec("int", 8, 4096, "smallest face of detection's coarse first pass, px", zero_ok=True),
    },
    "crop": {
        "size": Spec("int", 16, 1024, "side of the stored aligned crop, px"),
        "margin": Spec("float", -0.3, 1.0, "crop margin as a fraction of the face box (negative: inside it)"),
    },
    "model": {
        "name": Spec("name", what="FER model name, name@version or sidecar path"),
        "flip": Spec("bool", what="horizontal-flip averaging"),
        "batch_images": Spec("int", 1, 1024, "images proposed and committed together"),
    },
    "video": {
        "fps": Spec("float", 0.01, 240.0, "sampled frames per second of video"),
        "cut_threshold": Spec("float", **_PROB, what="histogram distance that is a scene cut"),
        "max_gap_ms": Spec("float", 0.0, 1e7, "time after which an unseen face track ends, ms"),
    },
    "clean": {
        "text": Spec("str", what="where text is looked for", choices=(TEXT_BEFORE_AUTO, TEXT_EVERY_IMAGE)),
    },
    "routing": {
        "agree_threshold": Spec("float", **_PROB, what="probability the keyword's class needs"),
        "agree_top_k": Spec("int", 1, 7, "how many of the model's top classes the keyword may be among"),
        "model_threshold": Spec("float", **_PROB, what="model top-1 probability for a candidate"),
        "model_bands": Spec("floats", **_PROB, what="model-probability band edges"),
        "target_precision": Spec("float", **_PROB, what="precision the auto-accepted labels must reach", open_ends=True),
        "method": Spec("str", what="how auto-accept decides", choices=METHODS),
        "audit_size": Spec("int", 1, 1_000_000, "blind audits conformal auto-accept asks for"),
        "audit_seed": Spec("int", 0, 2**31 - 1, "seed of the audit order", zero_ok=True),
        "audit_always": Spec("bool", what="ask for audits even where they would not pay for themselves"),
        "block_flags": Spec("strs", what="quality flags that block auto-accept",
                            choices=("small", "blurry", "profile", "low_score")),
        "weights": Spec("weights", 0.0, 1e6, "review-order weight per review kind"),
    },
}


def _num(v: Any, integer: bool) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) if integer else isinstance(v, (int, float)) and math.isfinite(v)


def _range(spec: Spec) -> str:
    return f"strictly between {spec.lo:g} and {spec.hi:g}" if spec.open_ends else f"from {spec.lo:g} to {spec.hi:g}"


def _inside(spec: Spec, v: float) -> bool:
    return spec.lo < v < spec.hi if spec.open_ends else spec.lo <= v <= spec.hi


def _check(spec: Spec, v: Any) -> tuple[Optional[str], Any]:
    """(None, the value as the dataclass holds it) when ``v`` fits ``spec``; else (what was expected, None)."""
    k = spec.kind
    if k in ("int", "float"):
        rng = _range(spec) + (" (or 0: off)" if spec.zero_ok else "")
        exp = f"{'an integer' if k == 'int' else 'a finite number'} {rng}"
        if not _num(v, k == "int") or not (_inside(spec, v) or (spec.zero_ok and v == 0)):
            return exp, None
        return None, (int(v) if k == "int" else float(v))
    if k == "bool":
        return (None, v) if isinstance(v, bool) else ("true or false", None)
    if k in ("str", "name"):
        ok = isinstance(v, str) and v.strip() and (not spec.choices or v in spec.choices)
        exp = f"one of {', '.join(spec.choices)}" if spec.choices else "a non-empty string"
        return (None, v) if ok else (exp, None)
    if k in ("floats", "strs"):
        n = f"{spec.length} " if spec.length else ""
        if k == "floats":
            exp = f"a list of {n}finite numbers {_range(spec)}"
            ok_item = lambda x: _num(x, False) and spec.lo <= x <= spec.hi  # noqa: E731
        else:
            exp = f"a list of {n}names among {', '.join(spec.choices)}"
            ok_item = lambda x: isinstance(x, str) and x in spec.choices  # noqa: E731
        if not isinstance(v, (list, tuple)) or (spec.length and len(v) != spec.length) or not all(map(ok_item, v)):
            return exp, None
        return None, tuple(float(x) if k == "floats" else x for x in v)
    if k == "weights":
        from labeler.types import REVIEW_KINDS

        exp = f"a table of review kinds ({', '.join(REVIEW_KINDS)}) to finite numbers {_range(spec)}"
        if not isinstance(v, dict) or not all(
            key in REVIEW_KINDS and _num(x, False) and spec.lo <= x <= spec.hi for key, x in v.items()
        ):
            return exp, None
        return None, {key: float(x) for key, x in v.items()}
    raise AssertionError(f"unknown spec kind {k!r}")


def _apply(obj, values: dict[str, Any], where: str, section: str):
    names = [f.name for f in fields(obj)]
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table [{section}] of settings, found {values!r}; write `[{section}]` on its own line.")
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"{where} [{section}]: unknown setting(s) {', '.join(unknown)}; expected some of {', '.join(sorted(names))}. "
            "Fix the spelling or remove the line."
        )
    conv = {}
    for key, v in values.items():
        spec = SPECS[section][key]
        expected, value = _check(spec, v)
        if expected is not None:
            default = getattr(obj, key)
            shown = list(default) if isinstance(default, tuple) else default
            raise ConfigError(
                f"{where} [{section}] {key}: expected {expected} ({spec.what}), found {v!r}; "
                f"fix: set {key} = {_toml(shown)} (the default) or a value as expected."
            )
        conv[key] = {**getattr(obj, key), **value} if spec.kind == "weights" else value  # weights: per kind
    try:
        return replace(obj, **conv)
    except ValueError as e:  # a check of the settings' own class: still one line that names the file
        raise ConfigError(f"{where} [{section}]: {e}; fix the value in the file, or remove the line for the default.") from None


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _cross_checks(cfg: Config, where: str) -> None:
    d = cfg.detect
    if d.whole_image_min_side > d.whole_image_max_side:
        raise ConfigError(
            f"{where} [detect] whole_image_min_side: expected at most whole_image_max_side ({d.whole_image_max_side}), "
            f"found {d.whole_image_min_side}; fix: lower whole_image_min_side or raise whole_image_max_side."
        )


#: a config file larger than this is refused (a real one is a few hundred bytes)
MAX_CONFIG_BYTES = 1 << 20


def load_config(path: Optional[str | Path] = None) -> Config:
    """The defaults, overridden by the TOML file ``path``; every value is checked against
    :data:`SPECS` (type and range) and a bad one is a one-line :class:`ConfigError`."""
    cfg = Config()
    if not path:
        return cfg
    from labeler.ingest.rules import read_small_text

    p = Path(path)
    text = read_small_text(p, "config file", MAX_CONFIG_BYTES, ConfigError, "Pass a TOML file with --config, or omit it for the defaults.")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e}); fix the line it names.") from None
    unknown = set(data) - set(SPECS)
    if unknown:
        raise ConfigError(
            f"{p}: unknown section(s) {', '.join(sorted(unknown))}; expected detect, crop, model, video, clean, routing. "
            "Fix the spelling or remove the section."
        )
    out = Config(**{sec: _apply(getattr(cfg, sec), data.get(sec, {}), str(p), sec) for sec in SPECS})
    _cross_checks(out, str(p))
    return out
