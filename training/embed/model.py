"""The embedding networks: BearID's small ResNet (`builtin`), dlib's metric ResNet
(`dlib_resnet`, bearembed's network, read from a dlib file) or a timm backbone (`timm:NAME`,
training/embed/timmnet.py), each ending in an L2-normalised vector (128-D by default).

`descriptor` is that vector before normalisation: what the network exports and what the
embedding files keep (as direction and length), since the open-set score uses the length.
`build` makes the network a config names, from its `init` where it has one; `save` and
`load` keep any of them in one embed.pt. Each says which of its parameters are its head (the
last projection), which `freeze` trains alone and `backbone_lr` leaves at the full rate."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from bearid.errors import BearIDError
from bearid.preprocess import Normalisation, dlib_normalisation
from bearid.training.config import EmbedConfig
from bearid.training.dlibnet import DlibNet
from bearid.training.embed import timmnet
from bearid.training.embed.timmnet import TimmEmbedNet


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


class EmbedNet(nn.Module):
    def __init__(self, width: int = 32, dim: int = 128):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(
            BasicBlock(w, w, 1), BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 8 * w, 2)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * w, dim)
        self.bn = nn.BatchNorm1d(dim)

    @property
    def dim(self) -> int:
        return self.fc.out_features

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.fc.parameters(), *self.bn.parameters()]

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(self.pool(self.stages(self.stem(x))).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.descriptor(x), dim=1)


# DlibEmbedNet.step_scales' floor: below dlib's smallest weights; its convolutions' biases
# (RMS 1e-8 to 1e-7: a bias before batch norm has no gradient) stay as good as fixed.
STEP_FLOOR = 1e-6


class DlibEmbedNet(nn.Module):
    """dlib's metric ResNet as an embedding network: its output is the descriptor."""

    def __init__(self, body: DlibNet):
        super().__init__()
        self.body = body

    @property
    def dim(self) -> int:
        return self.body.params[self._fc[1]].shape[1]

    @property
    def _fc(self) -> tuple:
        return next(k for k in reversed(self.body.kinds) if k[0] == "fc")

    def head_parameters(self) -> list[nn.Parameter]:
        return [self.body.params[i] for i in self._fc[1:3] if i is not None]

    def step_scales(self) -> dict[int, float]:
        """Each parameter's step size, as a share of the learning rate: its RMS as it is now
        (at least STEP_FLOOR, so that no rate is zero). dlib trained this network
        with batch norm after every convolution, which makes a convolution's output blind to
        its weights' scale; folded into fixed affine layers (`bn_con` in inference form), the
        scale counts, and it is tiny: convolution weights have RMS 6e-4 to 7e-3 beside affine
        scales of 3 to 20. Adam moves every parameter by about the learning rate whatever its
        gradient, so one rate for all is a 10% change per step to the deepest convolutions at
        lr 5e-5 and nothing to the affine scales. Scaled by its RMS, each tensor changes by
        the same share per step (Adafactor's relative step; LAMB's layer-wise trust ratio),
        as it did under batch norm. Keyed by `id(parameter)`."""
        return {id(p): max(float(p.detach().pow(2).mean().sqrt()), STEP_FLOOR) for p in self.body.params}

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.descriptor(x), dim=1)


EmbeddingNet = EmbedNet | DlibEmbedNet | TimmEmbedNet


class Descriptor(nn.Module):
    """An embedding network whose output is its descriptor (for export)."""

    def __init__(self, net: EmbeddingNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.descriptor(x)


def build(cfg: EmbedConfig) -> tuple[EmbeddingNet, Normalisation]:
    """The network `cfg` names, and how its inputs are normalised: from `cfg.init` (a dlib
    network file, or an embed.pt an earlier stage saved) where it is given."""
    if cfg.init and Path(cfg.init).suffix == ".pt":
        net, _, norm = load_file(Path(cfg.init))
        if cfg.backbone != _backbone(net):
            raise BearIDError(f"{cfg.init}: holds a {_backbone(net)} network, the config names {cfg.backbone}")
        return net.train(), norm
    if cfg.backbone.startswith(timmnet.PREFIX):
        name = cfg.backbone.removeprefix(timmnet.PREFIX)
        backbone = timmnet.create(name, cfg.input_size, hub=cfg.weights == "hub")
        if cfg.weights and cfg.weights != "hub":
            timmnet.load_weights(backbone, name, Path(cfg.weights))
        net = TimmEmbedNet(name, cfg.input_size, cfg.dim if cfg.steps else None, backbone)
        return net.train(), _timm_normalisation(cfg, backbone)
    if cfg.backbone == "dlib_resnet":
        from bearid.dlibformat.network import read_network_file

        network, _ = read_network_file(Path(cfg.init))  # type: ignore[arg-type]
        if network.architecture != "dlib_resnet":
            raise BearIDError(f"{cfg.init}: a dlib {network.architecture} network, not the metric ResNet")
        if network.input.size not in (None, (cfg.input_size, cfg.input_size)):
            raise BearIDError(f"{cfg.init}: takes {network.input.size} chips, the config gives {cfg.input_size}")
        return DlibEmbedNet(DlibNet(network)), dlib_normalisation(network.input.mean)
    if cfg.init:
        raise BearIDError(f"{cfg.init}: the builtin network starts from an embed.pt (or from nothing)")
    return EmbedNet(cfg.width, cfg.dim), Normalisation()


def normalisation_of(cfg: EmbedConfig) -> Normalisation:
    """How the inputs of the network `cfg` names are normalised (without building it)."""
    if cfg.init and Path(cfg.init).suffix == ".pt":
        return load_file(Path(cfg.init))[2]
    if cfg.backbone == "dlib_resnet":
        from bearid.dlibformat.network import read_network_file

        return dlib_normalisation(read_network_file(Path(cfg.init))[0].input.mean)  # type: ignore[arg-type]
    if cfg.backbone.startswith(timmnet.PREFIX):
        norm = timmnet.recorded_normalisation(cfg.backbone.removeprefix(timmnet.PREFIX), cfg.input_size)
        return Normalisation(tuple(cfg.mean or norm.mean), tuple(cfg.std or norm.std))
    return Normalisation()


def _timm_normalisation(cfg: EmbedConfig, backbone: nn.Module) -> Normalisation:
    norm = timmnet.normalisation(backbone.pretrained_cfg)
    return Normalisation(tuple(cfg.mean or norm.mean), tuple(cfg.std or norm.std))


def _backbone(net: EmbeddingNet) -> str:
    if isinstance(net, TimmEmbedNet):
        return timmnet.PREFIX + net.name
    return "dlib_resnet" if isinstance(net, DlibEmbedNet) else "builtin"


def save_file(path: Path, net: EmbeddingNet, norm: Normalisation, input_size: int, classes: list[str]) -> None:
    from bearid.fsio import atomic_path

    record = {"backbone": _backbone(net), "state": net.state_dict(), "dim": net.dim, "input_size": input_size,
              "classes": classes, "norm": norm.record()}  # fmt: skip
    if isinstance(net, EmbedNet):
        record["width"] = net.stem[0].out_channels
    elif isinstance(net, TimmEmbedNet):
        record["head"] = net.head is not None
    else:
        record["kinds"] = net.body.kinds
    record["state"] = {k: v.detach().cpu() for k, v in record["state"].items()}
    with atomic_path(path) as tmp:
        torch.save(record, tmp)


def load_file(path: Path) -> tuple[EmbeddingNet, int, Normalisation]:
    """(network in eval mode, its input size, its normalisation) from an embed.pt."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise BearIDError(f"{path}: not an embed.pt BearID saved ({exc})") from None
    backbone = state.get("backbone", "builtin")
    if backbone.startswith(timmnet.PREFIX):
        name, head = backbone.removeprefix(timmnet.PREFIX), state["dim"] if state["head"] else None
        net = TimmEmbedNet(name, state["input_size"], head)
    elif backbone == "dlib_resnet":
        shapes = {k.removeprefix("body.params."): v.shape for k, v in state["state"].items()}
        net: EmbeddingNet = DlibEmbedNet(DlibNet.empty(state["kinds"], [shapes[str(i)] for i in range(len(shapes))]))
    else:
        net = EmbedNet(state["width"], state["dim"])
    try:
        net.load_state_dict(state["state"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise BearIDError(f"{path}: its weights do not fit its network ({first})") from None
    return net.eval(), state["input_size"], Normalisation.of(state.get("norm"))
