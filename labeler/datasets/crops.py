"""Face crops for the image formats: read from the database in small batches, re-encoded only when
the stored crop is not already what the format wants."""

from __future__ import annotations

import io
from collections import Counter
from typing import Iterable, Iterator, Optional

from labeler.store import Store, face_crops
from labeler.util import batched

BATCH = 128  # faces whose crops are in memory at once


def crop_image(data: bytes, size: int, gray: bool = False):
    """The crop as a PIL image of ``size`` x ``size``, RGB (or 8-bit grayscale)."""
    from PIL import Image as PILImage

    im = PILImage.open(io.BytesIO(data))
    im = im.convert("L" if gray else "RGB")
    if im.size != (size, size):
        im = im.resize((size, size), PILImage.LANCZOS)
    return im


def crop_jpeg(data: bytes, size: int) -> bytes:
    """The stored crop as JPEG bytes of ``size`` x ``size`` (as stored when nothing changes)."""
    if data[:3] == b"\xff\xd8\xff":
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(data)) as im:
            if im.size == (size, size) and im.mode == "RGB":
                return data
    buf = io.BytesIO()
    crop_image(data, size).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def fer_pixels(data: bytes) -> str:
    """FER2013's ``pixels`` cell: 48x48 grayscale values, row-major, space-separated."""
    im = crop_image(data, 48, gray=True)
    return " ".join(str(v) for v in im.tobytes())


def with_crops(store: Store, items: Iterable[tuple], skipped: Counter) -> Iterator[tuple]:
    """``(record, *rest)`` items -> ``(record, *rest, crop bytes)``, crops fetched per batch; a face
    without a stored crop is counted in ``skipped["no_crop"]`` and left out."""
    for batch in batched(items, BATCH):
        crops: dict[int, Optional[bytes]] = face_crops(store, [item[0].face_id for item in batch])
        for item in batch:
            data = crops.get(item[0].face_id)
            if not data:
                skipped["no_crop"] += 1
                continue
            yield (*item, data)
