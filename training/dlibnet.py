"""A dlib network as a PyTorch module: the layers `bearid.dlibformat` reads, run in order
from the input out, with dlib's tags, skips and zero-padded additions, so the module gives
dlib's outputs (checked against dlib itself in the tests), exports to ONNX like BearID's
own networks, and can be fine-tuned (its parameters are ordinary ones; dlib's batch-norm
layers are already folded into per-channel affine ones, as dlib runs them).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from bearid.dlibformat.network import AddPrev, Affine, Con, Fc, Network, Op, Pool, Relu, Skip, Tag


def _param(a) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(a.copy()))


def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b, each zero-padded at the high end of every dimension to the larger shape
    (dlib's add_prev)."""
    if a.shape == b.shape:
        return a + b
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]

    def pad(t: torch.Tensor) -> torch.Tensor:
        amounts = []
        for dim in reversed(range(1, t.dim())):  # F.pad takes the last dimension first
            amounts += [0, shape[dim] - t.shape[dim]]
        return F.pad(t, amounts)

    return pad(a) + pad(b)


class DlibNet(nn.Module):
    """The network's output for inputs already normalised as dlib's input layer does."""

    def __init__(self, net: Network):
        super().__init__()
        self.kinds: list[tuple] = []
        self.params = nn.ParameterList()
        for op in net.ops:
            self.kinds.append(self._add(op))

    @classmethod
    def empty(cls, kinds: list[tuple], shapes: list) -> DlibNet:
        """The network of `kinds` (what `.kinds` held) with zero parameters of `shapes`, to load
        a saved state into."""
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self.kinds = [tuple(k) for k in kinds]
        self.params = nn.ParameterList([nn.Parameter(torch.zeros(tuple(s))) for s in shapes])
        return self

    def _add(self, op: Op) -> tuple:
        def keep(a) -> int:
            self.params.append(_param(a))
            return len(self.params) - 1

        if isinstance(op, Con):
            return ("con", keep(op.weight), None if op.bias is None else keep(op.bias), op.stride, op.padding)
        if isinstance(op, Affine):
            return ("affine", keep(op.gamma), keep(op.beta))
        if isinstance(op, Relu):
            return ("relu",)
        if isinstance(op, Pool):
            return ("pool", op.kind, op.size, op.stride, op.padding)
        if isinstance(op, Fc):
            return ("fc", keep(op.weight), None if op.bias is None else keep(op.bias))
        if isinstance(op, Tag):
            return ("tag", op.n)
        if isinstance(op, Skip):
            return ("skip", op.n)
        if isinstance(op, AddPrev):
            return ("add_prev", op.n)
        raise TypeError(op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        tags: dict[int, torch.Tensor] = {}
        for kind, *a in self.kinds:
            if kind == "con":
                x = F.conv2d(x, p[a[0]], None if a[1] is None else p[a[1]], a[2], a[3])
            elif kind == "affine":
                x = x * p[a[0]].view(1, -1, 1, 1) + p[a[1]].view(1, -1, 1, 1)
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "pool":
                how, size, stride, padding = a
                if size == (0, 0):  # the whole input: a global pool
                    x = x.mean(dim=(2, 3), keepdim=True) if how == "avg" else x.amax(dim=(2, 3), keepdim=True)
                elif how == "max":
                    x = F.max_pool2d(x, size, stride, padding)
                else:
                    x = F.avg_pool2d(x, size, stride, padding, count_include_pad=False)
            elif kind == "fc":
                x = x.flatten(1) @ p[a[0]]
                if a[1] is not None:
                    x = x + p[a[1]]
            elif kind == "tag":
                tags[a[0]] = x
            elif kind == "skip":
                x = tags[a[0]]
            elif kind == "add_prev":
                x = padded_add(x, tags[a[0]])
        return x
