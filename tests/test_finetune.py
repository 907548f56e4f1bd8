"""Fine-tuning keeps what the network knew (#31): the invariants fine-tuning a pretrained
embedding network rests on, each on a small synthetic world's chips, and the embed stage
keeping its best validation step.

The network is dlib's face ResNet as the `face_recognition_models` package ships it; timm's is
a tiny model made with random weights and saved locally (nothing is downloaded)."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bearid.embed import network_input
from bearid.training.config import EmbedConfig
from bearid.training.device import Device
from bearid.training.embed import train as embed_train
from bearid.training.embed.loader import ChipsInMemory, PKBatches, open_chips
from bearid.training.embed.madeup import MadeUpBears
from bearid.training.embed.model import STEP_FLOOR, build, normalisation_of
from bearid.training.embed.train import Trainee, freeze_backbone, imprint, parameter_groups, training_inputs
from bearid.training.optim import Optimiser

_SPEC = importlib.util.find_spec("face_recognition_models")
RESNET = (
    Path(_SPEC.submodule_search_locations[0]) / "models" / "dlib_face_recognition_resnet_model_v1.dat"
    if _SPEC
    else None
)
needs_resnet = pytest.mark.skipif(RESNET is None, reason="face_recognition_models is not installed")
DLIB = {"backbone": "dlib_resnet", "init": str(RESNET), "input_size": 150}
OFF = {"rotate": 0, "zoom": 0, "shift": 0, "blur": 0, "erase": 0, "light": 0, "tint": 0, "flip": False, "recolour": 0}
WEIGHT_DECAY = 5e-4  # the embed trainer's


@pytest.fixture(scope="module")
def chips(tmp_path_factory) -> Path:
    """chip_meta/ of a small world's chips, made from the truth's landmarks as the transfer
    bench makes them (6 bears, 40 photos; about 25 s on a busy 2-core machine). Its own, not
    the shared tiny pipeline's: the caches at other sizes are written beside the chips."""
    from bearid.data.split import SplitConfig, split
    from bearid.metadata import read_faces
    from bearid.synth import WorldConfig, synthesize
    from bearid.training.config import ChipConfig
    from bearid.training.stages import run_chip
    from bearid.training.train import split_files

    root = tmp_path_factory.mktemp("finetune")
    synthesize(WorldConfig(bears=6, photos=40, seed=4, min_side=640, max_side=800), root / "world", workers=2)
    split(
        root / "world",
        root / "splits",
        SplitConfig(by="image", min_images=3),
        read_faces(root / "world/_truth/faces.xml"),
    )
    run_chip(
        root / "chips", ChipConfig(source="truth"), root / "no_faces", split_files(root / "splits"), lambda m: None
    )
    return root / "chips" / "chip_meta"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a machine busier than its cores, two threads wait on each other
    (a builtin network's step took 20x longer)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _labels(data) -> np.ndarray:
    classes = sorted(set(data.labels))
    return np.array([classes.index(label) for label in data.labels])


def _backbone_parameters(trainee: Trainee) -> list[torch.nn.Parameter]:
    head = {id(p) for p in trainee.net.head_parameters()}
    return [p for p in trainee.net.parameters() if id(p) not in head]


# -- 1. dlib's affine layers are fixed batch norm ------------------------------------------------
@needs_resnet
def test_the_dlib_resnet_gives_the_same_outputs_in_training_and_in_eval_mode(chips):
    """dlib's bn_con layers are read in their inference form: in training mode too, a chip's
    output must not depend on the batch it comes in (no batch statistics)."""
    cfg = EmbedConfig(**DLIB, steps=10)
    x = ChipsInMemory.of(open_chips(chips / "train.xml", 150, norm=normalisation_of(cfg))).x[:6]
    trainee = Trainee(cfg, classes=6)
    trainee.train()
    freeze_backbone(trainee, False)  # as the trainer leaves it once the backbone trains
    with torch.no_grad():
        training = trainee.net.descriptor(x)
        trainee.eval()
        evaluating = trainee.net.descriptor(x)
        assert torch.equal(training, evaluating)
        trainee.train()
        alone = torch.cat([trainee.net.descriptor(x[i : i + 1]) for i in range(2)])
    assert (alone - training[:2]).abs().max() < 1e-5  # a chip alone gives what it gives in a batch
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in trainee.net.modules())


# -- 2. the trainer's inputs are serving's ------------------------------------------------------
def _timm_weights(folder: Path) -> Path:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = folder / "test_resnet.safetensors"
    save_file(timm.create_model("test_resnet", pretrained=False).state_dict(), path)
    return path


@pytest.mark.parametrize("backbone", ["builtin", "dlib_resnet", "timm"])
def test_with_augmentation_off_the_trainer_is_given_servings_inputs_bit_for_bit(chips, tmp_path, backbone):
    """What the trainer trains on (chip cache, loader workers, made-up bears, augmentation)
    against bearid.embed.network_input (the serving Pipeline's) of the same chip files."""
    if backbone == "dlib_resnet" and RESNET is None:
        pytest.skip("face_recognition_models is not installed")
    net = {
        "builtin": {"input_size": 64},
        "dlib_resnet": DLIB,
        "timm": {"backbone": "timm:test_resnet", "weights": str(_timm_weights(tmp_path)), "input_size": 96},
    }[backbone]
    cfg = EmbedConfig(**net, **OFF, steps=3, p=3, k=2)
    norm = normalisation_of(cfg)
    assert build(cfg)[1] == norm  # what the stage saves with the network, so what the bundle serves with
    data = open_chips(chips / "train.xml", cfg.input_size, norm=norm)
    y = _labels(data)
    made_up = MadeUpBears.of(data, y, int(y.max()) + 1, cfg.recolour, cfg.seed)
    dataset, y = made_up.dataset(data), made_up.labels
    sampler = PKBatches(y, cfg.p, cfg.k, cfg.seed, 0, 0, cfg.steps)
    seen = 0
    for x, idx in training_inputs(dataset, sampler, torch.Generator().manual_seed(0), cfg, workers=1):
        want = np.stack([network_input(Image.open(data.paths[i]), cfg.input_size, norm) for i in idx.tolist()])
        assert x.dtype == torch.float32 and np.array_equal(x.numpy(), want)
        seen += len(idx)
    assert seen == cfg.steps * cfg.p * cfg.k
    # The check can fail: augmentation on, the inputs differ.
    on = cfg.model_copy(update={"light": 0.2})
    x, idx = next(training_inputs(dataset, sampler, torch.Generator().manual_seed(0), on, workers=0))
    want = np.stack([network_input(Image.open(data.paths[i]), cfg.input_size, norm) for i in idx.tolist()])
    assert not np.array_equal(x.numpy(), want)


# -- 3. a tiny rate, a tiny change --------------------------------------------------------------
@needs_resnet
def test_one_step_at_lr_1e_8_moves_the_embeddings_by_less_than_1e_5(chips, tmp_path):
    """The whole trainer (head start, rates, augmentation, one AdamW step) from dlib's
    weights: every embedding within 1e-5 of the imported network's, and not identical (the
    step was taken)."""
    cfg = EmbedConfig(**DLIB, steps=1, lr=1e-8, p=3, k=2, recolour=0, views=0, checkpoint_every=0)
    norm = normalisation_of(cfg)
    data = open_chips(chips / "train.xml", 150, norm=norm)
    tuned, _, curves = embed_train.train_embedder(data, cfg, tmp_path / "model", log=lambda m: None, workers=0)
    original = build(cfg)[0].eval()
    x = ChipsInMemory.of(open_chips(chips / "val.xml", 150, labelled_only=False, norm=norm)).x
    with torch.no_grad():
        moved = (tuned(x) - original(x)).abs().max().item()
    assert len(curves.loss) == 1 and math.isfinite(curves.loss[0])
    assert 0 < moved < 1e-5, moved


# -- 4. the head's start does not blast the backbone ---------------------------------------------
@needs_resnet
def test_the_first_unfrozen_step_is_bounded_and_the_head_starts_at_the_class_means(chips):
    """At a random ArcFace head (scale 30, margin 0.3) every chip of a bear is pulled toward
    one arbitrary direction: the backbone's gradient is as large as its weights (|g|/|w| about
    1.0 on these chips). Started at the class means of the network's own embeddings, the pull
    is toward the margin only: well under half of it (measured 0.39), at a lower loss.

    Whatever the gradient, Adam's first update of a tensor is at most its rate in every
    element, so with rates scaled by each tensor's RMS and warmed up from the unfrozen step,
    that step changes each backbone tensor by at most lr x backbone_lr / warm-up steps
    (x (1 + weight decay)) of its norm. At one rate for all (before #31), it changed a weight
    tensor of dlib's by up to 8.5% in that one step."""
    cfg = EmbedConfig(**DLIB, steps=40, freeze=2, lr=5e-4, backbone_lr=0.1, p=6, k=3, recolour=0)
    data = open_chips(chips / "train.xml", 150, norm=normalisation_of(cfg))
    y = _labels(data)
    sampler = iter(training_inputs(data, PKBatches(y, cfg.p, cfg.k, 0, 0, 0, cfg.steps), torch.Generator(), cfg, 0))

    def loss_and_ratio(trainee: Trainee, x: torch.Tensor, yb: torch.Tensor) -> tuple[float, float]:
        trainee.zero_grad()
        loss = trainee(x, yb)
        loss.backward()
        backbone = _backbone_parameters(trainee)
        grad = torch.sqrt(sum(p.grad.pow(2).sum() for p in backbone))
        weight = torch.sqrt(sum(p.detach().pow(2).sum() for p in backbone))
        return loss.item(), (grad / weight).item()

    x, idx = next(sampler)
    yb = torch.from_numpy(y[idx.numpy()])
    torch.manual_seed(0)
    trainee = Trainee(cfg, int(y.max()) + 1).train()
    random_loss, random_ratio = loss_and_ratio(trainee, x, yb)
    imprint(trainee, data, y, cfg, Device.choose())
    freeze_backbone(trainee, False)  # measured as at the first unfrozen step
    loss, ratio = loss_and_ratio(trainee, x, yb)
    assert ratio < 0.5 * random_ratio and loss < random_loss, (ratio, random_ratio, loss, random_loss)

    opt = Optimiser(parameter_groups(trainee, cfg), cfg.lr, cfg.steps, weight_decay=WEIGHT_DECAY)
    warm = max(1, cfg.steps // 20)
    for step in range(cfg.freeze + 1):
        freeze_backbone(trainee, step < cfg.freeze)
        if step == cfg.freeze:
            before = [p.detach().clone() for p in _backbone_parameters(trainee)]
        opt.step(trainee(x, yb) if step == 0 else trainee(*_next(sampler, y)))
    # |update| <= rate in every element, plus the decay: |dw| / |w| <= base (scale / rms + decay x scale)
    base = cfg.lr * cfg.backbone_lr / warm
    shares = []
    for p, b in zip(_backbone_parameters(trainee), before):
        rms = b.pow(2).mean().sqrt().item()
        scale = max(rms, STEP_FLOOR)
        change = ((p.detach() - b).norm() / b.norm()).item()
        assert change <= base * (scale / rms + WEIGHT_DECAY * scale) * (1 + 1e-3), (tuple(p.shape), change, base)
        shares.append(change / (base * scale / rms))
    assert max(shares) > 0.5  # the backbone did take its step


def _next(sampler, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x, idx = next(sampler)
    return x, torch.from_numpy(y[idx.numpy()])


# -- the best validation step is the one kept ---------------------------------------------------
def test_the_embed_trainer_keeps_its_best_validation_step_through_a_resume(chips, tmp_path):
    from bearid.training.plots import loss_curve

    data = ChipsInMemory.of(open_chips(chips / "train.xml", 64))
    cfg = EmbedConfig(steps=6, p=3, k=2, recolour=0, checkpoint_every=4)
    figures = {1: 0.5, 2: 0.7, 3: 0.9, 4: 0.8, 5: 0.6, 6: 0.85}
    seen: dict[int, str] = {}

    def validate(net, crash_at=None):
        step = len(seen) + 1
        seen[step] = embed_train.checksum(net)
        if step == crash_at:
            raise KeyboardInterrupt
        return {"verification_auc": figures[step], "nn_top1": 0.0}

    net, _, curves = embed_train.train_embedder(data, cfg, tmp_path / "a", log=lambda m: None, validate=validate)
    assert curves.kept == {"step": 3, "figure": "verification_auc", "value": 0.9}
    assert asdict(curves)["kept"]["step"] == 3  # as curves.json holds it
    assert embed_train.checksum(net) == seen[3] != seen[6]
    last = seen[6]

    seen.clear()
    with pytest.raises(KeyboardInterrupt):  # stopped after the checkpoint of step 4
        embed_train.train_embedder(data, cfg, tmp_path / "b", log=lambda m: None, validate=lambda n: validate(n, 6))
    seen = {1: None, 2: None, 3: None, 4: None}
    resumed, _, again = embed_train.train_embedder(
        data, cfg, tmp_path / "b", resume=True, log=lambda m: None, validate=validate
    )
    assert again.kept["step"] == 3 and embed_train.checksum(resumed) == embed_train.checksum(net)
    assert seen[6] == last  # the resumed run reached the same last step
    # Without the figure nothing chooses: the last step is kept.
    plain, _, kept_last = embed_train.train_embedder(
        data, cfg.model_copy(update={"checkpoint_every": 0}), tmp_path / "c", log=lambda m: None,
        validate=lambda n: {"nn_top1": 1.0},
    )  # fmt: skip
    assert kept_last.kept == {"step": 6} and embed_train.checksum(plain) == last
    assert loss_curve(tmp_path / "loss.png", {"arcface": curves}).stat().st_size > 0


# -- 5. a fine-tune's rate is chosen on validation, and the network as it came is a candidate -----
def _pretrained(tmp_path: Path) -> Path:
    """An embed.pt of a builtin network (random weights): a pretrained network to fine-tune
    at a fraction of dlib's cost."""
    from bearid.training.embed.model import save_file

    cfg = EmbedConfig(steps=1)
    torch.manual_seed(5)
    net, norm = build(cfg)
    save_file(tmp_path / "start.pt", net, norm, cfg.input_size, ["a", "b"])
    return tmp_path / "start.pt"


def test_a_fine_tune_chooses_its_rate_on_validation_and_its_run_goes_on_from_the_winning_trial(chips, tmp_path):
    from bearid.training.config import FINE_TUNE_RATES
    from bearid.training.stages import run_embed

    start = _pretrained(tmp_path)
    cfg = EmbedConfig(init=str(start), steps=12, p=3, k=2, recolour=0, views=0, checkpoint_every=0)
    assert cfg.lr is None and cfg.fine_tune and embed_train.trial_steps(cfg) == 3
    lines: list[str] = []
    metrics = run_embed(tmp_path / "chose", cfg, chips, lines.append)
    chose = metrics["chosen"]
    tried = {r["lr"]: r["verification_auc"] for r in chose["tried"]}
    assert sorted(tried) == sorted(FINE_TUNE_RATES) and None not in tried.values()
    assert chose["lr"] == max(tried, key=lambda lr: (tried[lr], -lr)), chose  # the best, the lowest of equals
    assert chose["trial_steps"] == 3 and any("chose lr" in line for line in lines)
    assert not (tmp_path / "chose" / "model" / "trials").exists()
    # The trial was the run's first steps: going on from it is the run given that rate outright.
    given = run_embed(tmp_path / "given", cfg.model_copy(update={"lr": chose["lr"]}), chips, lambda m: None)
    assert "chosen" not in given and given["kept_step"] == metrics["kept_step"]
    for split in ("train", "val", "test"):
        a, b = (np.load(tmp_path / d / "embeddings" / f"{split}.npz")["vectors"] for d in ("chose", "given"))
        np.testing.assert_array_equal(a, b)


def test_a_fine_tune_that_beats_nothing_keeps_the_network_as_it_came(chips, tmp_path):
    start = _pretrained(tmp_path)
    data = ChipsInMemory.of(open_chips(chips / "train.xml", 64))
    cfg = EmbedConfig(init=str(start), steps=4, lr=0.5, p=3, k=2, recolour=0, checkpoint_every=0)
    figures = iter([0.8, 0.6, 0.7, 0.5, 0.79])  # before the first step, then after each
    lines: list[str] = []
    net, _, curves = embed_train.train_embedder(
        data, cfg, tmp_path / "m", log=lines.append, validate=lambda n: {"verification_auc": next(figures)}
    )
    assert curves.kept == {"step": 0, "figure": "verification_auc", "value": 0.8}
    assert curves.validation[0]["step"] == 0 and any("beat the network as it came" in line for line in lines)
    assert embed_train.checksum(net) == embed_train.checksum(build(cfg)[0])


def test_a_fine_tune_without_validation_says_its_rate_was_not_chosen(chips, tmp_path):
    from bearid.training.config import RECIPE_LR

    data = ChipsInMemory.of(open_chips(chips / "train.xml", 64))
    cfg = EmbedConfig(init=str(_pretrained(tmp_path)), steps=2, p=3, k=2, recolour=0, checkpoint_every=0)
    lines: list[str] = []
    _, _, curves = embed_train.train_embedder(data, cfg, tmp_path / "m", log=lines.append)
    assert curves.rate == {"lr": RECIPE_LR, "chosen_by": None, "why": "no validation chips"}
    assert any("not chosen" in line for line in lines)
