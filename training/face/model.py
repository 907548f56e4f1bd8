"""The face stage's networks, built only from operations that export to ONNX.

`Detector`: a small CenterNet-style network. A strided backbone (stride 32) and a top-down
path back to stride 4 give, per cell, the face-centre heat, the log box size, the centre
offset and coarse landmarks (see `bearid.face.centernet` for the channel layout).
`Refiner`: a small CNN that places the five landmarks on a crop of one face.
"""

from __future__ import annotations

import torch
from torch import nn

from bearid.face.centernet import CHANNELS, REFINER_OUTPUTS


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Detector(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv(3, w // 2, 2), conv(w // 2, w, 2))  # stride 4
        self.c8 = nn.Sequential(conv(w, 2 * w, 2), conv(2 * w, 2 * w))
        self.c16 = nn.Sequential(conv(2 * w, 3 * w, 2), conv(3 * w, 3 * w))
        self.c32 = nn.Sequential(conv(3 * w, 4 * w, 2), conv(4 * w, 4 * w))
        # Top-down path, kept narrow (w channels): stride-4 maps are the costly ones.
        self.lat16 = nn.Conv2d(3 * w, w, 1)
        self.lat8 = nn.Conv2d(2 * w, w, 1)
        self.lat4 = nn.Conv2d(w, w, 1)
        self.top32 = nn.Conv2d(4 * w, w, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = nn.Sequential(conv(w, w), nn.Conv2d(w, CHANNELS, 1))
        nn.init.constant_(self.head[-1].bias[:1], -2.2)  # start with a low face prior

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f4 = self.stem(x)
        f8 = self.c8(f4)
        f16 = self.c16(f8)
        f32 = self.c32(f16)
        p = self.up(self.top32(f32)) + self.lat16(f16)
        p = self.up(p) + self.lat8(f8)
        p = self.up(p) + self.lat4(f4)
        out = self.head(p)
        return torch.cat([torch.sigmoid(out[:, :1]), out[:, 1:]], dim=1)


class Refiner(nn.Module):
    """Landmarks and box of one face, as fractions of its crop."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv(3, w, 2),
            conv(w, w),
            conv(w, 2 * w, 2),
            conv(2 * w, 2 * w),
            conv(2 * w, 4 * w, 2),
            conv(4 * w, 4 * w, 2),
        )
        self.out = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * w * 4 * 4, 128), nn.ReLU(inplace=True), nn.Linear(128, REFINER_OUTPUTS)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)) + 0.5  # fractions of the crop, centred
