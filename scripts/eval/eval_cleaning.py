"""Measure the cleaning flags on the dev set: text (labeler.faces.text), near-duplicates
(labeler.faces.neardup) and non-photo score (labeler.faces.nonphoto).

    .venv/bin/python scripts/eval/eval_cleaning.py [--dev ../shared/data/dev] [--threads 2]

Ground truth for text and non-photo is by eye, for the 128 files under images/web_keyword (the lists
below, paths relative to that folder): every file was looked at on contact sheets of 300 px
thumbnails, and the detector's hits were then looked at in full size (which found two faint
watermarks missed on the thumbnails, and a third one on a second look at the hits outside the
list): images with any legible text count, watermarks and small figure labels included. Non-photo:
cartoons, emoji (2-D and 3-D renders), drawings, logos, and figures or collages made of several
face panels. Prints figures only, writes nothing (``--only autolabel`` writes temporary databases).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from labeler.faces import neardup  # noqa: E402
from labeler.faces.nonphoto import THRESHOLD, nonphoto_score  # noqa: E402
from labeler.faces.cleaning import PIPELINE_SIDES  # noqa: E402
from labeler.faces.cleaning import measured_copy  # noqa: E402
from labeler.faces.text import TextDetector  # noqa: E402
from labeler.ingest.imageio import DecodeError, decode  # noqa: E402

TEXT = {
    '1/image27.jpeg',
    '1/images8.jpg',
    '306391849.jpg',
    '311964136.jpg',
    '3d-illustration-emoticon-expression-fearful-face_446709-1024.jpg',
    '7156056_stock-photo-portrait-of-young-woman-with-shocked-facial-expression.jpg',
    'Example-facial-stimuli-showing-fearful-and-neutral-expressions-Please-note-that.png',
    'Examples-of-the-four-expression-prototypes-Surprise-fear-brow-only-fear-mouth-only.png',
    'Experiments_in_physiology._Facial_expressions3B_Fearful_Wellcome_L0040113.jpg',
    'Faces-Facial-expressions-of-joy-anger-sadness-fear-and-the-neutral-faces-were-created.png',
    'Facial-expression-continuum-used-in-the-experiment-This-is-a-happy-fearful-morphing.png',
    'Facial20Expressions2000.jpg',
    'HAPPY-PEOPLE-CLUB-LOGO.jpg',
    'a-little-girls-angry-face-S0KW67.jpg',
    'african-american-depressive-sad-broken-260nw-475790911.jpg',
    'african-american-woman-afro-hair-260nw-2158766535.jpg',
    'cartoon-head-facial-expression-clip-art-png-favpng-rjNiW03SDHD97DMpmiWEXyhYG.jpg',
    # a faint "dreamstime" watermark across the face, found when the detector's hits outside this
    # list were looked at in full size (the others there: a dress pattern, trees, bokeh lights, teeth)
    'facial-expression-funny-surprise-3788916.jpg',
    'goup-happy-people-group-jumping-isolated-white-background-35582232.jpg',
    'image11.jpeg',
    'image24.jpeg',
    'image4.jpeg',
    'images13.jpg',
    'images25.jpg',
    'images28.jpg',
    'images29.jpg',
    'images39.jpg',
    'images44.jpg',
    'images5.jpg',
    'images6.jpg',
    'images66.jpg',
    'indian-senior-woman-portrait-happy-260nw-2190783427.jpg',
    'ith-big-open-eyes-and-open-mouth-with-amazement-photocase-stock-photo-large.jpeg',
    'l-expression-raised-hands-confused-frightened-woman-fearful-facial-173986350.jpg',
    'little-girl-angry-face-expression-set-of-cartoon-vector-21430985.jpg',
    'maxresdefault2.jpg',
    'pau-molinet-expression-anger.jpg',
    'portrait-man-sad-mood-people-260nw-1024988086.jpg',
    'portrait-surprised-man-260nw-157245110.jpg',
    'ritated-character-facial-expression-anger-on-the-face-furious-man-1470492794.jpg',
    'sad-group-people-problems-17033671.jpg',
    'sad-people-vector-2153909.jpg',
    'shocked-surprised-face-asian-man-260nw-359543738.jpg',
    'smiley-face-character-angry-expression-clipart-15014.jpg',
    'smiling-young-african-american-woman-260nw-2290057229.jpg',
    'surprise-disgust-sadness-rapture-disappointment-fear-joy-smile-cry-120969503.jpg',
    'surprised-man-in-a-white-t-shirt-on-a-white-background-with-a-cartoon-KEJ1RA.jpg',
    'test-for-fear_orig.png',
    'xpression-looking-mad-camera-children-emotions-portrait-cute-child-148316294.jpg',
    'young-beautiful-scared-spanish-woman-in-stock-image_csp46043061.jpg',
    'young-woman-smiling-260nw-1145034878.jpg',
}
NONPHOTO = {
    '-warcraft-emoticon-face-surprise-facial-expression-black-and-white-thumbnail.png',
    '1871_108_345-facial-expression-rage.jpg',
    '2/images27.jpg',
    '280-2804580_sad-people-png-sad-person-png-transparent-png.png',
    '3d-illustration-emoticon-expression-fearful-face_446709-1024.jpg',
    '3d-red-angry-expression-emoji-emoticon_477250-38.jpg',
    '64-642949_gnome-face-angry-angry-facial-expression-cartoon.png',
    'Example-facial-stimuli-showing-fearful-and-neutral-expressions-Please-note-that.png',
    'Examples-of-facial-expressions-used-in-the-three-anchor-conditions-anger-sad-and-sick.png',
    'Examples-of-the-four-expression-prototypes-Surprise-fear-brow-only-fear-mouth-only.png',
    'Faces-Facial-expressions-of-joy-anger-sadness-fear-and-the-neutral-faces-were-created.png',
    'Facial-expression-continuum-used-in-the-experiment-This-is-a-happy-fearful-morphing.png',
    'Facial20Expressions2000.jpg',
    'HAPPY-PEOPLE-CLUB-LOGO.jpg',
    'cartoon-head-facial-expression-clip-art-png-favpng-rjNiW03SDHD97DMpmiWEXyhYG.jpg',
    'emoticon-emoji-angry-face-icon_53876-145020.jpg',
    'emoticon-expression-fearful-face-png.png',
    'image24.jpeg',
    'image31.png',
    'image4.jpeg',
    'images12.jpg',
    'images13.jpg',
    'images18.jpg',
    'images25.jpg',
    'images28.jpg',
    'images29.jpg',
    'images31.jpg',
    'images39.jpg',
    'images44.jpg',
    'images5.jpg',
    'images6.jpg',
    'images60.jpg',
    'images66.jpg',
    'images73.jpg',
    'imgbin-surprise-smiley-surprise-6e2xp4eNREhbWKWnUESSa3929_t.jpg',
    'little-girl-angry-face-expression-set-of-cartoon-vector-21430985.jpg',
    'maxresdefault2.jpg',
    'pau-molinet-expression-anger.jpg',
    'png-transparent-face-anger-emoji-nervous-brave-stressed-angry-face-evil-hatred-expression.png',
    'ritated-character-facial-expression-anger-on-the-face-furious-man-1470492794.jpg',
    'sad-people-vector-2153909.jpg',
    'smiley-face-character-angry-expression-clipart-15014.jpg',
    'smiling-man-crowd-sad-people-vector-58533122.jpg',
    'surprise-disgust-sadness-rapture-disappointment-fear-joy-smile-cry-120969503.jpg',
    'test-for-fear_orig.png',
}


def _pr(flagged: set[str], truth: set[str]) -> str:
    tp = len(flagged & truth)
    p = tp / len(flagged) if flagged else 0.0
    return f"precision {p:.2f} ({tp}/{len(flagged)}), recall {tp / len(truth):.2f} ({tp}/{len(truth)})"


def _images(folder: Path) -> list[tuple[str, bytes, object]]:
    out = []
    for p in sorted(x for x in folder.rglob("*") if x.is_file()):
        data = p.read_bytes()
        try:
            out.append((str(p.relative_to(folder)), data, decode(data).rgb))
        except DecodeError as e:
            print(f"  skipped {p.relative_to(folder)}: {e}")
    return out


def eval_web(dev: Path, threads: int, sides: tuple[int, int]) -> None:
    web = _images(dev / "images" / "web_keyword")
    names = {n for n, _, _ in web}
    assert TEXT <= names and NONPHOTO <= names, "the by-eye lists name files that are not in web_keyword"
    det = TextDetector(threads=threads, min_side=sides[0], max_side=sides[1])
    t0, flagged, shares = time.perf_counter(), set(), []
    for name, _, rgb in web:
        r = det(measured_copy(rgb)[0])  # as autolabel measures it (a large image on a 1600 px copy)
        shares.append(r.share)
        if r.has_text:
            flagged.add(name)
    ms = 1000 * (time.perf_counter() - t0) / len(web)
    print(f"text: {len(web)} images, {len(TEXT)} with text by eye; flag = any text box: {_pr(flagged, TEXT)}; "
          f"{ms:.0f} ms/image on {threads} threads")
    print(f"  missed: {sorted(TEXT - flagged)}\n  false: {sorted(flagged - TEXT)}")
    t0 = time.perf_counter()
    scores = {name: nonphoto_score(rgb).score for name, _, rgb in web}
    ms = 1000 * (time.perf_counter() - t0) / len(web)
    for t in (0.4, THRESHOLD, 0.6):
        flag = {n for n, s in scores.items() if s >= t}
        print(f"non-photo at {t:.2f}{' (default)' if t == THRESHOLD else ''}: {_pr(flag, NONPHOTO)}")
    pos = [scores[n] for n in NONPHOTO]
    neg = [s for n, s in scores.items() if n not in NONPHOTO]
    auc = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / len(pos) / len(neg)
    print(f"  ranking AUC {auc:.3f} (in-sample: the weights were fitted on these images); {ms:.0f} ms/image")


def eval_neardup(dev: Path) -> None:
    allimg = _images(dev / "images")
    hashes = [neardup.phash(rgb) for _, _, rgb in allimg]
    shas = [hashlib.sha256(data).hexdigest() for _, data, _ in allimg]
    exact = sum(1 for c in Counter(shas).values() if c > 1)
    print(f"near-duplicates: {len(allimg)} images under images/, {exact} byte-identical sets")
    for d in (4, neardup.MAX_DISTANCE, 8, 12):
        gs = [g for g in neardup.groups(hashes, d, same=shas) if len({shas[i] for i in g}) > 1]
        print(f"  max distance {d}{' (default)' if d == neardup.MAX_DISTANCE else ''}: {len(gs)} groups "
              f"beyond byte-identical, {sum(map(len, gs))} images")
    for g in neardup.groups(hashes, 12, same=shas):
        dist = [neardup.hamming(hashes[g[0]], hashes[i]) for i in g]
        print(f"    {dist}: " + " | ".join(allimg[i][0] for i in g))


def eval_cost(dev: Path) -> None:
    """What autolabel adds per image: labeler.faces.cleaning.measure as the worker runs it (one
    onnxruntime thread), on every dev image, one face box each (the face part is a crop hash and a
    box test: negligible)."""
    from labeler.faces.cleaning import measure, text_detector

    allimg = _images(dev / "images")
    det = text_detector(1)
    measure(allimg[0][2], [], detector=det)  # warm up
    t0 = time.perf_counter()
    for _, _, rgb in allimg:
        h, w = rgb.shape[:2]
        measure(rgb, [(w * 0.3, h * 0.3, w * 0.6, h * 0.6)], detector=det)
    print(f"cost: cleaning.measure {(time.perf_counter() - t0) / len(allimg):.3f} s/image on 1 thread "
          f"({len(allimg)} dev images)")


def eval_autolabel_cost(dev: Path, n: int, rounds: int = 2) -> None:
    """Whole `autolabel` runs (one worker, in this process, fresh database each) over ``n`` dev images
    (every k-th), with the cleaning step and without it (its measure replaced by nothing), alternated
    ``rounds`` times: the difference per image is what cleaning adds to autolabel."""
    import shutil
    import tempfile

    from labeler import work
    from labeler.config import Config
    from labeler.ingest.rules import load_rules
    from labeler.pipeline import Autolabeler
    from labeler.store import Store

    every = sorted(p for p in (dev / "images").rglob("*") if p.is_file())
    files = every[:: max(1, len(every) // n)][:n]  # spread over the four sub-folders
    real = work.cleaning.measure
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as t:
        src = Path(t) / "src"
        for p in files:
            dst = src / p.relative_to(dev / "images")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst)
        for r in range(rounds):
            for on in (True, False):
                work.cleaning.measure = real if on else (lambda *a, **k: None)
                store = Store(f"sqlite:///{t}/{r}_{on}.db")
                al = Autolabeler(store, Config(), load_rules())
                t0 = time.perf_counter()
                al.run(src, progress=False)
                times[on].append(time.perf_counter() - t0)
                store.engine.dispose()
    work.cleaning.measure = real
    on, off = min(times[True]) / len(files), min(times[False]) / len(files)
    print(f"autolabel, {len(files)} dev images, 1 worker, best of {rounds}: {on:.3f} s/image with cleaning, "
          f"{off:.3f} without: +{on - off:.3f} s/image (+{100 * (on / off - 1):.0f}%)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=ROOT.parent / "shared" / "data" / "dev")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sides", default=None, help="text detector input MIN,MAX sides (default: those autolabel uses)")
    ap.add_argument("--only", choices=["web", "neardup", "cost", "autolabel"], default=None)
    ap.add_argument("--n", type=int, default=60, help="images for --only autolabel")
    a = ap.parse_args(argv)
    sides = tuple(int(x) for x in a.sides.split(",")) if a.sides else PIPELINE_SIDES
    if a.only in (None, "web"):
        print(f"text detector input: short side up to {sides[0]}, long side at most {sides[1]}")
        eval_web(a.dev, a.threads, sides)
    if a.only in (None, "neardup"):
        eval_neardup(a.dev)
    if a.only in (None, "cost"):
        eval_cost(a.dev)
    if a.only == "autolabel":
        eval_autolabel_cost(a.dev, a.n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
