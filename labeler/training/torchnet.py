"""The FER network in PyTorch, rebuilt from its ONNX file (the `train` extra; imports torch).

``OnnxNet`` interprets the ONNX graph node by node with torch functions, its float initializers
turned into trainable parameters (BatchNormalization runs with its stored statistics, frozen), so
any FER model this project writes (the converted mini-Xception, a retrained head, a finetuned net)
can be finetuned and exported again with the same input/output names (``input`` -> ``logits``,
``embedding``). ``check_against_onnxruntime`` verifies the rebuild (max abs difference ~1e-5).
The training loop is :mod:`labeler.training.torchfit`.
"""

from __future__ import annotations

import math
import re
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
            ax = at.get("axis", 1) % max(1, a[0].dim())
            # torch's flatten keeps the batch dimension symbolic when traced for export (a size
            # computed in Python would be baked into the exported graph as a constant)
            if ax == 1:
                return torch.flatten(a[0], 1)  # exported as ONNX Flatten again
            return a[0].flatten(0, ax - 1).flatten(1) if ax else a[0].reshape(1, -1)
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


def logits(net: OnnxNet, x: np.ndarray, batch: int = 512) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(net(torch.from_numpy(np.ascontiguousarray(x[i : i + batch])))["logits"].numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))


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
