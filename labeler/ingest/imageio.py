"""Robust image decoding: type by content, EXIF orientation, clear reasons for failures."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

#: Largest image we decode (pixels); larger ones are recorded as decompression bombs.
MAX_PIXELS = 90_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
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
    rgb: np.ndarray  # H x W x 3 uint8, EXIF orientation applied
    format: str  # by content: JPEG, PNG, ...
    width: int
    height: int
    exif_rotated: bool = False


def decode(data: bytes) -> Decoded:
    """Decode image bytes, whatever the file's extension says."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
            fmt = im.format or "unknown"
            w, h = im.size
            if w * h > MAX_PIXELS // 2:
                raise DecodeError(f"decompression bomb: {w}x{h} pixels exceeds the limit of {MAX_PIXELS // 2:,}")
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            im.load()
        except DecodeError:
            raise
        except UnidentifiedImageError:
            raise DecodeError("not an image (unknown format)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise DecodeError(f"decompression bomb: {e}") from None
        except OSError as e:
            msg = str(e)
            if "truncated" in msg:
                raise DecodeError(f"truncated {fmt if 'fmt' in locals() else 'image'} file ({msg})") from None
            raise DecodeError(f"cannot decode: {msg}") from None
        except (ValueError, SyntaxError, EOFError, MemoryError) as e:
            raise DecodeError(f"cannot decode: {type(e).__name__}: {e}") from None
    rotated = False
    try:
        orientation = im.getexif().get(0x0112, 1)
        if orientation and orientation != 1:
            im = ImageOps.exif_transpose(im)
            rotated = True
    except Exception:  # a broken EXIF block must not lose the image
        pass
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        arr = (255 * (arr - arr.min()) / max(1.0, float(arr.max() - arr.min()))).astype(np.uint8)
        im = Image.fromarray(arr, "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    rgb = to_rgb_array(im)
    del im
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise DecodeError("image has no pixels")
    return Decoded(rgb=rgb, format=fmt, width=rgb.shape[1], height=rgb.shape[0], exif_rotated=rotated)


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
