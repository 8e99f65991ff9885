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


def source_path(path: str) -> str:
    """``path`` when it exists (the folder or file to ingest); else a one-line LabelerError, raised
    before any database is opened or created."""
    import os

    from labeler.errors import LabelerError

    if not os.path.exists(path):
        raise LabelerError(f"{path}: no such file or folder; expected a folder of images (or one image/video) to ingest.")
    return path


def input_file(path: Optional[str], what: str) -> Optional[str]:
    """``path`` (None passes) when it is an existing regular file; a missing file, a folder, a FIFO or
    a device (``/dev/zero`` would never end a read) is a one-line LabelerError."""
    import os
    import stat

    from labeler.errors import LabelerError

    if path is None:
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise LabelerError(f"{what} {path}: {e.strerror.lower()}; expected an existing file.") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO, device or special file"
        raise LabelerError(f"{what} {path}: expected a regular file, found {kind}.")
    return path
