"""The FER network in PyTorch, rebuilt from its ONNX file (the `train` extra; imports torch).

``OnnxNet`` interprets the ONNX graph node by node with torch functions, its float initializers
turned into trainable parameters (BatchNormalization runs with its stored statistics, frozen), so
any FER model this project writes (the converted mini-Xception, a retrained head, a finetuned net)
can be finetuned and exported again with the same input/output names (``input`` -> ``logits``,
``embedding``). ``check_against_onnxruntime`` verifies the rebuild (max abs difference ~1e-5).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads(p: Sequence[int]) -> tuple[list[int], bool]:
    """ONNX pads [x1_begin, x2_begin, x1_end, x2_end] -> (torch F.pad list, symmetric?)."""
    n = len(p) // 2
    begin, end = list(p[:n]), list(p[n:])
    sym = begin == end
    tp: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):
        tp += [b, e]
    return tp, sym


class OnnxNet(nn.Module):
    def __init__(self, nodes: list, params: dict[str, np.ndarray], consts: dict[str, np.ndarray],
                 input_name: str, output_names: list[str]):
        super().__init__()
        self.nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n), n.name) for n in nodes]
        self.input_name = input_name
        self.output_names = output_names
        self._pname = {k: "p_" + re.sub(r"\W", "_", k) + f"_{i}" for i, k in enumerate(params)}
        self.params = nn.ParameterDict({self._pname[k]: nn.Parameter(torch.from_numpy(np.array(v, dtype=np.float32))) for k, v in params.items()})
        self.consts = {k: v for k, v in consts.items()}
        for k, v in consts.items():
            if v.dtype.kind == "f":
                self.register_buffer("c_" + re.sub(r"\W", "_", k), torch.from_numpy(np.array(v, dtype=np.float32)), persistent=False)
        self._cname = {k: "c_" + re.sub(r"\W", "_", k) for k in consts}

    @classmethod
    def from_onnx(cls, path: str | Path) -> "OnnxNet":
        import onnx
        from onnx import numpy_helper

        m = onnx.load(str(path))
        g = m.graph
        inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        nodes = list(g.node)
        # Constant nodes become constants
        consts: dict[str, np.ndarray] = {}
        rest = []
        for n in nodes:
            if n.op_type == "Constant":
                consts[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
            else:
                rest.append(n)
        # trainable: float initializers used as weights/biases (BN running stats are buffers)
        bn_stats = set()
        shape_like = set()
        for n in rest:
            if n.op_type == "BatchNormalization":
                bn_stats.update(n.input[3:5])
            if n.op_type in ("Reshape", "Unsqueeze", "Squeeze", "Pad", "Slice", "ReduceMean", "Clip", "Resize", "Expand", "Tile"):
                shape_like.update(n.input[1:])
        params, cst = {}, dict(consts)
        for k, v in inits.items():
            if v.dtype.kind == "f" and v.ndim >= 1 and k not in bn_stats and k not in shape_like:
                params[k] = v
            else:
                cst[k] = v
        inputs = [i.name for i in g.input if i.name not in inits]
        return cls(rest, params, cst, inputs[0], [o.name for o in g.output])

    # ---- which parameters belong to the head (everything not needed for ``embedding``)
    def head_parameter_names(self, embedding: str = "embedding") -> list[str]:
        prod = {o: i for i, n in enumerate(self.nodes) for o in n[2]}
        anc, stack = set(), [embedding]
        while stack:
            t = stack.pop()
            i = prod.get(t)
            if i is None or i in anc:
                continue
            anc.add(i)
            stack.extend(self.nodes[i][1])
        backbone_inputs = {x for i in anc for x in self.nodes[i][1]}
        return [self._pname[k] for k in self._pname if k not in backbone_inputs]

    def _get(self, env: dict, name: str):
        if name in env:
            return env[name]
        if name in self._pname:
            return self.params[self._pname[name]]
        if name in self._cname:
            v = self.consts[name]
            return getattr(self, self._cname[name]) if v.dtype.kind == "f" else v
        raise KeyError(f"ONNX value {name!r} not computed")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        env: dict[str, Any] = {self.input_name: x}
        for op, ins, outs, at, _name in self.nodes:
            a = [self._get(env, i) if i else None for i in ins]
            env[outs[0]] = self._op(op, a, at)
        return {k: env[k] for k in self.output_names}

    @staticmethod
    def _np(v) -> np.ndarray:
        return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)

    def _op(self, op: str, a: list, at: dict):
        if op == "Conv":
            w, b = a[1], (a[2] if len(a) > 2 else None)
            k = w.shape[2:]
            strides = at.get("strides", [1] * len(k))
            dil = at.get("dilations", [1] * len(k))
            x = a[0]
            pads = at.get("pads", [0] * 2 * len(k))
            ap = at.get("auto_pad", b"NOTSET")
            ap = ap.decode() if isinstance(ap, bytes) else ap
            if ap in ("SAME_UPPER", "SAME_LOWER"):
                pads = []
                ends = []
                for d, (kk, s, dl) in enumerate(zip(k, strides, dil)):
                    size = x.shape[2 + d]
                    out = math.ceil(size / s)
                    tot = max((out - 1) * s + (kk - 1) * dl + 1 - size, 0)
                    lo = tot // 2 if ap == "SAME_UPPER" else tot - tot // 2
                    pads.append(lo)
                    ends.append(tot - lo)
                pads = pads + ends
            tp, sym = _pads(pads)
            if sym:
                pad = pads[: len(k)]
            else:
                x = F.pad(x, tp)
                pad = [0] * len(k)
            return F.conv2d(x, w, b, stride=strides, padding=pad, dilation=dil, groups=at.get("group", 1))
        if op == "BatchNormalization":
            return F.batch_norm(a[0], a[3], a[4], a[1], a[2], training=False, eps=at.get("epsilon", 1e-5))
        if op == "Relu":
            return F.relu(a[0])
        if op == "LeakyRelu":
            return F.leaky_relu(a[0], at.get("alpha", 0.01))
        if op == "Sigmoid":
            return torch.sigmoid(a[0])
        if op == "Clip":
            lo = float(self._np(a[1])) if len(a) > 1 and a[1] is not None else at.get("min", None)
            hi = float(self._np(a[2])) if len(a) > 2 and a[2] is not None else at.get("max", None)
            return torch.clamp(a[0], lo, hi)
        if op in ("Add", "Sub", "Mul", "Div"):
            x, y = a
            x = x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float32)
            y = y if isinstance(y, torch.Tensor) else torch.as_tensor(y, dtype=torch.float32)
            return {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[op](x, y)
        if op == "MaxPool" or op == "AveragePool":
            k = at["kernel_shape"]
            s = at.get("strides", [1] * len(k))
            pads = at.get("pads", [0] * 2 * len(k))
            ap = at.get("auto_pad", b"NOTSET")
            ap = ap.decode() if isinstance(ap, bytes) else ap
            x = a[0]
            if ap in ("SAME_UPPER", "SAME_LOWER"):
                pads, ends = [], []
                for d, (kk, ss) in enumerate(zip(k, s)):
                    size = x.shape[2 + d]
                    out = math.ceil(size / ss)
                    tot = max((out - 1) * ss + kk - size, 0)
                    lo = tot // 2 if ap == "SAME_UPPER" else tot - tot // 2
                    pads.append(lo)
                    ends.append(tot - lo)
                pads = pads + ends
            tp, sym = _pads(pads)
            ceil = bool(at.get("ceil_mode", 0))
            if op == "MaxPool":
                if sym and all(p * 2 <= kk for p, kk in zip(pads[: len(k)], k)):
                    return F.max_pool2d(x, k, s, pads[: len(k)], ceil_mode=ceil)
                return F.max_pool2d(F.pad(x, tp, value=float("-inf")), k, s, 0, ceil_mode=ceil)
            cip = bool(at.get("count_include_pad", 0))
            if sym:
                return F.avg_pool2d(x, k, s, pads[: len(k)], ceil_mode=ceil, count_include_pad=cip)
            return F.avg_pool2d(F.pad(x, tp), k, s, 0, ceil_mode=ceil, count_include_pad=True)
        if op == "GlobalAveragePool":
            return a[0].mean(dim=(2, 3), keepdim=True)
        if op == "GlobalMaxPool":
            return torch.amax(a[0], dim=(2, 3), keepdim=True)
        if op == "ReduceMean":
            axes = at.get("axes") or ([int(v) for v in self._np(a[1]).reshape(-1)] if len(a) > 1 and a[1] is not None else None)
            keep = bool(at.get("keepdims", 1))
            return a[0].mean(dim=tuple(axes), keepdim=keep) if axes else a[0].mean()
        if op == "Flatten":
            ax = at.get("axis", 1)
            return a[0].reshape(int(np.prod(a[0].shape[:ax])) if ax else 1, -1)
        if op == "Reshape":
            shape = [int(v) for v in self._np(a[1]).reshape(-1)]
            shape = [a[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
            return a[0].reshape(shape)
        if op == "Squeeze":
            axes = at.get("axes") or ([int(v) for v in self._np(a[1]).reshape(-1)] if len(a) > 1 and a[1] is not None else None)
            x = a[0]
            if axes is None:
                return x.squeeze()
            for ax in sorted((ax % x.dim() for ax in axes), reverse=True):
                x = x.squeeze(ax)
            return x
        if op == "Unsqueeze":
            axes = at.get("axes") or [int(v) for v in self._np(a[1]).reshape(-1)]
            x = a[0]
            for ax in sorted(axes):
                x = x.unsqueeze(ax)
            return x
        if op == "Transpose":
            return a[0].permute(*at["perm"])
        if op == "Identity" or op == "Dropout":
            return a[0]
        if op == "Gemm":
            x, w = a[0], a[1]
            if at.get("transA", 0):
                x = x.t()
            if at.get("transB", 0):
                w = w.t()
            y = at.get("alpha", 1.0) * (x @ w)
            if len(a) > 2 and a[2] is not None:
                y = y + at.get("beta", 1.0) * a[2]
            return y
        if op == "MatMul":
            return a[0] @ a[1]
        if op == "Softmax":
            return F.softmax(a[0], dim=at.get("axis", -1))
        if op == "Concat":
            return torch.cat(a, dim=at["axis"])
        if op == "Pad":
            pads = [int(v) for v in self._np(a[1]).reshape(-1)] if len(a) > 1 else at["pads"]
            tp, _ = _pads(pads)
            tp = tp[: 2 * (a[0].dim())]
            val = float(self._np(a[2])) if len(a) > 2 and a[2] is not None else 0.0
            mode = at.get("mode", b"constant")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            # drop the N, C pairs (last in torch order) when they are zero
            while len(tp) > 4 and tp[-1] == 0 and tp[-2] == 0:
                tp = tp[:-2]
            return F.pad(a[0], tp, mode=mode, value=val) if mode == "constant" else F.pad(a[0], tp, mode=mode)
        raise NotImplementedError(f"ONNX op {op} is not supported by labeler.torchnet")


# --------------------------------------------------------------------------------------------
# data


def preprocess(crops: Sequence[np.ndarray], spec: dict) -> np.ndarray:
    """Crops (RGB or gray uint8, any size) -> float32 (N,1,S,S) as the model expects: gray, resized,
    (x - mean) / std. Uses labeler.models' own preprocessing when it exposes one."""
    try:
        from labeler.fer import model as _m

        fn = getattr(_m, "preprocess", None)
        if fn is not None:
            try:
                return np.asarray(fn(list(crops), spec), dtype=np.float32)
            except TypeError:
                return np.asarray(fn(list(crops)), dtype=np.float32)
    except ImportError:
        pass
    import cv2

    size = int(spec.get("size", 64)) if isinstance(spec.get("size", 64), int) else int(spec["size"][0])
    mean = float(spec.get("mean", 127.5))
    std = float(spec.get("std", 127.5))
    out = np.empty((len(crops), 1, size, size), dtype=np.float32)
    for i, c in enumerate(crops):
        g = c if c.ndim == 2 else cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)
        if g.shape[:2] != (size, size):
            g = cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA if g.shape[0] > size else cv2.INTER_LINEAR)
        out[i, 0] = (g.astype(np.float32) - mean) / std
    return out


def augment(x: torch.Tensor, gen: torch.Generator, rot_deg: float = 10.0, scale: float = 0.1, bright: float = 0.2) -> torch.Tensor:
    """Random horizontal flip, small rotation and scale, brightness/contrast, on normalised images."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(rot_deg)
    sc = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # pad with the border (the normalised value of the edge pixels), not black
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    c = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * bright
    b = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * bright
    return torch.clamp(x * c + b, -1.0, 1.0)


def logits(net: OnnxNet, x: np.ndarray, batch: int = 512) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(net(torch.from_numpy(np.ascontiguousarray(x[i : i + batch])))["logits"].numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))


def class_weights(y: np.ndarray, k: int) -> torch.Tensor:
    counts = np.bincount(y, minlength=k).astype(np.float64)
    present = counts > 0
    w = np.where(present, len(y) / (present.sum() * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def _run_epochs(net, params, x, y, k, epochs, lr, batch_size, gen, wd, xval, yval, verbose, tag, log):
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    steps = max(1, epochs * math.ceil(len(x) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    lossf = nn.CrossEntropyLoss(weight=class_weights(y, k))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    best = None
    for ep in range(epochs):
        net.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(xt), generator=gen)
        tot = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            xb = augment(xt[idx], gen)
            loss = lossf(net(xb)["logits"], yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
        entry = {"phase": tag, "epoch": ep + 1, "loss": round(tot / len(xt), 4), "seconds": round(time.perf_counter() - t0, 1)}
        if xval is not None and len(xval):
            pv = logits(net, xval).argmax(1)
            entry["val_accuracy"] = round(float((pv == yval).mean()), 4)
            entry["val_macro_f1"] = round(_macro_f1(pv, yval), 4)
            key = (entry["val_macro_f1"], entry["val_accuracy"])
            if best is None or key > best[0]:
                best = (key, {k_: v.detach().clone() for k_, v in net.state_dict().items()})
        log.append(entry)
        if verbose:
            print(f"  {tag} epoch {ep + 1}/{epochs}: " + ", ".join(f"{k_}={v}" for k_, v in entry.items() if k_ not in ("phase", "epoch")), flush=True)
    return best


def _macro_f1(pred: np.ndarray, y: np.ndarray) -> float:
    f = []
    for c in np.unique(y):
        tp = float(((pred == c) & (y == c)).sum())
        p = tp / max((pred == c).sum(), 1)
        r = tp / max((y == c).sum(), 1)
        f.append(0.0 if tp == 0 else 2 * p * r / (p + r))
    return float(np.mean(f)) if f else 0.0


def finetune(
    net: OnnxNet, x: np.ndarray, y: np.ndarray, k: int, *, head_epochs: int = 5, epochs: int = 10, lr_head: float = 1e-3,
    lr: float = 1e-4, batch_size: int = 64, seed: int = 0, threads: Optional[int] = None, weight_decay: float = 1e-4,
    xval: Optional[np.ndarray] = None, yval: Optional[np.ndarray] = None, verbose: bool = True,
) -> list[dict]:
    """Train in place: the head with the backbone frozen, then every layer at ``lr``. With a
    validation set, the weights of the best epoch (macro-F1, then accuracy), or the starting
    weights if no epoch beats them, are kept. Returns the per-epoch log."""
    if threads:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    log: list[dict] = []
    start_key = None
    start_state = None
    if xval is not None and len(xval):
        pv = logits(net, xval).argmax(1)
        start_key = (round(_macro_f1(pv, yval), 4), round(float((pv == yval).mean()), 4))
        start_state = {k_: v.detach().clone() for k_, v in net.state_dict().items()}
        log.append({"phase": "start", "val_macro_f1": start_key[0], "val_accuracy": start_key[1]})
        if verbose:
            print(f"  start: val_macro_f1={start_key[0]}, val_accuracy={start_key[1]}", flush=True)
    head = set(net.head_parameter_names())
    best_all = None
    if head_epochs > 0 and head:
        for n_, p in net.params.items():
            p.requires_grad_(n_ in head)
        best_all = _run_epochs(net, [p for n_, p in net.params.items() if n_ in head], x, y, k, head_epochs, lr_head, batch_size,
                               gen, weight_decay, xval, yval, verbose, "head", log)
    for p in net.params.values():
        p.requires_grad_(True)
    if epochs > 0:
        b = _run_epochs(net, list(net.params.values()), x, y, k, epochs, lr, batch_size, gen, weight_decay, xval, yval, verbose, "all", log)
        if b is not None and (best_all is None or b[0] > best_all[0]):
            best_all = b
    if best_all is not None:
        if start_key is not None and not best_all[0] > start_key:
            net.load_state_dict(start_state)
            log.append({"phase": "kept", "which": "start (no epoch beat it on validation)"})
        else:
            net.load_state_dict(best_all[1])
            log.append({"phase": "kept", "which": "best epoch", "val_macro_f1": best_all[0][0], "val_accuracy": best_all[0][1]})
    net.eval()
    return log


class _Export(nn.Module):
    def __init__(self, net: OnnxNet):
        super().__init__()
        self.net = net

    def forward(self, x):
        o = self.net(x)
        return tuple(o[k] for k in self.net.output_names)


def export_onnx(net: OnnxNet, path: str | Path, example: np.ndarray, opset: int = 17) -> None:
    net.eval()
    ex = torch.from_numpy(np.ascontiguousarray(example[:1]))
    names = list(net.output_names)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, chosen on purpose
        torch.onnx.export(
            _Export(net), (ex,), str(path), input_names=[net.input_name], output_names=names,
            dynamic_axes={net.input_name: {0: "N"}, **{n: {0: "N"} for n in names}}, opset_version=opset, dynamo=False,
        )


def check_against_onnxruntime(onnx_path: str | Path, x: Optional[np.ndarray] = None, net: Optional[OnnxNet] = None) -> dict[str, float]:
    """Max abs difference of every output between onnxruntime and the torch rebuild."""
    import onnxruntime as ort

    net = net or OnnxNet.from_onnx(onnx_path)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) and d > 0 else 4 for d in sess.get_inputs()[0].shape]
    if x is None:
        x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    ref = sess.run(None, {sess.get_inputs()[0].name: x})
    net.eval()
    with torch.no_grad():
        got = net(torch.from_numpy(x))
    return {o.name: float(np.abs(r - got[o.name].numpy()).max()) for o, r in zip(sess.get_outputs(), ref)}


def kept_start(log: list[dict]) -> bool:
    """True when :func:`finetune` kept the starting weights (no epoch beat them on validation)."""
    return any(e.get("phase") == "kept" and str(e.get("which", "")).startswith("start") for e in log)
