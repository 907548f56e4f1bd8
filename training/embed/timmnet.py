"""timm backbones for the embed stage (`backbone: timm:NAME`): any timm model's pooled
features, then, where the stage trains, a projection to `dim` (ArcFace and/or triplet on top,
as for the other networks). Used as it is (`steps: 0`, the way MegaDescriptor is mostly used)
the pooled features are the descriptor.

Weights come from a local file (`weights: FILE.safetensors` or `.pth`), checked tensor by
tensor against the network, or from the model hub (`weights: hub`, timm's own loading, which
honours HF_HUB_OFFLINE). Without weights the backbone starts from random numbers.
See docs/training.md, "Backbones".
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from bearid.errors import BearIDError
from bearid.preprocess import Normalisation

PREFIX = "timm:"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def create(name: str, input_size: int, hub: bool = False) -> nn.Module:
    """timm's `name` without its classifier (pooled features out), for `input_size` chips."""
    try:
        import timm
    except ImportError:
        raise BearIDError(f"backbone timm:{name} needs timm: pip install 'bearid[train]'") from None
    try:
        try:  # transformers are built for one input size; CNNs take any, and no img_size
            return timm.create_model(name, pretrained=hub, num_classes=0, img_size=input_size)
        except TypeError:
            return timm.create_model(name, pretrained=hub, num_classes=0)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise BearIDError(f"backbone timm:{name}: timm has no such model (timm.list_models() lists them)") from None
        raise
    except OSError as exc:  # the hub unreachable, or offline with nothing cached
        first = str(exc).splitlines()[0]
        raise BearIDError(
            f"backbone timm:{name}, weights: hub: cannot fetch the weights ({first}); "
            "offline, download them once elsewhere and give the file as weights: FILE.safetensors"
        ) from None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors or PyTorch weights file (a bare state dict, or one kept
    under "state_dict" or "model")."""
    path = Path(path)
    if path.suffix not in WEIGHT_SUFFIXES:
        raise BearIDError(f"{path}: weights are a {' or '.join(WEIGHT_SUFFIXES)} file")
    if not path.is_file():
        raise BearIDError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # each format has its own errors for a damaged file
        raise BearIDError(f"{path}: not a readable weights file ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BearIDError(f"{path}: holds no state dict of tensors")
    return state


def load_weights(backbone: nn.Module, name: str, path: Path) -> None:
    """Load `path` into `backbone`, refusing a file that does not fit: the error names the
    first missing, misshapen or foreign tensor. The model's own checkpoint filter runs first
    (timm's, e.g. resizing a ViT's position embedding to the chip size)."""
    state = read_weights(path)
    module = sys.modules.get(type(backbone).__module__)
    if hasattr(module, "checkpoint_filter_fn"):
        try:
            state = module.checkpoint_filter_fn(state, backbone)
        except Exception:  # a filter for another layout: compare the file as it is
            pass
    own = backbone.state_dict()
    for key, tensor in own.items():
        if key not in state:
            raise BearIDError(f"{path}: has no tensor {key} of timm:{name} (is it the weights of another model?)")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise BearIDError(
                f"{path}: tensor {key} is {tuple(state[key].shape)}, timm:{name} wants {tuple(tensor.shape)}"
            )
    classifier = backbone.pretrained_cfg.get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    foreign = [k for k in state if k not in own and not k.startswith(tuple(c + "." for c in classifier))]
    if foreign:
        raise BearIDError(f"{path}: tensor {foreign[0]} is not part of timm:{name} ({len(foreign)} such)")
    backbone.load_state_dict({k: state[k] for k in own})


def normalisation(cfg: dict) -> Normalisation:
    """The mean and deviation a backbone's pretraining used (timm's pretrained config)."""
    return Normalisation(tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225))))


def recorded_normalisation(name: str, input_size: int) -> Normalisation:
    """`normalisation` of timm's record for `name`, without building the network where timm
    has the record (building a Swin-L only to read two triples takes seconds and gigabytes)."""
    import timm

    cfg = timm.get_pretrained_cfg(name) if timm.is_model(name.split(".")[0]) else None
    return normalisation(cfg.to_dict() if cfg is not None else create(name, input_size).pretrained_cfg)


class TimmEmbedNet(nn.Module):
    """A timm backbone's pooled features, projected to `dim` (None: no projection)."""

    def __init__(self, name: str, input_size: int, dim: int | None, backbone: nn.Module | None = None):
        super().__init__()
        self.name = name
        self.backbone = backbone if backbone is not None else create(name, input_size)
        features = self.backbone.num_features
        self.head = nn.Sequential(nn.Linear(features, dim), nn.BatchNorm1d(dim)) if dim else None

    @property
    def dim(self) -> int:
        return self.head[0].out_features if self.head is not None else self.backbone.num_features

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters()) if self.head is not None else []

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone(x)
        return self.head(f) if self.head is not None else f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.descriptor(x), dim=1)
