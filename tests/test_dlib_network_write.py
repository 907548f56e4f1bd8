"""A fine-tuned MMOD detector written back as a dlib network file (bearid/dlibformat/network_writer.py):
unchanged parameters give the imported file byte for byte; a detector fine-tuned a few steps
on synthetic bears, written by the face stage as model/face_tuned.dat, loads in dlib's own
Python API and finds what BearID's finder with the fine-tuned parameters finds; parameters
that are not the network's are refused. The stage's model/bearface_tuned.dat is that network,
then the shape predictor as dlib serialised it, then two images (bearface.cpp's layout): read
back by BearID, its network part is face_tuned.dat byte for byte, and its shape predictor part,
loaded by dlib, gives the landmarks BearID's landmarks.npz gives.

The starting point is dlib's human MMOD as the `face_recognition_models` package ships it
(six con + bn_con + relu blocks and a last con: the bn_con layers are folded into scales and
shifts on import, and unfolded on writing); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bearid.dlibformat.faces import read_face_file
from bearid.dlibformat.network import Affine, read_network, read_network_file
from bearid.dlibformat.network_writer import parameters, write_network, write_network_file
from bearid.dlibformat.reader import DlibFormatError, Reader
from bearid.dlibformat.shape_predictor import read_shape_predictor
from bearid.errors import BearIDError
from bearid.face.mmod import MmodFinder
from bearid.face.shape_predictor import ShapeModel
from bearid.imageio import Photo
from bearid.metadata import read_faces
from bearid.synth import WorldConfig, synthesize
from bearid.training.config import FaceConfig
from bearid.training.data import samples
from bearid.training.dlibnet import DlibNet
from bearid.training.face import mmod
from bearid.training.torchnet import network

dlib = pytest.importorskip("dlib")
MODELS = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
MMOD = MODELS / "mmod_human_face_detector.dat"
RESNET = MODELS / "dlib_face_recognition_resnet_model_v1.dat"
FIXTURES = Path(__file__).parent / "fixtures" / "dlib"
SP_6 = FIXTURES / "shape_predictor_6.dat"  # written by dlib (scripts/dlibgen/bearface_gen.cpp): bearface's six parts
HIPSTER_IMAGES = FIXTURES / "hipster_images.dat"  # glasses >> mustache, written by dlib
SCORE_LIMIT = 1e-3  # dlib's confidences against BearID's scores, as tests/test_dlib.py allows the imported file
BOX_LIMIT = 1  # px, each side
POINT_LIMIT = 0.5  # px: dlib's landmarks against BearID's (integers both: identical), as tests/test_dlib.py allows


def _values(net) -> list[np.ndarray]:
    return [v for _, _, v in parameters(net)]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> tuple[Path, list]:
    """The model/ folder of a face stage that fine-tuned dlib's human detector 3 steps on
    synthetic bears, and the photos it was not trained on."""
    root = tmp_path_factory.mktemp("bears") / "world"
    synthesize(
        WorldConfig(bears=3, photos=16, seed=2, min_side=320, max_side=400, min_face=70, max_face_frac=0.6), root
    )
    bears = [s for s in samples(read_faces(root / "_truth" / "faces.xml")) if s.faces]
    torch.set_num_threads(2)
    model = tmp_path_factory.mktemp("stage") / "model"
    cfg = FaceConfig(backend="mmod", init=str(MMOD), steps=3, batch=3, lr=1e-3)
    record = mmod.import_model(cfg, model, bears[:8], lambda m: None)
    assert "landmark_seconds" in record  # the landmarks were retrained by dlib's trainer
    return model, bears[8:]


def test_unchanged_parameters_give_the_original_file_byte_for_byte():
    for path in (MMOD, RESNET):
        data = path.read_bytes()
        net = read_network(Reader(data, str(path)))
        # The writer's order is DlibNet's: the parameters a fine-tune hands back, as they came.
        module = DlibNet(net)
        assert [tuple(p.shape) for p in module.params] == [v.shape for v in _values(net)]
        assert all(np.array_equal(p.detach().numpy(), v) for p, v in zip(module.params, _values(net)))
        assert write_network(data, [p.detach().numpy() for p in module.params], str(path)) == data
    # The human detector's batch norms are folded on import, and are what is written back.
    net, _ = read_network_file(MMOD)
    assert sum(isinstance(op, Affine) and op.source.running is not None for op in net.ops) == 6


def test_a_changed_batch_norm_is_unfolded_to_what_dlib_folds_back():
    """Every parameter moved: the file read back (as dlib reads it, folding gamma and beta with
    the kept running statistics) holds the new values, to a float32 step."""
    data = MMOD.read_bytes()
    net = read_network(Reader(data))
    rng = np.random.default_rng(0)
    moved = [(v * (1 + 0.05 * rng.standard_normal(v.shape)) + 0.01).astype(np.float32) for v in _values(net)]
    out = write_network(data, moved)
    assert len(out) == len(data) and out != data
    back = _values(read_network(Reader(out)))
    for got, want in zip(back, moved):
        np.testing.assert_allclose(got, want, rtol=2.5e-7, atol=1e-9)  # one float32 step of rounding at most
    # Only the parameter tensors' values changed: the loss, the layers' settings, the statistics stay.
    same = np.frombuffer(out, np.uint8) == np.frombuffer(data, np.uint8)
    spans = [op.source.params for op in net.ops if getattr(op, "source", None)]
    inside = np.zeros(len(data), bool)
    for s in spans:
        inside[s.start : s.end] = True
    assert same[~inside].all()


def _detections(found) -> list[tuple[tuple[int, ...], float]]:
    return [((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence) for d in found]


def _bearid(finder: MmodFinder, image: np.ndarray) -> list[tuple[tuple[float, ...], float]]:
    found = finder.find(Photo(Image.fromarray(image), image.shape[1], image.shape[0]))
    return [((d.left, d.top, d.left + d.width - 1, d.top + d.height - 1), d.score) for d in found]


def _compare(dlib_file: Path, finder: MmodFinder, images: list[np.ndarray], every: bool = True) -> tuple[int, float]:
    """dlib's detections (upsample 0) of each image against BearID's, boxes within BOX_LIMIT
    and scores within SCORE_LIMIT: with `every`, the same detections one for one; else each of
    dlib's that BearID has at the same box (at least 90% of them must be). How many were
    compared, and the largest score difference."""
    detector = dlib.cnn_face_detection_model_v1(str(dlib_file))
    n = total = 0
    worst = 0.0
    for image in images:
        want, got = _detections(detector(image, 0)), _bearid(finder, image)
        total += len(want)
        if every:
            assert len(got) == len(want), (image.shape, want, got)
            pairs = list(zip(got, want))
            assert all(max(abs(a - b) for a, b in zip(g[0], w[0])) <= BOX_LIMIT for g, w in pairs), pairs
        else:
            pairs = [(g, w) for w in want for g in got if max(abs(a - b) for a, b in zip(g[0], w[0])) <= BOX_LIMIT]
        for (_, score), (_, confidence) in pairs:
            worst = max(worst, abs(score - confidence))
        n += len({w[0] for _, w in pairs})
    assert n >= 0.9 * total, (n, total)
    assert worst <= SCORE_LIMIT, worst
    return n, worst


def _images(bears) -> list[np.ndarray]:
    from skimage import data

    return [data.astronaut()] + [np.asarray(Image.open(s.path).convert("RGB")) for s in bears[:3]]


def test_the_fine_tuned_detector_runs_in_dlib_as_in_bearid(tuned, tmp_path):
    model, bears = tuned
    written = model / mmod.TUNED_DAT
    assert written.is_file() and written.read_bytes() != (model / "face.dat").read_bytes()
    net, module = mmod.load_network(model)  # face.dat with face.pt over it: what export and detect run
    for got, want in zip(_values(read_network(Reader.open(written))), module.params):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=2.5e-7, atol=1e-9)
    images = _images(bears)

    # The stage's own finder and dlib on the written file, at dlib's threshold (0).
    n, _ = _compare(written, mmod.load_finder(model), images)
    assert n >= 1  # the astronaut: there was something to compare
    # The fine-tune moved the scores well past the limit, so the comparison tells the files apart.
    original = _detections(dlib.cnn_face_detection_model_v1(str(MMOD))(images[0], 0))
    tuned_now = _bearid(mmod.load_finder(model), images[0])
    assert abs(original[0][1] - tuned_now[0][1]) > 10 * SCORE_LIMIT

    # dlib reports only scores above 0: with the last layer's bias raised by 3, candidates from
    # all over the output maps (every pyramid level, bears and background) are compared. Near
    # the photo's edges BearID's pyramid and NMS keep a few candidates dlib does not (the
    # imported file's as much: not the writer's), so these are matched by box.
    params = [p.detach().numpy().copy() for p in module.params]
    params[-1] += 3.0
    raised = write_network_file(model / "face.dat", params, tmp_path / "raised.dat")
    for p, v in zip(module.params, params):
        with torch.no_grad():
            p.copy_(torch.from_numpy(v))
    spec = mmod.load_finder(model).spec
    n, _ = _compare(raised, MmodFinder(network(module.eval()), None, spec, ()), images, every=False)
    assert n >= 40


def test_parameters_that_are_not_the_networks_are_refused(tmp_path):
    data = MMOD.read_bytes()
    params = _values(read_network(Reader(data)))
    with pytest.raises(BearIDError, match=r"25 parameter arrays for a network that holds 26"):
        write_network(data, params[:-1])
    wrong = params[:3] + [params[3][:-1]] + params[4:]
    with pytest.raises(BearIDError, match=r"parameter 3 \(the shifts of the batch-norm layer \(folded\), layer 1.*"
                       r"is \(15,\), the file's is \(16,\)"):  # fmt: skip
        write_network(data, wrong)
    broken = [p.copy() for p in params]
    broken[0][0, 0, 0, 0] = np.nan
    with pytest.raises(BearIDError, match="parameter 0 .* holds NaN"):
        write_network(data, broken)
    with pytest.raises(DlibFormatError, match="byte"):  # not a network: the reader's own refusal
        write_network(b"\x01\x02", params)
    with pytest.raises(BearIDError, match=r"parameter arrays"):
        write_network_file(MMOD, params[:2], tmp_path / "out.dat")
    assert not (tmp_path / "out.dat").exists()


def _parts(bearface: Path, tmp_path: Path) -> tuple[Path, int]:
    """The shape predictor part of a bearface file (read by BearID after the network) as a file
    of its own, and where it ends in the bearface file."""
    data = bearface.read_bytes()
    r = Reader(data, str(bearface))
    read_network(r)
    at = r.pos
    read_shape_predictor(r)
    sp = tmp_path / "sp_part.dat"
    sp.write_bytes(data[at : r.pos])
    return sp, r.pos


def _faces(bears) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """(photo, box) pairs: each held-out bear's face box, and a box shifted off it by a tenth."""
    out = []
    for s in bears:
        image = np.asarray(Image.open(s.path).convert("RGB"))
        for f in s.faces:
            left, top, w, h = (int(round(v)) for v in f.box)
            for dx in (0, w // 10):
                out.append((image, (left + dx, top + dx, left + dx + w - 1, top + dx + h - 1)))
    return out


def test_the_bearface_file_is_the_tuned_network_then_dlibs_shape_predictor(tuned, tmp_path):
    """bearface_tuned.dat as bearface.cpp's `>> net >> sp >> glasses >> mustache` reads it: BearID's
    reader of bearface files finds a network and a shape predictor (and two empty images); the
    network is face_tuned.dat byte for byte; dlib loads the shape predictor part and predicts what
    BearID's landmarks.npz predicts on the held-out bears."""
    model, bears = tuned
    written = model / mmod.BEARFACE_DAT
    face = read_face_file(written)
    assert face.layout == "hipsterizer" and face.images == [(0, 0), (0, 0)]
    assert face.shapes is not None and face.shapes.parts == 5
    network = (model / mmod.TUNED_DAT).read_bytes()
    data = written.read_bytes()
    sp, end = _parts(written, tmp_path)
    assert data[: len(network)] == network and end + len(mmod.NO_IMAGES) == len(data)
    assert read_network(Reader(network)).end == len(network)  # the network part ends where face_tuned.dat does

    ours = ShapeModel.load(model / "landmarks.npz")
    theirs = dlib.shape_predictor(str(sp))
    faces = _faces(bears)
    assert len(faces) >= 8
    moved = 0
    for image, box in faces:
        want = np.array([(p.x, p.y) for p in theirs(image, dlib.rectangle(*box)).parts()])
        got = ours.predict(image, box)
        assert np.abs(got - want).max() <= POINT_LIMIT, (box, got, want)
        left, top, right, bottom = box
        start = np.floor(np.array([left, top]) + ours.initial_shape * [right - left, bottom - top] + 0.5)
        moved += int(np.abs(want - start).max() > 2)
    # The trees moved the points off the mean shape: the comparison is of a trained predictor.
    assert moved >= len(faces) // 2, moved


def test_the_bearface_file_carries_the_imported_shape_predictor_and_images(tmp_path):
    """Where the landmarks are not retrained, the imported shape predictor goes into the bearface
    file as the init file held it, byte for byte, and so do the hipsterizer's images; a landmarks
    file's shape predictor is taken whole, with two empty images."""
    network = MMOD.read_bytes()
    init = tmp_path / "hipster.dat"  # net >> sp >> glasses >> mustache, the parts all written by dlib
    init.write_bytes(network + SP_6.read_bytes() + HIPSTER_IMAGES.read_bytes())
    _, rest = read_network_file(init)
    shapes, images = mmod._imported_shapes(FaceConfig(backend="mmod", init=str(init)), rest)
    assert shapes.dat == SP_6.read_bytes() and images == HIPSTER_IMAGES.read_bytes()
    out = mmod.write_bearface_file(tmp_path / "bearface.dat", network, shapes, images)
    assert out.read_bytes() == init.read_bytes()
    face = read_face_file(out)
    assert face.layout == "hipsterizer" and face.shapes is not None and face.shapes.parts == 6

    _, rest = read_network_file(MMOD)
    cfg = FaceConfig(backend="mmod", init=str(MMOD), landmarks=str(SP_6))
    shapes, images = mmod._imported_shapes(cfg, rest)
    assert shapes.dat == SP_6.read_bytes() and images == mmod.NO_IMAGES
    out = mmod.write_bearface_file(tmp_path / "human.dat", network, shapes, images)
    sp, end = _parts(out, tmp_path)
    assert sp.read_bytes() == SP_6.read_bytes()
    assert out.read_bytes()[end:] == b"\x01\x00" * 4  # two 0 x 0 images, as dlib 20.0.1 writes them
    assert read_face_file(out).images == [(0, 0), (0, 0)]
