"""Convert facenet-pytorch 2.6.0's MTCNN weights (P-Net, R-Net, O-Net) to ONNX with sidecars.

Run from the repository root with the conversion venv (torch CPU + onnx)::

    .venv-convert/bin/python scripts/convert/convert_mtcnn.py [--wheel PATH] [--out models]

Without ``--wheel`` the wheel is fetched with ``pip download --no-deps facenet-pytorch==2.6.0``.
The three state dicts inside the wheel (``facenet_pytorch/data/{p,r,o}net.pt``) are checked against
the sha256 values pinned below, loaded into modules written here from the published architecture
(facenet_pytorch itself is never imported), and exported with ``torch.onnx.export(dynamo=False)``.

Writes ``<out>/mtcnn_{pnet,rnet,onet}.onnx``, a JSON sidecar beside each (labeler.modelfiles) and
``<out>/LICENSES/facenet-pytorch-MIT.txt`` (the wheel's LICENSE.md). The output is deterministic:
running the script twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from labeler.fer.cards import write_card  # noqa: E402

PACKAGE, VERSION = "facenet-pytorch", "2.6.0"
WHEEL_NAME = "facenet_pytorch-2.6.0-py3-none-any.whl"
#: sha256 of the state dicts inside the 2.6.0 wheel
PINNED = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}
LICENSE_MEMBER = "facenet_pytorch-2.6.0.dist-info/LICENSE.md"
LICENSE_OUT = "LICENSES/facenet-pytorch-MIT.txt"
OPSET = 17

INPUT_DOC = (
    "float32 NCHW, RGB channel order (not BGR), pixel values normalised as (x - 127.5) * 0.0078125. "
    "The image is NOT transposed: facenet-pytorch feeds images as N,C,H,W with H the image height; "
    "the W/H transposition of the original Caffe/MATLAB weights is folded into R-Net and O-Net, which "
    "permute their last feature map to N,W,H,C before flattening into the dense layer (that permute "
    "is part of this ONNX graph). Resizing in facenet-pytorch is torch interpolate(mode='area'), i.e. "
    "adaptive average pooling."
)


# ---------------------------------------------------------------- modules (same parameter names)
class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x):
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        prob = self.softmax4_1(self.conv4_1(x))
        reg = self.conv4_2(x)
        return reg, prob


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).flatten(1)  # N,W,H,C: the weights' transposed layout
        x = self.prelu4(self.dense4(x))
        prob = self.softmax5_1(self.dense5_1(x))
        reg = self.dense5_2(x)
        return reg, prob


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).flatten(1)
        x = self.prelu5(self.dense5(x))
        prob = self.softmax6_1(self.dense6_1(x))
        reg = self.dense6_2(x)
        landmarks = self.dense6_3(x)
        return reg, landmarks, prob


NETS = {
    "pnet": dict(
        cls=PNet,
        example=(1, 3, 48, 64),
        outputs=["reg", "prob"],
        dynamic={"input": {0: "batch", 2: "height", 3: "width"}, "reg": {0: "batch", 2: "oh", 3: "ow"}, "prob": {0: "batch", 2: "oh", 3: "ow"}},
        input_shape=["batch", 3, "height", "width"],
        outputs_doc={
            "reg": "N x 4 x H' x W' box regression (dx1, dy1, dx2, dy2) per 12x12 cell, stride 2",
            "prob": "N x 2 x H' x W' softmax (non-face, face); H' = ceil((H-2)/2)-4, W' likewise",
        },
    ),
    "rnet": dict(
        cls=RNet,
        example=(2, 3, 24, 24),
        outputs=["reg", "prob"],
        dynamic={"input": {0: "batch"}, "reg": {0: "batch"}, "prob": {0: "batch"}},
        input_shape=["batch", 3, 24, 24],
        outputs_doc={"reg": "N x 4 box regression (dx1, dy1, dx2, dy2), relative to box width/height + 1", "prob": "N x 2 softmax (non-face, face)"},
    ),
    "onet": dict(
        cls=ONet,
        example=(2, 3, 48, 48),
        outputs=["reg", "landmarks", "prob"],
        dynamic={"input": {0: "batch"}, "reg": {0: "batch"}, "landmarks": {0: "batch"}, "prob": {0: "batch"}},
        input_shape=["batch", 3, 48, 48],
        outputs_doc={
            "reg": "N x 4 box regression (dx1, dy1, dx2, dy2), relative to box width/height + 1",
            "landmarks": "N x 10: x of (left eye, right eye, nose, mouth left, mouth right) then their y, as fractions of the box (x = x1 - 1 + fx * (w + 1))",
            "prob": "N x 2 softmax (non-face, face)",
        },
    ),
}


def get_wheel(path: str | None, tmp: Path) -> Path:
    if path:
        return Path(path)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", f"{PACKAGE}=={VERSION}", "-d", str(tmp)]
    print("+", " ".join(cmd))
    subprocess.run(cmd, check=True)
    return tmp / WHEEL_NAME


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", default=None, help=f"a local {WHEEL_NAME} (default: pip download it)")
    ap.add_argument("--out", default=str(ROOT / "models"), help="output folder (default: models/)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    (out / "LICENSES").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as td:
        wheel = get_wheel(args.wheel, Path(td))
        with zipfile.ZipFile(wheel) as z:
            blobs = {k: z.read(f"facenet_pytorch/data/{k}.pt") for k in NETS}
            licence = z.read(LICENSE_MEMBER)
    for k, b in blobs.items():
        found = hashlib.sha256(b).hexdigest()
        if found != PINNED[k]:
            print(f"error: {k}.pt in {wheel}: expected sha256 {PINNED[k]}, found {found}", file=sys.stderr)
            return 2
    (out / LICENSE_OUT).write_bytes(licence)

    for k, spec in NETS.items():
        net = spec["cls"]()
        state = torch.load(io.BytesIO(blobs[k]), map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        net.eval()
        x = torch.zeros(spec["example"], dtype=torch.float32)
        onnx_path = out / f"mtcnn_{k}.onnx"
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # legacy exporter on purpose (dynamo=False)
        torch.onnx.export(
            net, (x,), str(onnx_path), dynamo=False, opset_version=OPSET,
            input_names=["input"], output_names=spec["outputs"], dynamic_axes=spec["dynamic"],
            do_constant_folding=True,
        )
        write_card(out / f"mtcnn_{k}.json", {
            "name": f"mtcnn-{k}",
            "version": f"{PACKAGE}-{VERSION}",
            "kind": f"mtcnn-{k}",
            "file": onnx_path.name,
            "input": {"name": "input", "shape": spec["input_shape"], "channels": "RGB", "layout": "NCHW",
                      "dtype": "float32", "normalisation": "(x - 127.5) * 0.0078125", "notes": INPUT_DOC},
            "outputs": {"names": spec["outputs"], **spec["outputs_doc"]},
            "source": {"package": PACKAGE, "version": VERSION, "file": f"facenet_pytorch/data/{k}.pt", "sha256": PINNED[k]},
            "licence": "MIT",
            "licence_file": LICENSE_OUT,
            "converted_with": {"torch": torch.__version__.split("+")[0], "opset": OPSET, "exporter": "torch.onnx.export(dynamo=False)"},
        })
        print(f"wrote {onnx_path} and {onnx_path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
