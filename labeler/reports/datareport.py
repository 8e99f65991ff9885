"""The data report: one HTML page with inline SVG charts of a data set, beside FER2013 train.

Input is typed, not a database: a list of :class:`FaceStats` (one per face) that the caller builds
from wherever the faces live; :func:`summarise` turns them into a :class:`Summary` of counts over
fixed bins, and :func:`build_report` draws a summary next to a reference summary (FER2013 train,
``labeler/data/fer2013_reference.json``, made by ``scripts/make/fer2013_reference.py`` with this same
:func:`summarise`, so both sides are binned alike). No plotting library: bars are SVG rectangles.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from labeler.types import LABELS

REFERENCE_FILE = Path(__file__).resolve().parent.parent / "data" / "fer2013_reference.json"

#: bin edges per numeric figure (the last bin is open-ended)
BINS: dict[str, tuple[float, ...]] = {
    "size": (0, 24, 32, 40, 48, 64, 96, 128, 192, 256, 384),
    "yaw": (-90, -60, -45, -30, -15, 0, 15, 30, 45, 60),  # |yaw| <= 90: the last bin is 60 to 90
    "blur": (0, 10, 20, 50, 100, 200, 500, 1000, 2000),
    "brightness": (0, 32, 64, 96, 128, 160, 192, 224),
}
TITLES = {
    "classes": ("Class balance", "share of faces per class (accepted label, else the proposal)"),
    "size": ("Face size", "short side of the face box in pixels (FER2013 faces are all 48 px)"),
    "yaw": ("Yaw", "head turn in degrees from the landmarks; 0 is frontal"),
    "blur": ("Sharpness", "variance of the Laplacian of the face at 112 px; low = blurry"),
    "brightness": ("Brightness", "mean grey level of the face crop (0-255)"),
    "colour": ("Colour vs grayscale", "faces whose image has no colour"),
    "flags": ("Flags", "share of faces carrying each flag (one face can carry several)"),
    "sources": ("Source folders", "share of faces per top-level source folder"),
}


@dataclass(frozen=True)
class FaceStats:
    """What the report needs to know about one face."""

    label: Optional[str]  # one of LABELS, or None (no label yet)
    size: float  # short side of the face box, px
    blur: float  # variance of the Laplacian (labeler.faces.detect.blur_variance)
    brightness: float  # mean grey level of the crop, 0..255
    grayscale: bool  # the image has no colour
    yaw: Optional[float] = None  # degrees, None without landmarks
    flags: tuple[str, ...] = ()
    source: str = ""  # top-level source folder


@dataclass
class Summary:
    """Counts over fixed bins; what the reference JSON holds (aggregate numbers only)."""

    name: str
    n_faces: int
    classes: dict[str, int]
    hist: dict[str, list[int]]  # per figure in BINS, counts per bin (len(edges) bins, last open)
    n_measured: dict[str, int]  # faces with a value per figure (yaw is missing without landmarks)
    grayscale: int
    flags: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Summary":
        return cls(**json.loads(text))


def _bin(value: float, edges: Sequence[float]) -> int:
    i = 0
    while i + 1 < len(edges) and value >= edges[i + 1]:
        i += 1
    return i


def summarise(items: Iterable[FaceStats], name: str = "this data set", note: str = "") -> Summary:
    hist = {k: [0] * len(e) for k, e in BINS.items()}
    measured = {k: 0 for k in BINS}
    classes: Counter[str] = Counter()
    flags: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    n = gray = 0
    for it in items:
        n += 1
        classes[it.label if it.label in LABELS else "unlabeled"] += 1
        for k in BINS:
            v = getattr(it, k)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            hist[k][_bin(float(v), BINS[k])] += 1
            measured[k] += 1
        gray += bool(it.grayscale)
        flags.update(set(it.flags))
        sources[it.source or "(top level)"] += 1
    cls = {c: classes.get(c, 0) for c in (*LABELS, "unlabeled") if c in LABELS or classes.get(c)}
    return Summary(name, n, cls, hist, measured, gray, dict(flags.most_common()),
                   dict(sources.most_common()), note)


def load_reference(path: Path = REFERENCE_FILE) -> Summary:
    return Summary.from_json(Path(path).read_text(encoding="utf-8"))


# ------------------------------------------------------------------ drawing
OURS, REF = "#2b6cb0", "#c05621"


def _bin_labels(edges: Sequence[float]) -> list[str]:
    def f(x: float) -> str:
        return f"{x:g}".replace("-", "\u2212")  # a real minus sign

    return [f"{f(a)} to {f(b)}" if a < 0 else f"{f(a)}\u2013{f(b)}" for a, b in zip(edges, edges[1:])] + \
        [f"{f(edges[-1])}+"]


def _shares(counts: Sequence[int], total: int) -> list[float]:
    return [c / total if total else 0.0 for c in counts]


def bar_chart(labels: Sequence[str], ours: Sequence[float], ref: Optional[Sequence[float]],
              width: int = 540, bar_h: int = 14) -> str:
    """Horizontal grouped bars (shares in [0, 1]): ours on top, the reference below in each row."""
    label_w, value_w = 130, 46
    plot_w = width - label_w - value_w
    row_h = bar_h * (2 if ref is not None else 1) + 8
    top = max([*ours, *(ref or [])], default=0.0) or 1.0
    h = row_h * len(labels) + 4
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" '
           f'font-family="sans-serif" font-size="11">']
    for i, lab in enumerate(labels):
        y = 2 + i * row_h
        out.append(f'<text x="{label_w - 6}" y="{y + row_h / 2 + 4 - 4:.0f}" text-anchor="end" fill="#222">'
                   f'{html.escape(str(lab))}</text>')
        series = [(ours[i], OURS)] + ([(ref[i], REF)] if ref is not None else [])
        for j, (v, colour) in enumerate(series):
            yy = y + j * bar_h
            w = plot_w * v / top
            out.append(f'<rect x="{label_w}" y="{yy}" width="{w:.1f}" height="{bar_h - 2}" fill="{colour}"/>')
            out.append(f'<text x="{label_w + w + 4:.1f}" y="{yy + bar_h - 4}" fill="#444">{100 * v:.1f}%</text>')
    out.append("</svg>")
    return "".join(out)


def _section(key: str, chart: str, extra: str = "") -> str:
    title, sub = TITLES[key]
    return (f'<section id="{key}"><h2>{html.escape(title)}</h2><p class="sub">{html.escape(sub)}</p>'
            f"{chart}{extra}</section>")


def _keyed(ours: dict[str, int], ref: Optional[dict[str, int]], n: int, n_ref: int,
           keys: Optional[Sequence[str]] = None) -> tuple[list[str], list[float], Optional[list[float]]]:
    keys = list(keys) if keys is not None else list(ours)
    a = _shares([ours.get(k, 0) for k in keys], n)
    b = _shares([ref.get(k, 0) for k in keys], n_ref) if ref is not None else None
    return keys, a, b


def _sections(s: Summary, r: Summary) -> list[str]:
    out = []
    keys = [c for c in (*LABELS, "unlabeled") if c in s.classes or c in r.classes]
    out.append(_section("classes", bar_chart(*_keyed(s.classes, r.classes, s.n_faces, r.n_faces, keys))))
    for k in BINS:
        m, mr = s.n_measured.get(k, 0), r.n_measured.get(k, 0)
        note = (f'<p class="n">measured on {m} of {s.n_faces} faces here, {mr} of {r.n_faces} in '
                f"{html.escape(r.name)}</p>")
        out.append(_section(k, bar_chart(_bin_labels(BINS[k]), _shares(s.hist[k], m),
                                         _shares(r.hist.get(k, []), mr) if mr else None), note))
    out.append(_section("colour", bar_chart(["colour", "grayscale"],
                                            _shares([s.n_faces - s.grayscale, s.grayscale], s.n_faces),
                                            _shares([r.n_faces - r.grayscale, r.grayscale], r.n_faces))))
    fkeys = list(dict.fromkeys([*s.flags, *r.flags]))
    if fkeys:
        chart = bar_chart(*_keyed(s.flags, r.flags, s.n_faces, r.n_faces, fkeys))
    else:
        chart = '<p class="empty">no face carries a flag</p>'
    unmeasured = [k for k in fkeys if k not in r.flags and k in ("text", "text_near_face", "nonphoto", "near_dup")]
    note = (f'<p class="n">not measured on {html.escape(r.name)}: {html.escape(", ".join(unmeasured))}</p>'
            if unmeasured else "")
    out.append(_section("flags", chart, note))
    srcs = list(s.sources)[:20]
    rest = "" if len(s.sources) <= 20 else f'<p class="n">and {len(s.sources) - 20} more folders</p>'
    out.append(_section("sources", bar_chart(*_keyed(s.sources, None, s.n_faces, 1, srcs)), rest))
    return out


CSS = """body{font-family:sans-serif;max-width:1180px;margin:24px auto;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px} .lead{color:#555;margin-top:0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:18px}
section{border:1px solid #ddd;border-radius:6px;padding:10px 14px}
h2{font-size:16px;margin:2px 0} .sub,.n,.empty{color:#666;font-size:12px;margin:2px 0 8px}
.key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-1px}"""


def build_report(items: Iterable[FaceStats] | Summary, reference: Optional[Summary] = None,
                 title: str = "Data report") -> str:
    """A standalone HTML page (inline CSS and SVG) comparing ``items`` with ``reference``
    (default: the shipped FER2013 train figures)."""
    s = items if isinstance(items, Summary) else summarise(items)
    r = reference if reference is not None else load_reference()
    key = (f'<p class="key"><span style="background:{OURS}"></span>{html.escape(s.name)} '
           f"({s.n_faces} faces)<span style=\"background:{REF}\"></span>{html.escape(r.name)} "
           f"({r.n_faces} faces)</p>")
    if r.note:
        key += f'<p class="n">{html.escape(r.name)}: {html.escape(r.note)}</p>'
    body = "".join(_sections(s, r))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f'<p class="lead">How this data set differs from the benchmark, figure by figure. '
            f"Bars are shares of faces.</p>{key}<div class=\"grid\">{body}</div></body></html>")
