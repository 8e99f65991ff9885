"""The compact FER CNN trained from scratch by ``scripts/train/train_base.py`` (torch only; imported only
under ``labeler/training``).

Input: N x 1 x 48 x 48 gray, (x - 127.5) / 127.5. Outputs: ``logits`` (N x 7, labeler's label order)
and ``embedding`` (N x D, the pooled penultimate features, D = widths[-1]).

Layout (VGG-like, 3x3 convs + BatchNorm + ReLU, every conv bias-free, BN folded into the conv on ONNX
export by the exporter's constant folding):

    stem   conv 1->w0  @48, conv w0->w1 stride 2        -> 24x24
    stage1 conv w1->w1 @24 (x n24), maxpool             -> 12x12
    stage2 conv w1->w2 @12, conv w2->w2 (x n12), maxpool ->  6x6
    stage3 conv w2->w3 @6,  conv w3->w3 (x n6), maxpool  ->  3x3
    head   conv w3->w4 @3 (embedding width), global average pool, dropout, linear w4->7
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

INPUT_SIZE = 48
DEFAULT_WIDTHS = (16, 32, 80, 160, 256)
#: extra 3x3 convs at 24, 12 and 6 px (after the first conv of each stage)
DEFAULT_DEPTHS = (1, 2, 2)


def _cbr(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class BaseFERNet(nn.Module):
    """Compact VGG-style CNN; ``forward`` returns ``(logits, embedding)``."""

    def __init__(self, num_classes: int = 7, widths: Sequence[int] = DEFAULT_WIDTHS, dropout: float = 0.3,
                 depths: Sequence[int] = DEFAULT_DEPTHS):
        super().__init__()
        w0, w1, w2, w3, w4 = (int(w) for w in widths)
        n24, n12, n6 = (int(d) for d in depths)
        self.widths = (w0, w1, w2, w3, w4)
        self.depths = (n24, n12, n6)
        layers: list[nn.Module] = []
        layers += _cbr(1, w0) + _cbr(w0, w1, stride=2)  # 48 -> 24
        for _ in range(n24):
            layers += _cbr(w1, w1)
        layers += [nn.MaxPool2d(2)]  # 24 -> 12
        layers += _cbr(w1, w2)
        for _ in range(n12):
            layers += _cbr(w2, w2)
        layers += [nn.MaxPool2d(2)]  # 12 -> 6
        layers += _cbr(w2, w3)
        for _ in range(n6):
            layers += _cbr(w3, w3)
        layers += [nn.MaxPool2d(2)]  # 6 -> 3
        layers += _cbr(w3, w4)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(w4, num_classes)
        self.embedding_dim = w4
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        emb = torch.flatten(self.pool(f), 1)
        return self.fc(self.dropout(emb)), emb


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_macs(model: BaseFERNet, size: int = INPUT_SIZE) -> int:
    """Multiply-accumulates of one forward pass for one image (convs + linear)."""
    macs = 0
    hooks = []

    def conv_hook(m, inp, out):
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs += int(out.numel() // out.shape[0]) * k

    def lin_hook(m, inp, out):
        nonlocal macs
        macs += m.in_features * m.out_features

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, size, size))
    model.train(was)
    for h in hooks:
        h.remove()
    return macs
