"""Near-duplicate images and face crops: 64-bit perceptual hashes and grouping by Hamming distance.

- :func:`phash`: the DCT hash. Gray image, area-resized to 32x32, 2-D DCT, the 8x8 lowest frequencies
  (DC included, as in the common pHash), one bit per coefficient: above the median of the 64 or not.
  Survives resizing, JPEG re-encoding, mild colour and contrast changes; not crops or flips.
- :func:`dhash`: the gradient hash (9x8 gray, one bit per "left pixel brighter than right"), a
  second opinion that is cheap to store beside the pHash.
- :func:`group_ids`: union-find over all pairs within ``max_distance`` bits. Pairs are found exactly
  through the pigeonhole principle (two hashes within d bits agree on at least one of d+1 disjoint
  bit bands), so a large collection does not need n^2 comparisons.

Hashes are Python ints in [0, 2**64); :func:`to_signed` gives the int64 a database column holds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Optional, Sequence

import cv2
import numpy as np

from labeler.types import Box

#: default grouping distance for :func:`phash` (bits of 64), measured on dev: resized + re-encoded
#: copies were 0-2 bits apart; the closest different photo was 8 (same person and shoot, another
#: expression), then 12 (scripts/eval/eval_cleaning.py)
MAX_DISTANCE = 6

_BITS = (1 << np.arange(64, dtype=np.uint64)[::-1]).astype(np.uint64)


def _gray(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        return rgb
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)


def _pack(bits: np.ndarray) -> int:
    return int(np.bitwise_or.reduce(np.where(bits.ravel(), _BITS, np.uint64(0))))


def phash(rgb: np.ndarray) -> int:
    """64-bit DCT perceptual hash of an RGB (or gray) uint8 image."""
    g = cv2.resize(_gray(rgb), (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(g)[:8, :8]
    return _pack(low > np.median(low))


def dhash(rgb: np.ndarray) -> int:
    """64-bit difference hash: 9x8 gray, bit = left pixel brighter than its right neighbour."""
    g = cv2.resize(_gray(rgb), (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    return _pack(g[:, :-1] > g[:, 1:])


def crop(rgb: np.ndarray, box: Box) -> np.ndarray:
    """The pixels of ``box`` (clipped to the image; at least one pixel)."""
    h, w = rgb.shape[:2]
    x1, y1 = int(max(0, min(w - 1, np.floor(box[0])))), int(max(0, min(h - 1, np.floor(box[1]))))
    x2, y2 = int(max(x1 + 1, min(w, np.ceil(box[2])))), int(max(y1 + 1, min(h, np.ceil(box[3]))))
    return rgb[y1:y2, x1:x2]


def face_phash(rgb: np.ndarray, box: Box) -> int:
    """pHash of one face crop (the detector box, no margin)."""
    return phash(crop(rgb, box))


def hamming(a: int, b: int) -> int:
    return int(a ^ b).bit_count()


def to_signed(h: int) -> int:
    """The same 64 bits as a signed int64 (for a BIGINT column)."""
    return h - (1 << 64) if h >= 1 << 63 else h


def from_signed(h: int) -> int:
    return h + (1 << 64) if h < 0 else h


def close_pairs(hashes: Sequence[int], max_distance: int = MAX_DISTANCE) -> list[tuple[int, int, int]]:
    """All index pairs (i, j, distance), i < j, whose hashes differ in at most ``max_distance`` bits."""
    d = int(max_distance)
    bands = d + 1
    edges = np.linspace(0, 64, bands + 1).astype(int)
    found: dict[tuple[int, int], int] = {}
    for b in range(bands):
        lo, hi = int(edges[b]), int(edges[b + 1])
        mask = ((1 << (hi - lo)) - 1) << (64 - hi)
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, h in enumerate(hashes):
            buckets[int(h) & mask].append(i)
        for members in buckets.values():
            for a in range(len(members)):
                for c in range(a + 1, len(members)):
                    i, j = members[a], members[c]
                    if (i, j) not in found:
                        dist = hamming(hashes[i], hashes[j])
                        found[(i, j)] = dist
    return sorted((i, j, dist) for (i, j), dist in found.items() if dist <= d)


def group_ids(hashes: Sequence[int], max_distance: int = MAX_DISTANCE,
              same: Optional[Sequence[object]] = None) -> list[int]:
    """Near-duplicate group of every item: the smallest index of its group (its own index when it
    has no near copy). ``same`` (e.g. content sha256 per item) also joins items with equal keys."""
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    for i, j, _ in close_pairs(hashes, max_distance):
        union(i, j)
    if same is not None:
        first: dict[object, int] = {}
        for i, key in enumerate(same):
            union(i, first.setdefault(key, i))
    return [find(i) for i in range(len(hashes))]


def groups(hashes: Sequence[int], max_distance: int = MAX_DISTANCE,
           same: Optional[Sequence[object]] = None) -> list[list[int]]:
    """The groups with two or more members, as sorted index lists (largest group first)."""
    by: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(group_ids(hashes, max_distance, same)):
        by[g].append(i)
    return sorted((m for m in by.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))
