"""Build sample_data/ from public-domain / CC0 images that ship inside the scikit-image wheel.

Sources (all inside ``skimage/data`` of the scikit-image wheel):
- ``astronaut.png``: Eileen Collins, NASA portrait (public domain).
- ``coffee.png``: a cup of coffee, by Rachel Michetti (CC0).
- ``chelsea.png``: Chelsea the cat, by Stefan van der Walt (CC0).

Everything else (multi-face composite, crops, broken files, wrong extensions, EXIF rotation) is
made here from those. Run: ``python scripts/make/make_sample_data.py [--wheel-dir DIR]``; it downloads
the wheel with ``pip download --no-deps scikit-image==0.26.0`` when no wheel is given.
"""

from __future__ import annotations

import argparse
import glob
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "sample_data"


def load_from_wheel(wheel_dir: Path | None) -> dict[str, Image.Image]:
    tmp = Path(tempfile.mkdtemp())
    if wheel_dir is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "scikit-image==0.26.0", "-d", str(tmp)],
            check=True,
        )
        wheel_dir = tmp
    wheels = sorted(glob.glob(str(Path(wheel_dir) / "scikit_image-*.whl")))
    if not wheels:
        raise SystemExit(f"no scikit-image wheel found in {wheel_dir}")
    out = {}
    with zipfile.ZipFile(wheels[-1]) as z:
        for name in ("astronaut.png", "coffee.png", "chelsea.png"):
            out[name] = Image.open(io.BytesIO(z.read(f"skimage/data/{name}"))).convert("RGB")
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel-dir", type=Path, default=None)
    args = ap.parse_args()
    src = load_from_wheel(args.wheel_dir)
    astro, coffee, cat = src["astronaut.png"], src["coffee.png"], src["chelsea.png"]
    OUT.mkdir(exist_ok=True)
    for sub in ("copies", "crops"):
        (OUT / sub).mkdir(exist_ok=True)

    # 1. keyword names, one face
    astro.save(OUT / "smiling_astronaut.png", optimize=True)
    shutil.copyfile(OUT / "smiling_astronaut.png", OUT / "copies" / "smiling_astronaut.png")  # same bytes
    astro.resize((384, 384), Image.LANCZOS).save(OUT / "astronaut happy (1).jpg", quality=88)
    # non-Latin name: 笑顔 = smiling face (Japanese), plus the English token
    astro.transpose(Image.FLIP_LEFT_RIGHT).resize((320, 320), Image.LANCZOS).save(
        OUT / "笑顔_laughing-woman.jpg", quality=85
    )
    # 2. an ambiguous name (words of two classes)
    astro.resize((300, 300), Image.LANCZOS).save(OUT / "sad-woman-happy-face.jpg", quality=85)
    # 3. negation: "not happy" must not propose happy
    astro.resize((256, 256), Image.LANCZOS).convert("L").convert("RGB").save(OUT / "not-happy-astronaut.jpg", quality=85)

    # 4. a multi-face image (three faces at different scales) with one keyword
    canvas = Image.new("RGB", (1000, 420), (235, 235, 235))
    for (x, y, s) in ((20, 40, 360), (400, 80, 300), (720, 110, 260)):
        canvas.paste(astro.resize((s, s), Image.LANCZOS), (x, y))
    canvas.save(OUT / "happy_team_photo.jpg", quality=85)

    # 5. EXIF rotation: pixels stored rotated, orientation tag says how to show them
    rotated = astro.resize((360, 360), Image.LANCZOS).rotate(90, expand=True)  # stored 90 deg CCW
    exif = Image.Exif()
    exif[0x0112] = 6  # display = rotate 90 CW
    rotated.save(OUT / "smiling_rotated_exif.jpg", quality=85, exif=exif)

    # 6. an already-cropped face: 48x48 grayscale, FER2013-style
    astro.crop((165, 55, 295, 185)).convert("L").resize((48, 48), Image.LANCZOS).save(OUT / "crops" / "happy_crop_48px.png")

    # 7. no face
    coffee.resize((400, 267), Image.LANCZOS).save(OUT / "coffee_cup.jpg", quality=85)
    cat.resize((451, 300), Image.LANCZOS).save(OUT / "shocked_cat.jpg", quality=85)

    # 8. wrong extension: PNG bytes named .jpg
    small = astro.resize((200, 200), Image.LANCZOS)
    small.save(OUT / "amazed_astronaut.jpg", format="PNG")

    # 9. broken files
    buf = io.BytesIO()
    astro.save(buf, format="JPEG", quality=85)
    (OUT / "angry_truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (OUT / "empty.jpg").write_bytes(b"")
    (OUT / "notes_not_an_image.png").write_text("this is a text file with an image extension\n")
    # 10. a tiny thumbnail (11 px), as scrapers produce
    astro.resize((11, 11), Image.LANCZOS).save(OUT / "neutral_thumb.jpg", quality=90)
    # 11. a figure with text and no face
    fig = Image.new("RGB", (320, 200), "white")
    d = ImageDraw.Draw(fig)
    d.rectangle((20, 20, 300, 180), outline="black", width=3)
    d.text((40, 90), "Figure 1: angry vs. disgust", fill="black")
    fig.save(OUT / "figure-angry-disgust.png")
    print(f"wrote {sum(1 for p in OUT.rglob('*') if p.is_file())} files to {OUT}")


if __name__ == "__main__":
    main()
