"""dlib DNN files (dlib/dnn/core.h, layers.h, input.h, loss.h), read into plain layers.

A network file is the loss layer, then one version number per wrapped layer from the
outermost in (2: a layer, 1: a tag or a skip, 3: the layer on the input), then the input
layer, then each layer's parameters from the input out. Tags and skips leave no mark but
their version, and `add_prev` does not say which tag it adds: the file is read against the
architectures in `ARCHITECTURES` (dlib's and the original BearID's), which say what each
position is. Batch-norm layers are read in their inference form, as dlib itself converts
them: a per-channel scale and shift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bearid.dlibformat.reader import DlibFormatError, Reader, TensorSpan


# -- the layers, in a form any runtime can build from ------------------------------------
@dataclass(eq=False)
class Source:
    """Where a layer's parameter tensor lies in the file it was read from, so a writer can put
    new values there (`network_writer`); a bn_con also keeps its running statistics and eps,
    which its folded scale and shift were computed from."""

    params: TensorSpan
    running: tuple[np.ndarray, np.ndarray, float] | None = None  # bn_con: running means, variances, eps


@dataclass
class Con:
    weight: np.ndarray  # out x in x rows x cols
    bias: np.ndarray | None
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]
    source: Source | None = field(default=None, repr=False, compare=False)


@dataclass
class Affine:
    """Per-channel scale and shift (dlib's affine_, or a bn_con in inference form)."""

    gamma: np.ndarray
    beta: np.ndarray
    source: Source | None = field(default=None, repr=False, compare=False)


@dataclass
class Relu:
    pass


@dataclass
class Pool:
    kind: str  # max | avg
    size: tuple[int, int]  # (rows, cols); 0: the whole input
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass
class Fc:
    weight: np.ndarray  # inputs x outputs
    bias: np.ndarray | None
    source: Source | None = field(default=None, repr=False, compare=False)


@dataclass
class Tag:
    n: int


@dataclass
class Skip:
    n: int


@dataclass
class AddPrev:
    """The output plus that of the nearest tag `n` below, each zero-padded to the larger
    shape (dlib's add_prev: channels or rows that only one side has are that side's)."""

    n: int


Op = Con | Affine | Relu | Pool | Fc | Tag | Skip | AddPrev


@dataclass
class Input:
    mean: tuple[float, float, float]  # RGB subtracted before dividing by 256
    size: tuple[int, int] | None = None  # a fixed input (input_rgb_image_sized)
    pyramid: tuple[int, int] | None = None  # (padding, outer padding) of the tiled image pyramid


@dataclass
class DetectorWindow:
    width: int
    height: int
    label: str = ""


@dataclass
class MmodOptions:
    windows: list[DetectorWindow]
    nms_iou: float
    nms_covered: float
    bounding_box_regression: bool = False
    # What training the detector further needs (dlib's mmod_options, with its defaults).
    loss_per_false_alarm: float = 1.0
    loss_per_missed_target: float = 1.0
    truth_match_iou: float = 0.5  # a detection hits a truth box above this IoU
    ignore_iou: float = 0.5  # a detection on a box marked ignore is no false alarm (dlib's overlaps_ignore)
    ignore_covered: float = 0.95


@dataclass
class Network:
    architecture: str  # a key of ARCHITECTURES
    loss: str  # metric | mmod
    input: Input
    ops: list[Op]  # from the input out
    mmod: MmodOptions | None = None
    metric: dict = field(default_factory=dict)  # loss_metric: margin, distance threshold
    end: int = 0  # the byte after the network (a file may hold more objects)


# -- the architectures BearID reads, from the input out ------------------------------------
def _ares(down: bool) -> list[str]:
    """A residual block of dlib's metric ResNet (dnn_face_recognition_ex.cpp): two 3x3 convs,
    added to the input (average-pooled 2x2 when the block downsamples)."""
    block = ["tag1", "con", "affine", "relu", "con", "affine"]
    return block + (["tag2", "skip1", "avg_pool", "add_prev2", "relu"] if down else ["add_prev1", "relu"])


_RESNET = (
    ["con", "affine", "relu", "max_pool"]
    + _ares(False) * 3
    + _ares(True)
    + _ares(False) * 3
    + _ares(True)
    + _ares(False) * 2
    + _ares(True)
    + _ares(False) * 2
    + _ares(True)
    + ["avg_pool", "fc"]
)
_MMOD = ["con", "affine", "relu"] * 6 + ["con"]

ARCHITECTURES = {
    "dlib_resnet": ("metric", _RESNET),  # dlib's face ResNet; bearembed's network
    "dlib_mmod": ("mmod", _MMOD),  # dlib's CNN face detector; bearface's network
}

_LOSSES = ("loss_metric_", "loss_metric_2", "loss_mmod_")
_INPUTS = ("input_rgb_image", "input_rgb_image_sized", "input_rgb_image_pyramid", "input_rgb_image_pyramid2")
_FAMILY = {
    "con_4": "con", "con_5": "con", "con_6": "con",
    "affine_": "affine", "affine_2": "affine", "bn_con2": "affine",
    "relu_": "relu", "relu_2": "relu",
    "max_pool_2": "max_pool", "avg_pool_2": "avg_pool",
    "add_prev_": "add_prev",
    "fc_2": "fc", "fc_3": "fc",
}  # fmt: skip


def _multipliers(r: Reader) -> None:
    for _ in range(4):  # learning rate and weight decay multipliers: training only
        r.number("a learning-rate multiplier")


def _layer(r: Reader) -> tuple[str, object]:
    """One layer's details: (family, the layer or None where the architecture says more)."""
    tag = r.tag(tuple(_FAMILY), "a layer")
    family = _FAMILY[tag]
    if family == "con":
        params = r.tensor("a convolution's parameters")
        span = r.last_tensor
        filters, rows, cols = (r.integer("a convolution's size") for _ in range(3))
        stride = (r.integer("a stride"), r.integer("a stride"))
        padding = (r.integer("a padding"), r.integer("a padding"))
        weights, biases = r.alias("the filters"), r.alias("the biases")
        _multipliers(r)
        use_bias = r.flag("use_bias") if tag in ("con_5", "con_6") else True
        if tag == "con_6":
            r.flag("use_relu")
        flat = params.ravel()
        n = int(np.prod(weights))
        if weights[0] != filters or weights[2:] != (rows, cols) or flat.size < n:
            raise r.fail(f"a convolution's filters {weights} do not fit its size {filters}x{rows}x{cols}")
        bias = flat[n : n + filters].copy() if use_bias and int(np.prod(biases)) else None
        return family, Con(flat[:n].reshape(weights).copy(), bias, stride, padding, Source(span))  # type: ignore[arg-type]
    if family == "affine":
        if tag == "bn_con2":
            params = r.tensor("batch-norm parameters")
            span = r.last_tensor
            gamma_v, _beta_v = r.alias("gamma"), r.alias("beta")
            for name in ("means", "inverse deviations"):
                r.tensor(f"batch-norm {name}")
            mean, var = r.tensor("running means").ravel(), r.tensor("running variances").ravel()
            r.uint("updates")
            r.uint("window")
            _multipliers(r)
            eps = r.number("eps")
            k = int(np.prod(gamma_v))
            gamma, beta = params.ravel()[:k], params.ravel()[k : 2 * k]
            scale = (gamma / np.sqrt(var + np.float32(eps))).astype(np.float32)  # dlib's affine_(const bn_&)
            source = Source(span, (mean, var, eps))  # type: ignore[arg-type]
            return family, Affine(scale, (beta - scale * mean).astype(np.float32), source)
        params = r.tensor("affine parameters")
        span = r.last_tensor
        gamma_v, _beta_v = r.alias("gamma"), r.alias("beta")
        mode = r.integer("mode")
        if tag == "affine_2":
            r.flag("disabled")
        if mode != 0:
            raise r.fail("an affine layer in fc mode (BearID reads the convolutional mode)")
        k = int(np.prod(gamma_v))
        return family, Affine(params.ravel()[:k].copy(), params.ravel()[k : 2 * k].copy(), Source(span))  # type: ignore[arg-type]
    if family == "relu":
        if tag == "relu_2" and r.flag("disabled"):
            raise r.fail("a disabled relu (a network fused by dlib): not one BearID reads")
        return family, Relu()
    if family in ("max_pool", "avg_pool"):
        rows, cols = r.integer("a pool size"), r.integer("a pool size")
        stride = (r.integer("a stride"), r.integer("a stride"))
        padding = (r.integer("a padding"), r.integer("a padding"))
        return family, Pool(family.removesuffix("_pool"), (rows, cols), stride, padding)
    if family == "add_prev":
        return family, None
    outputs, inputs = r.uint("outputs"), r.uint("inputs")  # fc
    params = r.tensor("a fully connected layer's parameters")
    span = r.last_tensor
    r.alias("the weights")
    biases = r.alias("the biases")
    bias_mode = r.integer("bias mode")
    _multipliers(r)
    use_bias = r.flag("use_bias") if tag == "fc_3" else True
    flat = params.ravel()
    if flat.size < inputs * outputs:
        raise r.fail(f"a fully connected layer holds {flat.size} values, not {inputs}x{outputs}")
    has_bias = bias_mode == 0 and use_bias and int(np.prod(biases)) > 0
    bias = flat[inputs * outputs : (inputs + 1) * outputs].copy() if has_bias else None
    return family, Fc(flat[: inputs * outputs].reshape(inputs, outputs).copy(), bias, Source(span))  # type: ignore[arg-type]


def _trailer(r: Reader, tensors: int) -> None:
    """A layer's cached training state (flags and tensors), read and dropped."""
    for _ in range(3):
        r.flag("a training flag")
    for _ in range(tensors):
        r.tensor("cached training state")


def _input(r: Reader) -> Input:
    tag = r.tag(_INPUTS, "the input layer")
    mean = tuple(r.number("an input mean") for _ in range(3))
    if tag == "input_rgb_image_sized":
        return Input(mean, size=(r.uint("input rows"), r.uint("input columns")))  # type: ignore[arg-type]
    if tag == "input_rgb_image_pyramid2":
        return Input(mean, pyramid=(r.uint("pyramid padding"), r.uint("pyramid outer padding")))  # type: ignore[arg-type]
    if tag == "input_rgb_image_pyramid":
        return Input(mean, pyramid=(10, 11))  # type: ignore[arg-type]  # what dlib gives the first form
    return Input(mean)  # type: ignore[arg-type]


def _mmod_options(r: Reader) -> MmodOptions:
    version = r.version((1, 2, 3, 4), "the detector options")
    if version == 1:
        windows = [DetectorWindow(r.uint("the detector width"), r.uint("the detector height"))]
    else:
        windows = []
        for _ in range(r.count("detector windows", each=3)):
            v = r.version((1, 2), "a detector window")
            w, h = r.uint("the window width"), r.uint("the window height")
            windows.append(DetectorWindow(w, h, r.string("the window label") if v == 2 else ""))
    false_alarm, missed, match = (
        r.number(w) for w in ("loss per false alarm", "loss per missed target", "truth match IoU")
    )
    nms = (r.number("the NMS IoU"), r.number("the NMS covered share"))
    ignore = (r.number("the ignore IoU"), r.number("the ignore covered share"))
    if version >= 3:
        r.byte("assume_image_pyramid")
    bbr = False
    if version >= 4:
        bbr = r.flag("use_bounding_box_regression")
        r.number("the regression lambda")
    if not windows:
        raise r.fail("a detector with no windows")
    return MmodOptions(windows, *nms, bounding_box_regression=bbr, loss_per_false_alarm=false_alarm,
                       loss_per_missed_target=missed, truth_match_iou=match, ignore_iou=ignore[0],
                       ignore_covered=ignore[1])  # fmt: skip


def _looks_like_input(r: Reader) -> bool:
    start = r.pos
    try:
        return r.string().startswith("input_")
    except DlibFormatError:
        return False
    finally:
        r.pos = start


def read_network(r: Reader) -> Network:
    """The network at the reader's position, checked against the architectures BearID reads."""
    if r.peek() is None:
        raise r.fail("empty: no network")
    r.version((1,), "the loss layer (is this a dlib network file?)")
    loss_tag = r.tag(_LOSSES, "the loss layer")
    metric, mmod = {}, None
    if loss_tag == "loss_metric_2":
        metric = {"margin": r.number("the margin"), "distance_threshold": r.number("the distance threshold")}
    elif loss_tag == "loss_mmod_":
        mmod = _mmod_options(r)
    loss = "mmod" if mmod else "metric"
    versions: list[int] = []
    while not _looks_like_input(r):
        versions.append(r.version((1, 2, 3), "a layer"))
        if len(versions) > 10_000:
            raise r.fail("no input layer after 10000 layers")
    if not versions or versions[-1] not in (2, 3):
        raise r.fail("a network whose first layer is not a layer on the input")
    inp = _input(r)
    # Parameters come from the input out: the innermost node first.
    parsed: list[tuple[str, object, int]] = []  # (family or "wrapper", layer, byte offset), input first
    for i, v in enumerate(reversed(versions)):
        at = r.pos
        if i == 0:
            family, layer = _layer(r)
            _trailer(r, 3)
            if v == 3:
                r.uint("the sample expansion factor")
        elif v == 2:
            family, layer = _layer(r)
            _trailer(r, 3)
        else:
            family, layer = "wrapper", None
        parsed.append((family, layer, at))
    name, ops = _match(r, loss, parsed)
    return Network(name, loss, inp, ops, mmod, metric, end=r.pos)


def _match(r: Reader, loss: str, parsed: list[tuple[str, object, int]]) -> tuple[str, list[Op]]:
    """The ops of the architecture the parsed layers are, or why none fits."""
    kinds = [f for f, _, _ in parsed]
    why = []
    for name, (arch_loss, pattern) in ARCHITECTURES.items():
        if arch_loss != loss:
            continue
        if len(pattern) != len(parsed):
            why.append(f"{name} has {len(pattern)} layers, the file {len(parsed)}")
            continue
        for i, (want, (family, _, at)) in enumerate(zip(pattern, parsed)):
            base = want.rstrip("0123456789")
            if (base in ("tag", "skip") and family != "wrapper") or (base not in ("tag", "skip") and family != base):
                why.append(f"layer {i} from the input is {family} at byte {at}, {name} has {want} there")
                break
        else:
            ops: list[Op] = []
            for want, (_, layer, _) in zip(pattern, parsed):
                base = want.rstrip("0123456789")
                n = int(want[len(base) :] or 0)
                wrapper = {"tag": Tag, "skip": Skip, "add_prev": AddPrev}.get(base)
                ops.append(wrapper(n) if wrapper else layer)  # type: ignore[arg-type]
            return name, ops
    raise r.fail(f"a {loss} network of {len(parsed)} layers ({', '.join(dict.fromkeys(kinds))}) that is not an "
                 f"architecture BearID reads ({'; '.join(why) or 'none has this loss'})", parsed[0][2])  # fmt: skip


def read_network_file(path: Path) -> tuple[Network, Reader]:
    """The network a .dat file starts with, and the reader left after it (bearface's files
    hold a shape predictor next)."""
    r = Reader.open(path)
    return read_network(r), r
