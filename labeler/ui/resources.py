"""What the pages share and Streamlit caches: the store handle, the source folders, boxed photos.

The database URL comes from ``--db URL`` after the ``--`` of `streamlit run`, else LABELER_DB, else
the default (``labeler.store.resolve_url``).
"""

from __future__ import annotations

import argparse
import os
import functools
import io
import sys
from typing import Optional

import streamlit as st
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont, ImageOps

from labeler import store as S
from labeler.ingest.imageio import MAX_PIXELS  # noqa: F401 - importing it sets Pillow's bomb guard to the one cap
from labeler.ingest.paths import fs_path

#: one box to draw: (face_id, x1, y1, x2, y2, caption) in EXIF-oriented pixels
BoxSpec = tuple[int, float, float, float, float, str]


def db_url() -> str:
    """``--db URL`` after the ``--`` of `streamlit run`, else LABELER_DB, else the default."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--db", default=None)
    args, _ = p.parse_known_args(sys.argv[1:])
    return S.resolve_url(args.db)


@st.cache_resource(show_spinner=False)
def get_store(url: str) -> S.Store:
    return S.Store(url)


def store() -> S.Store:
    """The store of this app's database (one per process)."""
    return get_store(db_url())


@st.cache_resource(show_spinner=False)
def _policy(path: str):
    from labeler.config import load_config

    return load_config(path or None).routing


def policy():
    """The project's routing policy: ``[routing]`` of the TOML `labeler ui --config` names
    (``LABELER_CONFIG``), else the defaults; what audits, the selection and the flow follow."""
    return _policy(os.environ.get("LABELER_CONFIG", ""))


@st.cache_data(ttl=60, show_spinner=False)
def folders(url: str) -> list[tuple[str, int]]:
    """(source folder, faces) pairs for the review filter."""
    return S.source_folders(get_store(url))


@st.cache_data(ttl=60, show_spinner="scoring the labels...")
def label_issues(url: str):
    """face -> its label issue (``labeler.quality.FaceIssue``: score, flagged, the class the model
    prefers); None without the quality extra. Cleared when a page appends labels (:func:`labels_changed`)."""
    from labeler.quality import missing

    if missing():
        return None
    return S.issue_map(get_store(url))


def issue_scores(url: str) -> Optional[dict[int, tuple[float, str]]]:
    """face -> (label-issue score, the class the model prefers); None without the quality extra."""
    got = label_issues(url)
    return None if got is None else {f: (x.score, x.suggested) for f, x in got.items()}


@st.cache_data(ttl=60, show_spinner="measuring agreement...")
def label_quality(url: str):
    """The project's agreement and consensus (``labeler.quality.Assessment`` without the label
    issues); None without the quality extra."""
    from labeler.quality import missing
    from labeler.quality.assessment import assess

    if missing():
        return None
    return assess(S.quality_inputs(get_store(url)), issues=False)


def labels_changed() -> None:
    """Labels were appended: the cached scores and agreement are stale."""
    label_issues.clear()
    label_quality.clear()


def _oriented_size(im: PILImage.Image) -> tuple[int, int]:
    w, h = im.size
    try:
        o = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - broken EXIF: treat as unrotated
        o = 1
    return (h, w) if o in (5, 6, 7, 8) else (w, h)


def _open_oriented(path: str, max_side: int) -> Optional[tuple[PILImage.Image, int]]:
    """The photo, EXIF-rotated, RGB, at most ``max_side`` pixels a side, and its full oriented
    width; None when the file cannot be read."""
    try:
        im = PILImage.open(fs_path(path))
        full_w, _full_h = _oriented_size(im)
        if im.format == "JPEG":
            im.draft("RGB", (max_side, max_side))  # decode at a reduced scale: fast for big photos
        im = ImageOps.exif_transpose(im).convert("RGB")
    except (OSError, ValueError, SyntaxError, PILImage.DecompressionBombError):
        return None
    im.thumbnail((max_side, max_side))
    return im, full_w


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


#: box colours: the current face, the highlighted ones, the others (and all, when none is highlighted)
CURRENT, HIGHLIGHT, OTHER, PLAIN = (255, 200, 0), (255, 40, 40), (200, 200, 200), (40, 220, 255)


def _draw_boxes(im: PILImage.Image, scale: float, boxes: tuple[BoxSpec, ...], highlight, current=None) -> None:
    """Draw ``boxes``: the ``current`` face thickest, in yellow; the ``highlight`` ones in red with
    their captions; the others thin, grey and without a caption (a crowd's numbers would overlap);
    with no highlight, every box in cyan with its caption. A caption with no room above its box is
    drawn inside it, so that the top row's numbers are not cut off."""
    draw = ImageDraw.Draw(im)
    lw = max(2, im.width // 150)
    hl = set(highlight) if isinstance(highlight, tuple) else ({highlight} if highlight is not None else None)
    if current is not None and hl is not None:
        hl.add(current)
    shown = [b for b in boxes if hl is None or b[0] in hl]
    fs = max(11, min(im.width // 40, int(min((b[4] - b[2] for b in shown), default=40) * scale * 0.8) or 11))
    font = _font(fs)
    for fid, x1, y1, x2, y2, cap in sorted(boxes, key=lambda b: (b[0] == current, hl is None or b[0] in hl)):
        on = hl is None or fid in hl
        color = CURRENT if fid == current else ((HIGHLIGHT if hl is not None else PLAIN) if on else OTHER)
        r = [x1 * scale, y1 * scale, x2 * scale, y2 * scale]
        draw.rectangle(r, outline=color, width=(2 * lw if fid == current else lw) if on else max(1, lw // 2))
        if cap and on:
            tw = draw.textlength(cap, font=font)
            ty = r[1] - fs - 4 if r[1] - fs - 4 >= 0 else r[1] + lw  # above the box, else inside it
            draw.rectangle([r[0], ty, r[0] + tw + 6, ty + fs + 4], fill=color)
            draw.text((r[0] + 3, ty + 1), cap, fill=(0, 0, 0), font=font)


@functools.lru_cache(maxsize=256)
def boxed_image(paths: tuple[str, ...], boxes: tuple[BoxSpec, ...], highlight,
                max_side: int, current: Optional[int] = None) -> Optional[bytes]:
    """The image file (first readable path) downscaled to ``max_side`` with face boxes drawn
    (``highlight``: the face, or a tuple of faces, drawn in red with captions, the others grey without;
    None: all alike; ``current``: the face under the cursor, in yellow; captions sized to the smallest
    box drawn with one). JPEG bytes. A plain LRU cache, not ``st.cache_data``: the card prefetcher
    calls it from a worker thread."""
    for p in paths:
        got = _open_oriented(p, max_side)
        if got is None:
            continue
        im, full_w = got
        _draw_boxes(im, im.width / max(full_w, 1), boxes, highlight, current)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85)
        return buf.getvalue()
    return None
