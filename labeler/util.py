"""Small helpers with no dependencies."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

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
