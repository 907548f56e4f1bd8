"""The mmod face backend: an imported dlib CNN face detector (bearface's, or dlib's human one)
and its shape predictor, used as they are, as a face stage of the results tree.

The stage's model/ folder holds what export and `bearid face detect` need, so the original
files may move: face.dat (the detector network), landmarks.npz (the shape predictor's
arrays) and mmod.json (the detector's settings and the landmarks' names).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from bearid.dlibformat.faces import skip_hipsterizer_images
from bearid.dlibformat.network import Con, Network, Pool, read_network, read_network_file
from bearid.dlibformat.reader import DlibFormatError, Reader
from bearid.dlibformat.shape_predictor import read_shape_predictor
from bearid.errors import BearIDError
from bearid.face.mmod import MmodFinder, MmodSpec, output_to_input
from bearid.face.shape_predictor import ShapeModel
from bearid.fsio import atomic_write_bytes, atomic_write_text
from bearid.training.config import CHIP_TEMPLATES, FaceConfig
from bearid.training.dlibnet import DlibNet
from bearid.training.torchnet import network

# Landmark names by the shape predictor's number of parts: bearface's six (its training XML's
# parts in dlib's sorted order), and dlib's 5-point human model (the dlib_face chip template).
PARTS = {6: ("head_top", "lear", "leye", "nose", "rear", "reye"), 5: CHIP_TEMPLATES["dlib_face"][1]}


def spec_of(net: Network, cfg: FaceConfig) -> MmodSpec:
    """The detector's settings: its windows, normalisation and geometry from the file."""
    if net.mmod is None or net.input.pyramid is None:
        raise BearIDError(f"{cfg.init}: a dlib {net.architecture} network, not an MMOD detector on an image pyramid")
    geometry = [(op.stride[0], op.padding[0], op.weight.shape[2]) if isinstance(op, Con) else
                (op.stride[0], op.padding[0], op.size[0]) for op in net.ops if isinstance(op, Con | Pool)]  # fmt: skip
    return MmodSpec(
        windows=tuple((w.width, w.height) for w in net.mmod.windows),
        mean=net.input.mean,
        output_to_input=output_to_input(geometry),
        padding=net.input.pyramid[0],
        outer_padding=net.input.pyramid[1],
        nms_iou=net.mmod.nms_iou,
        nms_covered=net.mmod.nms_covered,
        threshold=cfg.threshold,
    )


def import_model(cfg: FaceConfig, model_dir: Path) -> None:
    """Read the detector (and its shape predictor) named by `cfg` into `model_dir`."""
    net, rest = read_network_file(Path(cfg.init))  # type: ignore[arg-type]
    if net.mmod and net.mmod.bounding_box_regression:
        raise BearIDError(f"{cfg.init}: a detector with bounding-box regression, which BearID does not run yet")
    spec = spec_of(net, cfg)
    if cfg.landmarks:
        shapes = read_shape_predictor(Reader.open(Path(cfg.landmarks))).check()
    elif rest.left:  # bearface's file: the shape predictor follows the network
        try:
            shapes = read_shape_predictor(rest).check()
        except DlibFormatError as exc:
            raise BearIDError(f"{cfg.init}: after the network, no shape predictor BearID reads ({exc}); "
                              "give the landmarks file (landmarks: SHAPE_PREDICTOR.dat)") from None  # fmt: skip
        if rest.left:  # the dog hipsterizer's layout: net >> sp >> glasses >> mustache
            skip_hipsterizer_images(rest)
    else:
        raise BearIDError(f"{cfg.init}: holds no shape predictor; give one (landmarks: SHAPE_PREDICTOR.dat)")
    parts = tuple(cfg.parts) if cfg.parts else PARTS.get(shapes.parts)
    if parts is None or len(parts) != shapes.parts:
        raise BearIDError(
            f"the shape predictor has {shapes.parts} parts: name them (parts: [...], {shapes.parts} names)"
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(model_dir / "face.dat", Reader.open(Path(cfg.init)).data[: net.end])  # type: ignore[arg-type]
    shapes.save(model_dir / "landmarks.npz")
    atomic_write_text(model_dir / "mmod.json", json.dumps({"spec": asdict(spec), "parts": list(parts)}, indent=1))


def load_finder(model_dir: Path) -> MmodFinder:
    """The face finder of an mmod face stage's model/ folder, its network run by PyTorch."""
    net, module = load_network(model_dir)
    record = json.loads((model_dir / "mmod.json").read_text())
    spec = MmodSpec(**{k: tuple(map(tuple, v)) if k == "windows" else tuple(v) if isinstance(v, list) else v
                       for k, v in record["spec"].items()})  # fmt: skip
    return MmodFinder(network(module), ShapeModel.load(model_dir / "landmarks.npz"), spec, tuple(record["parts"]))


def load_network(model_dir: Path) -> tuple[Network, DlibNet]:
    r = Reader.open(model_dir / "face.dat")
    net = read_network(r)
    return net, DlibNet(net).eval()
