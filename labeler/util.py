"""Small helpers with no dependencies."""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


def batched(it: Iterable[T], n: int) -> Iterator[list[T]]:
    """Lists of up to ``n`` items from ``it`` (itertools.batched is Python 3.12+)."""
    buf: list[T] = []
    for x in it:
        buf.append(x)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf


def progress(items, enabled: Optional[bool], desc: str, unit: str = "file"):
    """``items`` wrapped in a tqdm bar when enabled (None: when stderr is a terminal) and tqdm is installed."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit=unit, dynamic_ncols=True)
