"""FER2013 + FER+ votes for :mod:`labeler.training.base_train`: vote targets, the data loaded into one
uint8 array, the grouped validation split and the batch-level augmentation (torch ops)."""

from __future__ import annotations

import csv
import hashlib
import math
import sys
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from labeler.training.base_net import INPUT_SIZE
from labeler.types import LABELS as _LABELS

#: where the prior adjustment's alpha is chosen (the sidecar says so)
VALIDATION_SET = "validation (train content-hash groups held out, FER+ majority labels), flip-averaged logits"


def log(msg: str) -> None:
    print(msg, flush=True)


LABELS = list(_LABELS)
# FER+ vote columns for each of our labels, in our order
VOTE_COLS = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
ALL_VOTE_COLS = VOTE_COLS + ["contempt", "unknown", "NF"]
MEAN, STD = 127.5, 127.5

# ----------------------------------------------------------------------------------------------
# data


def read_votes(path: Path) -> dict[str, np.ndarray]:
    """file -> 10 vote counts in ALL_VOTE_COLS order (rows without votes give zeros)."""
    out: dict[str, np.ndarray] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            v = []
            for c in ALL_VOTE_COLS:
                s = (row.get(c) or "").strip()
                v.append(float(s) if s else 0.0)
            out[row["file"]] = np.asarray(v, dtype=np.float32)
    return out


def vote_targets(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For N x 10 vote counts: (keep-for-training mask, N x 7 distributions, FER+ majority label or -1)."""
    emo = votes[:, :7]
    s = emo.sum(1)
    top_any = votes[:, :8].max(1)  # emotions + contempt
    junk = votes[:, 8:10].max(1)  # unknown, NF
    keep = (s > 0) & (top_any > junk)
    dist = np.where(s[:, None] > 0, emo / np.maximum(s[:, None], 1e-9), 0.0).astype(np.float32)
    mx = votes.max(1)
    n_top = (votes == mx[:, None]).sum(1)
    arg = votes.argmax(1)
    maj = np.where((mx > 0) & (n_top == 1) & (arg < 7), arg, -1).astype(np.int64)
    return keep, dist, maj


class Split:
    """Preloaded images of one split: x (N x 48 x 48 uint8), folder label, votes, hashes, files."""

    def __init__(self, x, folder, votes, hashes, files):
        self.x, self.folder, self.votes, self.hashes, self.files = x, folder, votes, hashes, files
        self.keep, self.dist, self.maj = vote_targets(votes)

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, idx: np.ndarray) -> "Split":
        return Split(self.x[idx], self.folder[idx], self.votes[idx], [self.hashes[i] for i in idx], [self.files[i] for i in idx])


def load_split(data: Path, split: str, votes: dict[str, np.ndarray], size: int = INPUT_SIZE,
               limit_per_class: Optional[int] = None) -> Split:
    xs, folder, vs, hashes, files = [], [], [], [], []
    for k, lab in enumerate(LABELS):
        d = data / split / lab
        if not d.is_dir():
            continue
        names = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for p in names[:limit_per_class]:
            b = p.read_bytes()
            g = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_GRAYSCALE)
            if g is None:
                print(f"warning: cannot decode {p}", file=sys.stderr)
                continue
            if g.shape != (size, size):
                g = cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA)
            rel = f"{split}/{lab}/{p.name}"
            xs.append(g)
            folder.append(k)
            vs.append(votes.get(rel, np.zeros(len(ALL_VOTE_COLS), np.float32)))
            hashes.append(hashlib.sha256(b).hexdigest())
            files.append(rel)
    x = np.stack(xs) if xs else np.zeros((0, size, size), np.uint8)
    return Split(x, np.asarray(folder, np.int64), np.stack(vs) if vs else np.zeros((0, 10), np.float32), hashes, files)


def fer2013_val_split(hashes: list[str], val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) of FER2013 train for the base model: whole content-hash groups go to one
    side, ``val_frac`` of them to val, drawn by a seeded permutation. Frozen, not the project's
    grouped split (labeler.splitting): the shipped model was trained with this split and its
    base-domain gate set (labeler/data/base_domain_*.npz) is drawn from the val part, which
    scripts/adjust_prior.py and scripts/base_domain_features.py rebuild; tests/test_splitting.py pins it."""
    uniq = sorted(set(hashes))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(uniq))
    n_val = int(round(val_frac * len(uniq)))
    val_groups = {uniq[i] for i in perm[:n_val]}
    is_val = np.asarray([h in val_groups for h in hashes])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


# ----------------------------------------------------------------------------------------------
# augmentation (batch-level)


class Augmenter:
    """Random photometric and geometric changes of a uint8 batch; returns normalised float tensors."""

    def __init__(self, seed: int, scale=(0.80, 1.30), shift=0.10, rot_deg=15.0, p_flip=0.5, brightness=0.2,
                 contrast=(0.65, 1.35), p_blur=0.2, p_downup=0.15, p_jpeg=0.25, jpeg_q=(25, 90), p_cutout=0.25,
                 noise=0.02):
        self.rng = np.random.default_rng(seed + 17)
        self.g = torch.Generator().manual_seed(seed + 29)
        self.scale, self.shift, self.rot = scale, shift, math.radians(rot_deg)
        self.p_flip, self.brightness, self.contrast = p_flip, brightness, contrast
        self.p_blur, self.p_downup, self.p_jpeg, self.jpeg_q = p_blur, p_downup, p_jpeg, jpeg_q
        self.p_cutout, self.noise = p_cutout, noise

    def _u(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=self.g) * (hi - lo) + lo

    def jpeg(self, x: np.ndarray) -> np.ndarray:
        """Re-encode a random fraction of a uint8 batch as JPEG (in place on a copy)."""
        n = len(x)
        sel = np.flatnonzero(self.rng.random(n) < self.p_jpeg)
        if len(sel) == 0:
            return x
        x = x.copy()
        for i in sel:
            q = int(self.rng.integers(self.jpeg_q[0], self.jpeg_q[1] + 1))
            ok, buf = cv2.imencode(".jpg", x[i], [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok:
                x[i] = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        return x

    def __call__(self, xb: np.ndarray) -> torch.Tensor:
        n, h, w = xb.shape
        x = torch.from_numpy(xb).float().div_(255.0).unsqueeze(1)  # N x 1 x H x W in [0, 1]
        # geometry: output pixel p samples input at A p + t (normalised coordinates)
        s = torch.exp(self._u(n, math.log(self.scale[0]), math.log(self.scale[1])))  # >1: face larger
        a = self._u(n, -self.rot, self.rot)
        flip = torch.where(torch.rand(n, generator=self.g) < self.p_flip, -1.0, 1.0)
        tx, ty = self._u(n, -self.shift, self.shift) * 2, self._u(n, -self.shift, self.shift) * 2
        cos, sin = torch.cos(a) / s, torch.sin(a) / s
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        # down-up resampling (small faces upscaled)
        m = torch.rand(n, generator=self.g) < self.p_downup
        if m.any():
            k = int(torch.randint(20, 40, (1,), generator=self.g))
            sub = F.interpolate(x[m], size=(k, k), mode="area")
            x[m] = F.interpolate(sub, size=(h, w), mode="bilinear", align_corners=False)
        # Gaussian blur with a per-sample sigma (grouped conv)
        m = torch.rand(n, generator=self.g) < self.p_blur
        if m.any():
            idx = torch.nonzero(m).flatten()
            sig = self._u(len(idx), 0.4, 1.1)
            r = torch.arange(-2, 3, dtype=torch.float32)
            k1 = torch.exp(-(r[None, :] ** 2) / (2 * sig[:, None] ** 2))
            k1 = k1 / k1.sum(1, keepdim=True)
            k2 = (k1[:, :, None] * k1[:, None, :]).unsqueeze(1)  # n x 1 x 5 x 5
            xi = F.pad(x[idx].transpose(0, 1), (2, 2, 2, 2), mode="replicate")  # 1 x n x H+4 x W+4
            x[idx] = F.conv2d(xi, k2, groups=len(idx)).transpose(0, 1)
        # brightness / contrast / gamma
        c = self._u(n, *self.contrast).view(n, 1, 1, 1)
        b = self._u(n, -self.brightness, self.brightness).view(n, 1, 1, 1)
        mu = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mu) * c + mu + b).clamp_(0, 1)
        gam = torch.exp(self._u(n, math.log(0.7), math.log(1.4))).view(n, 1, 1, 1)
        x = x.pow(gam)
        # JPEG re-encode of a fraction (uint8 round trip)
        xu = (x.squeeze(1) * 255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
        xu = self.jpeg(xu)
        x = torch.from_numpy(xu).float().unsqueeze(1)
        if self.noise > 0:
            x = x + torch.randn(x.shape, generator=self.g) * (self.noise * 255.0) * (torch.rand(n, 1, 1, 1, generator=self.g) < 0.3)
        # cutout
        m = torch.rand(n, generator=self.g) < self.p_cutout
        if m.any():
            for i in torch.nonzero(m).flatten().tolist():
                sz = int(torch.randint(8, 18, (1,), generator=self.g))
                cy, cx = int(torch.randint(0, h, (1,), generator=self.g)), int(torch.randint(0, w, (1,), generator=self.g))
                x[i, :, max(0, cy - sz // 2): cy + sz // 2, max(0, cx - sz // 2): cx + sz // 2] = 127.5
        return (x.clamp_(0, 255) - MEAN) / STD


def to_input(xb: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(xb).float().unsqueeze(1) - MEAN) / STD


