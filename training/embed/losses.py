"""Metric-learning losses: ArcFace (additive angular margin) and triplet with semi-hard mining."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class ArcFace(nn.Module):
    """Cosine logits to one learnt centre per identity, with margin `m` on the true class."""

    def __init__(self, dim: int, classes: int, scale: float = 30.0, margin: float = 0.3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.linear(embeddings, F.normalize(self.weight, dim=1)).clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(cos)
        target = torch.cos(theta + self.margin)
        # Keep the target logit monotonic past pi - m (the usual "easy margin" fix).
        target = torch.where(theta < math.pi - self.margin, target, cos - self.margin * math.sin(self.margin))
        one_hot = F.one_hot(labels, cos.shape[1]).bool()
        logits = torch.where(one_hot, target, cos) * self.scale
        return F.cross_entropy(logits, labels)


def triplet_semihard(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """FaceNet's semi-hard mining: for each anchor-positive pair, the closest negative that is
    still farther than the positive; where there is none, the farthest negative (as
    TensorFlow's triplet_semihard_loss does, to avoid collapse early on)."""
    dist = torch.cdist(embeddings, embeddings)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    losses = []
    for a, p in torch.nonzero(same & ~eye, as_tuple=False):
        d_ap = dist[a, p]
        neg = dist[a][~same[a]]
        if not len(neg):
            continue
        semi = neg[neg > d_ap]
        d_an = semi.min() if len(semi) else neg.max()
        losses.append(F.relu(d_ap - d_an + margin))
    return torch.stack(losses).mean() if losses else embeddings.sum() * 0
