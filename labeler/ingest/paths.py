"""File names as the database stores them, as the file system knows them, and as a line of text.

The database holds UTF-8 text only, so a name with bytes that are not UTF-8 (Python keeps them as
surrogates, ``os.fsdecode``) is stored with ``\\xNN`` escapes (:func:`db_path`); :func:`fs_path`
turns such a stored path back into the name on disk, and :func:`shown` writes any path on one line.
"""

from __future__ import annotations

import os
import re
import unicodedata

#: ``\xNN`` of a byte >= 0x80: what ``backslashreplace`` writes for a byte that is not UTF-8
_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


def db_path(path: str) -> str:
    """A path as stored and shown: a name that is not UTF-8 (undecodable bytes, kept by Python as
    surrogates) gets ``\\xNN`` escapes instead, since the database holds UTF-8 text only."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def fs_path(stored: str) -> str:
    """The name on disk of a path as :func:`db_path` stored it: its ``\\xNN`` escapes (bytes >= 0x80)
    back to those bytes. A path that exists as written, or has no such escape, is returned as is.
    Guaranteed: ``fs_path(db_path(p)) == p`` for every name ``p`` (any bytes) that does not itself
    hold a backslash followed by ``x`` and a byte >= 0x80 in hex (tests/test_ingest.py draws them)."""
    if "\\x" not in stored or os.path.lexists(stored):
        return stored
    return _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), stored)


def shown(path: str, n: int = 0) -> str:
    """A path on one line of text: not-UTF-8 bytes as :func:`db_path` writes them, control
    characters (a newline in a file name) and line separators as escapes (``\\n``, ``\\x07``,
    ``\\u2028``); with ``n``, longer ones are cut in the middle to ``n`` characters."""
    p = db_path(path)
    if not p.isprintable():
        p = "".join(repr(c)[1:-1] if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in p)
    return p if not n or len(p) <= n else p[: n // 2] + "..." + p[-n // 2 :]
