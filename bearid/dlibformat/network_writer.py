"""A dlib network file written back with new parameter values (a detector fine-tuned in
PyTorch), so dlib's own tools (`dlib.cnn_face_detection_model_v1`, bearface.cpp) run it.

The file is the imported one, byte for byte, except the values of each layer's parameter
tensor, put where the reader found them (`network.Source`): the layers' sizes, the loss
layer's settings and whatever follows the network (bearface's shape predictor) stay as they
were, so dlib reads the file exactly as it read the original.

A `bn_con` layer is run by dlib (and held by BearID's `DlibNet`) in its folded form, a scale
`g = gamma / sqrt(var + eps)` and a shift `b = beta - g * mean`, in float32 (dlib's
`affine_(const bn_&)`). Its running statistics and eps are kept, so the file still loads
into a training network of `bn_con` layers, and gamma and beta are solved for: `gamma = g *
sqrt(var + eps)`, `beta = b + g * mean`, each moved a few float32 steps to the value dlib's
arithmetic maps back onto `g` and `b` exactly where there is one (else the nearest). Channels
whose scale and shift did not change keep their bytes, so unchanged parameters give the
original file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bearid.dlibformat.network import Affine, Con, Fc, Network, Op, read_network
from bearid.dlibformat.reader import Reader
from bearid.errors import BearIDError
from bearid.fsio import atomic_write_bytes

STEPS = 4  # float32 steps either side tried when solving a bn_con's gamma and beta


def parameters(net: Network) -> list[tuple[str, int, np.ndarray]]:
    """(what it is, its op's index, its values) for each parameter, in `DlibNet`'s order: each
    convolution's weight then bias, each affine's scale then shift, each fc's weight then bias."""
    out: list[tuple[str, int, np.ndarray]] = []
    for i, op in enumerate(net.ops):
        if isinstance(op, Con | Fc):
            kind = "convolution" if isinstance(op, Con) else "fully connected layer"
            out.append((f"the weights of the {kind}", i, op.weight))
            if op.bias is not None:
                out.append((f"the biases of the {kind}", i, op.bias))
        elif isinstance(op, Affine):
            kind = "batch-norm layer (folded)" if op.source and op.source.running else "affine layer"
            out += [(f"the scales of the {kind}", i, op.gamma), (f"the shifts of the {kind}", i, op.beta)]
    return out


def _checked(net: Network, params: Sequence[np.ndarray], name: str) -> list[np.ndarray]:
    """`params` as float32 arrays, once each has the place and shape of the network's own."""
    own = parameters(net)
    if len(params) != len(own):
        raise BearIDError(
            f"{name}: {len(params)} parameter arrays for a network that holds {len(own)} "
            f"({len(net.ops)} layers of the {net.architecture} architecture): not this network's parameters"
        )
    out = []
    for k, (given, (what, i, values)) in enumerate(zip(params, own)):
        a = np.asarray(given, dtype=np.float32)
        if a.shape != values.shape:
            raise BearIDError(
                f"{name}: parameter {k} ({what}, layer {i} from the input) is {tuple(a.shape)}, the file's is "
                f"{tuple(values.shape)}: not this network's parameters"
            )
        if not np.isfinite(a).all():
            raise BearIDError(f"{name}: parameter {k} ({what}, layer {i} from the input) holds NaN or infinity")
        out.append(a)
    return out


def _nudged(start: np.ndarray, back, target: np.ndarray) -> np.ndarray:
    """Per element, the float32 within STEPS steps of `start` whose `back` (dlib's float32
    arithmetic) is nearest `target`, the nearest step to `start` among equals."""
    best, err = start, np.abs(back(start).astype(np.float64) - target)
    down, up = start, start
    for _ in range(STEPS):
        down, up = np.nextafter(down, np.float32(-np.inf)), np.nextafter(up, np.float32(np.inf))
        for cand in (down, up):
            e = np.abs(back(cand).astype(np.float64) - target)
            better = e < err
            best, err = np.where(better, cand, best), np.where(better, e, err)
    return best.astype(np.float32)


def unfold_batch_norm(
    scale: np.ndarray, shift: np.ndarray, running: tuple[np.ndarray, np.ndarray, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The (gamma, beta) of a bn_con with these running statistics that dlib folds into
    `scale` and `shift` (exactly, where float32 allows)."""
    mean, var, eps = running
    root = np.sqrt(var.astype(np.float32) + np.float32(eps))  # float32, as dlib computes it
    gamma = _nudged((scale.astype(np.float64) * root).astype(np.float32), lambda g: g / root, scale)
    g = gamma / root  # the scale dlib will run
    product = g * mean.astype(np.float32)
    beta = _nudged((shift.astype(np.float64) + product).astype(np.float32), lambda b: b - product, shift)
    return gamma, beta


def _values(op: Op, given: list[np.ndarray], stored: np.ndarray) -> np.ndarray:
    """The layer's parameter tensor (flat, float32) holding `given`, the rest as `stored`."""
    flat = stored.copy()
    if isinstance(op, Con | Fc):
        n = op.weight.size
        flat[:n] = given[0].ravel()
        if op.bias is not None:
            flat[n : n + op.bias.size] = given[1]
        return flat
    assert isinstance(op, Affine) and op.source is not None
    k = op.gamma.size
    scale, shift = given
    if op.source.running is None:
        flat[:k], flat[k : 2 * k] = scale, shift
        return flat
    gamma, beta = unfold_batch_norm(scale, shift, op.source.running)
    same = (scale.view(np.uint32) == op.gamma.view(np.uint32)) & (shift.view(np.uint32) == op.beta.view(np.uint32))
    flat[:k] = np.where(same, stored[:k], gamma)
    flat[k : 2 * k] = np.where(same, stored[k : 2 * k], beta)
    return flat


def write_network(data: bytes, params: Sequence[np.ndarray], name: str = "the network") -> bytes:
    """`data` (a dlib network file, and whatever follows the network) with the network's
    parameters replaced by `params` (in `DlibNet`'s order); every other byte as it was."""
    net = read_network(Reader(data, name))
    given = _checked(net, params, name)
    chunks, at, k = [], 0, 0
    for op in net.ops:
        if not isinstance(op, Con | Affine | Fc):
            continue
        n = 2 if isinstance(op, Affine) or op.bias is not None else 1
        mine, k = given[k : k + n], k + n
        if op.source is None:
            raise BearIDError(f"{name}: a layer read without its place in the file: cannot write it back")
        span = op.source.params
        if span.version != 2:
            raise BearIDError(f"{name}: the tensor at byte {span.start} is in dlib's pre-release form "
                              f"(version {span.version}): BearID writes back only version 2 tensors")  # fmt: skip
        stored = np.frombuffer(data[span.start : span.end], dtype="<f4").astype(np.float32)
        chunks += [data[at : span.start], _values(op, mine, stored).astype("<f4").tobytes()]
        at = span.end
    chunks.append(data[at:])
    out = b"".join(chunks)
    _check_written(out, given, name)
    return out


def _check_written(out: bytes, given: list[np.ndarray], name: str) -> None:
    """Read the written bytes back: the network BearID (and dlib) will run must hold `given`.
    Convolutions and affines are exact; a folded batch norm within float32 rounding."""
    back = parameters(read_network(Reader(out, f"{name} (as written)")))
    for k, ((what, i, values), want) in enumerate(zip(back, given)):
        err = float(np.max(np.abs(values - want) / np.maximum(np.abs(want), 1e-3), initial=0.0))
        if err > 1e-5:
            raise BearIDError(f"{name}: parameter {k} ({what}, layer {i}) reads back {err:.2g} off what was written")


def write_network_file(source: Path, params: Sequence[np.ndarray], target: Path) -> Path:
    """The dlib network file `source` with `params` written over its own, saved as `target`
    (atomically)."""
    data = Reader.open(Path(source)).data
    atomic_write_bytes(Path(target), write_network(data, params, str(source)))
    return Path(target)
