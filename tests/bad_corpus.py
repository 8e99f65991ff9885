"""A corpus of bad input for ingest/autolabel, generated (nothing is committed but this script).

    python -m tests.bad_corpus OUT_DIR      # writes the corpus and prints what it made

Every entry is listed in the returned :class:`Corpus` with what ingest should do with it:
``ok`` (stored, decodable), ``broken`` (stored as broken, with a reason) or ``reported`` (not
stored: listed in the run's report, itself or a folder above it). Files are tiny (the whole corpus
is well under 1 MB), so a test can autolabel it in seconds.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Corpus:
    root: Path
    expect: dict[str, str] = field(default_factory=dict)  # path (as os.walk would give it) -> ok|broken|reported
    skipped: dict[str, str] = field(default_factory=dict)  # what could not be made here -> why

    def add(self, path, what: str) -> str:
        self.expect[str(path)] = what
        return str(path)

    def count(self, what: str) -> int:
        return sum(1 for v in self.expect.values() if v == what)


def _png(im: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, format="PNG", **kw)
    return b.getvalue()


def _jpeg(im: Image.Image) -> bytes:
    b = io.BytesIO()
    im.save(b, format="JPEG", quality=90)
    return b.getvalue()


def _face_like(size: int = 96, seed: int = 0) -> Image.Image:
    """A smooth synthetic picture (no real face: nothing third-party is copied)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([200 * x + 30, 160 * y + 40, 120 * (1 - x) + 60], -1) + rng.normal(0, 4, (size, size, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` (a decompression bomb), with a tiny body."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")


def _deep_folder(base: Path, length: int, file_name: str = "lost_happy.png", step: int = 200) -> tuple[str, str]:
    """Folders under ``base`` until the path is over ``length`` characters (made relative to an open
    folder, since the whole path may be too long for the system), with one image file in the last;
    returns (folder path, file path)."""
    fd = os.open(base, os.O_RDONLY)
    path = str(base)
    try:
        while len(path) <= length:
            name = ("deep_" + "d" * 250)[: max(1, min(step, length - len(path)))]
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, path = nfd, path + "/" + name
        ffd = os.open(file_name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(ffd, _png(_face_like(32, 9)))
        os.close(ffd)
    finally:
        os.close(fd)
    return path, path + "/" + file_name


def make_corpus(root: str | Path) -> Corpus:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    c = Corpus(root)

    def put(name: str, data: bytes, what: str) -> None:
        (root / name).write_bytes(data)
        c.add(root / name, what)

    good = _png(_face_like(96, 1))
    jpg = _jpeg(_face_like(96, 2))
    put("good_happy.png", good, "ok")
    put("empty.jpg", b"", "broken")
    put("zero_byte.png", b"", "broken")  # same (empty) content as empty.jpg: one broken image, two paths
    put("truncated.jpg", jpg[: len(jpg) // 2], "broken")
    put("truncated.png", good[: len(good) // 2], "broken")
    put("png_named_as.jpg", _png(_face_like(64, 3)), "ok")  # wrong extension: decided by content
    put("text_named.jpg", b"this is a text file, not a picture\n" * 3, "broken")
    put("bomb.png", bomb_png(), "broken")  # decompression bomb: refused from its header
    put("one_pixel.png", _png(Image.new("RGB", (1, 1), (128, 64, 32))), "ok")
    put("cmyk.jpg", _jpeg(_face_like(64, 4).convert("CMYK")), "ok")
    put("gray16.png", _png(Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))), "ok")
    put("palette.png", _png(_face_like(64, 5).convert("P", palette=Image.ADAPTIVE), transparency=0), "ok")
    put("alpha.png", _png(_face_like(64, 6).convert("RGBA")), "ok")
    frames = [_face_like(48, s).convert("P", palette=Image.ADAPTIVE) for s in (7, 8)]
    b = io.BytesIO()
    frames[0].save(b, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    put("animated.gif", b.getvalue(), "ok")
    put("dup_a.png", _png(_face_like(80, 10)), "ok")
    put("dup_b_same_bytes.png", _png(_face_like(80, 10)), "ok")
    put("notes.txt", b"not an image, not named like one\n", "reported")
    put(".hidden_happy.png", good, "reported")
    put("x" * 240 + "_happy.png", _png(_face_like(40, 11)), "ok")  # a long name (the limit is 255 bytes)
    raw = os.fsencode(root) + b"/caf\xe9_surprise_\xff.png"  # not UTF-8
    with open(raw, "wb") as fh:
        fh.write(_png(_face_like(40, 12)))
    c.add(os.fsdecode(raw), "ok")
    os.symlink("loop.jpg", root / "loop.jpg")
    c.add(root / "loop.jpg", "broken")
    os.symlink("no_such_file.jpg", root / "dangling.jpg")
    c.add(root / "dangling.jpg", "broken")
    os.symlink("good_happy.png", root / "link_to_good.png")
    c.add(root / "link_to_good.png", "ok")
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "parent_link")  # a link to a folder (a loop if followed)
    c.add(root / "sub" / "parent_link", "reported")
    put("sub/nested_sad.jpg", _jpeg(_face_like(72, 13)), "ok")
    os.mkfifo(root / "fifo.jpg")
    c.add(root / "fifo.jpg", "broken")
    os.mkfifo(root / "fifo_plain")
    c.add(root / "fifo_plain", "reported")
    deep, _ = _deep_folder(root / "sub", 4200)  # a folder path over 4,096 characters: cannot be listed
    c.add(deep, "reported")
    (root / "long").mkdir()
    _folder, long_file = _deep_folder(root / "long", 3950, "h" * 200 + "_happy.png")  # listable, its file is not
    c.add(long_file, "broken")
    if os.geteuid() == 0:
        c.skipped["unreadable folder"] = "running as root, which reads any folder: a permission error cannot be made"
    else:
        (root / "locked").mkdir()
        (root / "locked" / "inside_happy.png").write_bytes(good)
        os.chmod(root / "locked", 0)
        c.add(root / "locked", "reported")
        (root / "unreadable.png").write_bytes(good)
        os.chmod(root / "unreadable.png", 0)
        c.add(root / "unreadable.png", "broken")
    return c


def unlock(c: Corpus) -> None:
    """Give back the permissions taken (so that the folder can be deleted)."""
    for p in (c.root / "locked", c.root / "unreadable.png"):
        if p.exists():
            os.chmod(p, 0o755)


if __name__ == "__main__":
    corpus = make_corpus(sys.argv[1] if len(sys.argv) > 1 else "bad_corpus")
    for path, what in sorted(corpus.expect.items()):
        print(f"{what:9s} {path[:100]!r}{'...' if len(path) > 100 else ''}")
    for what, why in corpus.skipped.items():
        print(f"skipped   {what}: {why}")
    print(f"{len(corpus.expect)} entries: {corpus.count('ok')} ok, {corpus.count('broken')} broken, "
          f"{corpus.count('reported')} reported")
