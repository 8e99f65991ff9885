"""Robust image decoding: type by content, EXIF orientation, clear reasons for failures."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

#: The one cap on an image's size (width x height as its header says, in pixels): a larger one is a
#: decompression bomb, recorded as broken and never decoded. Cameras and phones make 48-200 MP
#: photos; 500 MP is beyond them. Pillow's own guard is set from it (it warns above it, which
#: :func:`decode` turns into the same refusal, and refuses twice it outright).
MAX_PIXELS = 500_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
#: A photo with more pixels than this is decoded at a reduced size, 1/2, 1/4 or 1/8 a side (a JPEG
#: while it is decoded, Pillow's draft mode: memory stays that of the reduced image; other formats
#: are decoded whole, then reduced). Detection sees at most 1600 px a side anyway (faces.detect)
#: and a stored crop is 112 px; boxes are mapped back to the full size (:attr:`Decoded.scale`).
WORK_PIXELS = 24_000_000
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: extensions looked at during a folder walk even if the content is not an image (then: broken)
IMAGE_EXTS = {
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp",
    ".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".heic", ".heif", ".avif", ".jp2", ".tga",
}

_MAGIC = (
    b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
    b"RIFF", b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"\x00\x00\x01\x00",
)


def looks_like_image(head: bytes) -> bool:
    """True when the first bytes carry a known image signature."""
    return any(head.startswith(m) for m in _MAGIC) or head[4:12] in (b"ftypavif", b"ftypheic", b"ftypmif1")


class DecodeError(ValueError):
    """The bytes could not be turned into an image; ``reason`` is short and human readable."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Decoded:
    rgb: np.ndarray  # H x W x 3 uint8, EXIF orientation applied; reduced when the photo is large
    format: str  # by content: JPEG, PNG, ...
    width: int  # the full size of the photo (EXIF orientation applied), not of ``rgb`` when reduced
    height: int
    exif_rotated: bool = False
    #: full-size pixels per pixel of ``rgb`` (1.0, or about 2, 4, 8 for a reduced large photo)
    scale: float = 1.0


#: EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose does)
_ORIENT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def bomb_reason(pixels: Optional[int] = None) -> str:
    """Why an image is refused as a decompression bomb (the one limit: :data:`MAX_PIXELS`)."""
    size = f"{pixels:,} pixels, " if pixels else ""
    return f"decompression bomb: {size}over the limit of {MAX_PIXELS:,} pixels"


def reduction(width: int, height: int, max_pixels: int = WORK_PIXELS, steps: tuple[int, ...] = (1, 2, 4, 8)) -> int:
    """The smallest of ``steps`` (a JPEG can be decoded at 1/2, 1/4, 1/8 a side) that brings the
    image to at most ``max_pixels``; the largest step when none does."""
    for k in steps:
        if -(-width // k) * -(-height // k) <= max_pixels:
            return k
    return steps[-1]


def decode(data: bytes, max_pixels: int = WORK_PIXELS) -> Decoded:
    """Decode image bytes, whatever the file's extension says; a photo of more than ``max_pixels``
    is reduced (see :data:`WORK_PIXELS`), one of more than :data:`MAX_PIXELS` refused."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
            fmt = im.format or "unknown"
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise DecodeError(bomb_reason(w * h))
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            k = reduction(w, h, max_pixels)
            if k > 1 and fmt == "JPEG":
                im.draft(im.mode, (max(1, w // k), max(1, h // k)))  # libjpeg decodes at 1/k a side
            im.load()
        except DecodeError:
            raise
        except UnidentifiedImageError:
            raise DecodeError("not an image (unknown format)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            m = re.search(r"\((\d+) pixels\)", str(e))
            raise DecodeError(bomb_reason(int(m.group(1)) if m else None)) from None
        except OSError as e:
            msg = str(e)
            if "truncated" in msg:
                raise DecodeError(f"truncated {fmt if 'fmt' in locals() else 'image'} file ({msg})") from None
            raise DecodeError(f"cannot decode: {msg}") from None
        except (ValueError, SyntaxError, EOFError, MemoryError) as e:
            raise DecodeError(f"cannot decode: {type(e).__name__}: {e}") from None
    try:
        orientation = im.getexif().get(0x0112, 1) or 1
    except Exception:  # a broken EXIF block must not lose the image
        orientation = 1
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        arr = (255 * (arr - arr.min()) / max(1.0, float(arr.max() - arr.min()))).astype(np.uint8)
        im = Image.fromarray(arr, "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    k = reduction(*im.size, max_pixels, steps=tuple(range(1, 65)))
    if k > 1:  # not a JPEG (or one draft mode could not reduce): reduced after decoding
        im = (im if im.mode not in ("1", "P") else im.convert("RGB")).reduce(k)
    rotated = orientation in _ORIENT
    if rotated:
        im = im.transpose(_ORIENT[orientation])
    rgb = to_rgb_array(im)
    del im
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise DecodeError("image has no pixels")
    full_w, full_h = (h, w) if rotated and orientation in (5, 6, 7, 8) else (w, h)
    return Decoded(rgb=rgb, format=fmt, width=full_w, height=full_h, exif_rotated=rotated, scale=full_w / rgb.shape[1])


#: rows of at most this many bytes are converted at a time (see :func:`to_rgb_array`)
STRIP_BYTES = 8 << 20


def to_rgb_array(im: Image.Image) -> np.ndarray:
    """H x W x 3 uint8 RGB array of a loaded image, filled in strips of rows: peak memory is the
    image plus the array plus one strip, not three copies (``np.asarray(im.convert("RGB"))``
    converts, then copies to bytes, then wraps them: 4.4 x the image for a 44 MP JPEG)."""
    w, h = im.size
    out = np.empty((h, w, 3), dtype=np.uint8)
    step = max(1, STRIP_BYTES // max(1, 3 * w))
    for y in range(0, h, step):
        strip = im.crop((0, y, w, min(h, y + step)))
        out[y : y + step] = np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB"))
    return out


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_crop(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
