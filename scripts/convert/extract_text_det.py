"""Extract PP-OCRv4's text DETECTION model from the rapidocr-onnxruntime 1.4.4 wheel into models/.

Run from the repository root::

    .venv/bin/python scripts/convert/extract_text_det.py [--wheel PATH] [--out models]

Without ``--wheel`` the wheel is fetched with ``pip download --no-deps rapidocr-onnxruntime==1.4.4``.
Only ``rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx`` (4.7 MB) is taken, checked against
the sha256 pinned below and copied byte for byte to ``<out>/text_det_ppocrv4.onnx`` with its
sidecar ``text_det_ppocrv4.json`` (labeler.fer.cards) and the Apache-2.0 notice in
``<out>/LICENSES/ppocrv4-det-Apache-2.0.txt``. The recognition and angle models are not needed:
labeler.faces.text only asks where text is, not what it says. rapidocr itself is never imported
(its post-processing needs pyclipper and shapely; ours is numpy + cv2).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from labeler.fer.cards import write_card  # noqa: E402

PACKAGE, VERSION = "rapidocr-onnxruntime", "1.4.4"
WHEEL_NAME = "rapidocr_onnxruntime-1.4.4-py3-none-any.whl"
WHEEL_SHA256 = "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
MEMBER_SHA256 = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
OUT_NAME = "text_det_ppocrv4"
LICENCE_FILE = "LICENSES/ppocrv4-det-Apache-2.0.txt"

NOTICE = """text_det_ppocrv4.onnx (model "ppocrv4-det")
============================================

PP-OCRv4 text detection model (DB, mobile "ch" variant) from PaddleOCR
(https://github.com/PaddlePaddle/PaddleOCR, Copyright (c) PaddlePaddle Authors), as converted to ONNX
and shipped by RapidOCR (https://github.com/RapidAI/RapidOCR) in the wheel
rapidocr_onnxruntime-1.4.4-py3-none-any.whl, file rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx.
Both projects are released under the Apache License, Version 2.0. The file is copied unchanged
(sha256 d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9) and renamed.

Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
compliance with the License. You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the License is
distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or
implied. See the License for the specific language governing permissions and limitations under the
License.
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", f"{PACKAGE}=={VERSION}",
                    "-d", str(dest)], check=True)
    return dest / WHEEL_NAME


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help=f"a local {WHEEL_NAME} (default: pip download it)")
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = a.wheel or fetch_wheel(Path(tmp))
        if _sha(wheel.read_bytes()) != WHEEL_SHA256:
            sys.exit(f"{wheel}: expected sha256 {WHEEL_SHA256}, found another; is it {WHEEL_NAME}?")
        data = zipfile.ZipFile(wheel).read(MEMBER)
    if _sha(data) != MEMBER_SHA256:
        sys.exit(f"{MEMBER}: expected sha256 {MEMBER_SHA256}, found {_sha(data)}")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{OUT_NAME}.onnx").write_bytes(data)
    (a.out / LICENCE_FILE).parent.mkdir(exist_ok=True)
    (a.out / LICENCE_FILE).write_text(NOTICE, encoding="utf-8")
    write_card(a.out / f"{OUT_NAME}.json", {
        "name": "ppocrv4-det",
        "version": "rapidocr-onnxruntime-1.4.4",
        "kind": "text-det",
        "file": f"{OUT_NAME}.onnx",
        "input": {
            "name": "x", "layout": "NCHW", "dtype": "float32", "channels": "BGR",
            "size": "H and W multiples of 32 (dynamic)",
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
            "notes": "BGR uint8 image resized so both sides are multiples of 32, then (x/255 - 0.5) / 0.5 "
                     "(RapidOCR's det preprocessing)",
        },
        "outputs": {"names": ["sigmoid_0.tmp_0"],
                    "prob": "N x 1 x H x W text probability map (DB), same size as the input"},
        "source": {"package": PACKAGE, "version": VERSION, "file": MEMBER, "sha256": MEMBER_SHA256,
                   "wheel": WHEEL_NAME, "wheel_sha256": WHEEL_SHA256},
        "licence": "Apache-2.0",
        "licence_file": LICENCE_FILE,
    })
    print(f"wrote {a.out / (OUT_NAME + '.onnx')} ({len(data)} bytes) and its sidecar")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
