"""How much an image looks like something other than a photo: cartoon, emoji, drawing, figure grid.

A score in [0, 1] from six cheap statistics of the image (numpy + cv2, no model), combined by a
logistic regression whose 7 numbers are below:

- ``flat``: share of non-white pixels in perfectly flat 5x5 neighbourhoods (max - min <= 2 grey
  levels) at 256 px; drawn fills and vector art are flat, photographs carry noise and texture;
- ``colours``: how few colours (5 bits per channel) cover 90% of the pixels, as a 0..1 ramp from
  2000 colours down to 60: cartoons and emoji use a palette;
- ``grid``: interior blank rows/columns that split the image into panels (figure grids);
- ``white``: share of near-white or near-black pixels at 512 px (figures, clip-art backgrounds);
- ``zero``: share of the other pixels whose second derivative is below 1 grey level (smooth
  renders and fills);
- ``noise``: log(1 + mean |Laplacian kernel|) over the 60% least-edgy pixels.

The weights were fitted on the 128 dev web_keyword images marked by eye (scripts/eval/eval_cleaning.py;
5-fold cross-validated AUC 0.84); treat the value as a ranking to sort by, and the flag at
:data:`THRESHOLD` as a hint for review, not a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SIZE = 256
#: images at or above this score are flagged "nonphoto" (precision/recall on dev in the report)
THRESHOLD = 0.5
FEATURES = ("flat", "colours", "grid", "white", "zero", "noise")
#: standardisation (mean, sd) and logistic weights per feature, then the intercept
MEAN = (0.2797, 0.6583, 0.1458, 0.2499, 0.25, 1.3961)
SD = (0.3588, 0.29, 0.3026, 0.2487, 0.1984, 0.9735)
WEIGHTS = (0.099, 0.568, 0.596, 0.887, 1.291, 0.741)
INTERCEPT = -0.795
_LAPLACE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


@dataclass(frozen=True)
class NonPhotoScore:
    score: float  # logistic combination of the parts, in [0, 1]
    flat: float
    colours: float
    grid: float
    white: float
    zero: float
    noise: float

    @property
    def is_nonphoto(self) -> bool:
        return self.score >= THRESHOLD


def _resize(rgb: np.ndarray, size: int = SIZE) -> np.ndarray:
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    h, w = rgb.shape[:2]
    r = size / max(h, w)
    if r < 1:
        rgb = cv2.resize(rgb, (max(1, round(w * r)), max(1, round(h * r))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb[..., :3])


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(min(1.0, max(0.0, (x - lo) / (hi - lo))))


def _grid_lines(gray: np.ndarray) -> int:
    """Interior uniform rows and columns (std < 2 along the whole line) that separate content:
    counted as runs, so a gutter several pixels wide is one line."""
    h, w = gray.shape
    n = 0
    for prof, length in ((gray.std(axis=1), h), (gray.std(axis=0), w)):
        blank = prof < 2.0
        lo, hi = int(length * 0.08), int(length * 0.92)
        content = ~blank
        if content.sum() < length * 0.3:
            continue
        inner = blank[lo:hi]
        # a run of blank lines with content on both sides
        edges = np.flatnonzero(np.diff(inner.astype(np.int8)) == 1)
        for e in edges:
            pos = lo + e + 1
            if content[:pos].any() and content[pos:].any():
                n += 1
    return n


def _smoothness(rgb: np.ndarray) -> tuple[float, float, float]:
    """(white, zero, noise) at 512 px; see the module text."""
    g = cv2.cvtColor(_resize(rgb, 512), cv2.COLOR_RGB2GRAY).astype(np.float32)
    hp = np.abs(cv2.filter2D(g, -1, _LAPLACE))
    mag = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    bw = (g >= 245) | (g <= 10)
    sel = (mag < np.percentile(mag, 60)) & ~bw
    noise = float(np.mean(hp[sel])) if sel.sum() > 100 else 0.0
    zero = float((hp[~bw] < 1).mean()) if (~bw).sum() > 100 else 1.0
    return float(bw.mean()), zero, float(np.log1p(noise))


def nonphoto_score(rgb: np.ndarray) -> NonPhotoScore:
    """Score an RGB (or gray) uint8 image; see the module text for the parts."""
    small = _resize(rgb)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    k = np.ones((5, 5), np.uint8)
    rng = cv2.dilate(gray, k).astype(np.int16) - cv2.erode(gray, k).astype(np.int16)
    fg = gray < 245
    flat = float(((rng <= 2) & fg).sum()) / max(1, int(fg.sum()))
    q = (small >> 3).astype(np.int32)
    codes = (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]
    counts = np.sort(np.bincount(codes.ravel(), minlength=1 << 15))[::-1]
    cover = int(np.searchsorted(np.cumsum(counts), 0.9 * codes.size)) + 1
    colours = _ramp(-np.log2(cover), -np.log2(2000), -np.log2(60))
    grid = _ramp(_grid_lines(gray.astype(np.float32)), 0, 3)
    values = (flat, colours, grid, *_smoothness(rgb))
    z = INTERCEPT + sum(w * (v - m) / sd for w, v, m, sd in zip(WEIGHTS, values, MEAN, SD))
    score = 1.0 / (1.0 + np.exp(-z))
    return NonPhotoScore(round(float(score), 4), *(round(float(v), 4) for v in values))
