"""The four stages as steps of the results tree. Each takes its parent's directory, writes
its own (models, metadata XML, metrics.json, plots) and can run alone from XML files."""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bearid.embed import unit
from bearid.errors import BearIDError
from bearid.fsio import atomic_path, atomic_write_text
from bearid.metadata import read_chips, read_faces, write_chips, write_faces
from bearid.metrics import roc_auc, roc_curve
from bearid.training import plots
from bearid.training.chip import chip_dataset
from bearid.training.classify import choose, fit, known_bears, write_predictions
from bearid.training.classify import evaluate as evaluate_classifier
from bearid.training.config import ChipConfig, ClassifyConfig, EmbedConfig, FaceConfig
from bearid.training.data import read_samples
from bearid.training.embed.chipcache import build_cache
from bearid.training.embed.embeddings import (
    VIEWS_FILE,
    Embedded,
    load_embeddings,
    load_views,
    write_embedding_file,
    write_embeddings,
)
from bearid.training.embed.evaluate import embedding_report, pairs
from bearid.training.optim import Curves
from bearid.training.progress import Log

SPLITS = ("train", "val", "test", "holdout")
CURVES = "curves.json"  # beside metrics.json: the training curves as numbers


def write_curves(out: Path, curves: dict[str, Curves]) -> None:
    """curves.json (per network: the loss at every step, the validation figures by step) and
    curves.csv (one row per value: network, kind, step, figure, value), for tools and people
    who want the numbers behind plots/loss.png."""
    atomic_write_text(out / CURVES, json.dumps({name: asdict(c) for name, c in curves.items()}, indent=1))
    rows = ["network,kind,step,figure,value"]
    for name, c in curves.items():
        rows += [f"{name},train,{i + 1},loss,{v:.6g}" for i, v in enumerate(c.loss)]
        rows += [
            f"{name},validation,{r['step']},{k},{v:.6g}" for r in c.validation for k, v in r.items() if k != "step"
        ]
    atomic_write_text(out / "curves.csv", "\n".join(rows) + "\n")


# -- bearface ---------------------------------------------------------------------------
def run_face(out: Path, cfg: FaceConfig, splits: dict[str, Path], log: Log) -> dict:
    """Train the face finder on the train split, detect faces in every split (labels carried
    over from the truth), and measure AP@0.5, precision, recall and NME on val and test."""
    from bearid.training.face import detect as face_detect
    from bearid.training.face import train as face_train

    t0 = time.perf_counter()
    train = read_samples(splits["train"])
    if cfg.max_train_photos:
        train = train[: cfg.max_train_photos]
    if cfg.backend != "mmod" and not any(f.landmarks is not None and not f.ignore for s in train for f in s.faces):
        raise BearIDError(
            f"{splits['train']}: no faces with all five landmarks to train the face finder on "
            "(were the splits made without --faces? `bearid data split WORLD --out SPLITS --faces FACES.xml`)"
        )
    curves: dict[str, Curves] = {}
    mmod_metrics: dict = {}
    if cfg.backend == "dlib":
        from bearid.training.face import dlib_backend

        finder = dlib_backend.train(train, cfg, out / "model", log)
    elif cfg.backend == "mmod":  # imported: used as it is, or fine-tuned (steps)
        from bearid.training.face import mmod

        val = read_samples(splits["val"]) if "val" in splits else None
        mmod_metrics.update(mmod.import_model(cfg, out / "model", train, log, val))
        finder = mmod.load_finder(out / "model")
        log(
            f"face: imported the dlib MMOD detector {cfg.init}"
            + (f", fine-tuned {cfg.steps} steps" if cfg.steps else "")
        )
    else:
        val = read_samples(splits["val"]) if "val" in splits else None
        detector, det_curves = face_train.train_detector(train, cfg, log, val)
        refiner, ref_curves = face_train.train_refiner(train, cfg, log, val)
        face_train.save(out / "model", detector, refiner, cfg)
        finder = face_detect.torch_finder(detector, refiner, cfg.detector_spec())
        curves = {"detector": det_curves, "refiner": ref_curves}
    train_seconds = time.perf_counter() - t0
    metrics: dict = {"backend": cfg.backend, "train_seconds": round(train_seconds, 1), "train_photos": len(train)}
    metrics.update(mmod_metrics)
    examples = []
    for name, path in splits.items():
        samples = read_samples(path)
        unreadable: dict[Path, str] = {}
        found = face_detect.detect_all(samples, finder.find, cfg.refine_side, cfg.search_threshold, unreadable, log)
        for why in unreadable.values():
            log(f"face {name}: not read, counted as no faces found: {why}")
        if name in ("val", "test"):
            metrics[name] = face_detect.evaluate(samples, found, cfg.threshold)
            log(f"face {name}: {metrics[name]}")
        if name == "test":
            examples = [face_detect.example(s, dets, cfg.threshold) for s, dets in list(zip(samples, found))[:8]]
        write_faces(
            face_detect.faces_dataset(samples, found, cfg.threshold, out / "face_meta"),
            out / "face_meta" / f"{name}.xml",
        )
    if curves:
        write_curves(out, curves)
        plots.loss_curve(out / "plots" / "loss.png", curves)
    plots.detections(out / "plots" / "detections.png", examples)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    return metrics


# -- bearchip ---------------------------------------------------------------------------
def run_chip(out: Path, cfg: ChipConfig, face_meta: Path, truth: dict[str, Path], log: Log) -> dict:
    """Chips for every split, from the detected landmarks (or the truth's)."""
    t0 = time.perf_counter()
    spec = cfg.spec()
    metrics: dict = {}
    for name in SPLITS:
        source = truth[name] if cfg.source == "truth" else face_meta / f"{name}.xml"
        if not source.exists():
            continue
        chipset, report = chip_dataset(read_faces(source), out / "chip_images", out / "chip_meta", spec)
        write_chips(chipset, out / "chip_meta" / f"{name}.xml")
        if chipset.chips:
            build_cache(out / "chip_meta" / f"{name}.xml")
        metrics[name] = report.as_dict()
        log(
            f"chip {name}: {report.chipped} of {report.faces} faces chipped"
            + (f"; not chipped: {dict(report.problems)}" if report.problems else "")
        )
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    return metrics


# -- bearembed --------------------------------------------------------------------------
def run_embed(out: Path, cfg: EmbedConfig, chip_meta: Path, log: Log, resume: bool = True) -> dict:
    """Train the embedding network on the train chips, embed every split, and measure
    verification AUC and 1-NN top-1/top-5 (test queries against the train gallery)."""
    from bearid.training.embed import train as embed_train
    from bearid.training.embed.loader import ChipsInMemory, open_chips
    from bearid.training.embed.model import normalisation_of

    t0 = time.perf_counter()
    norm = normalisation_of(cfg)
    train_chips = open_chips(chip_meta / "train.xml", cfg.input_size, log=log, norm=norm)
    validate = None
    if (chip_meta / "val.xml").exists() and cfg.steps:
        val_chips = ChipsInMemory.of(
            open_chips(chip_meta / "val.xml", cfg.input_size, labelled_only=False, log=log, norm=norm)
        )
        gallery = ChipsInMemory.of(train_chips)

        def validate(net):  # 1-NN against the training chips, as the stage measures at its end
            queries = Embedded(embed_train.embed(net, val_chips), val_chips.labels, val_chips.paths)
            known = Embedded(embed_train.embed(net, gallery), gallery.labels, gallery.paths)
            report = embedding_report(queries, known, sorted(set(gallery.labels)))
            return {k: report[k] for k in ("verification_auc", "nn_top1") if k in report}

    net, classes, curves = embed_train.train_embedder(
        train_chips, cfg, out / "model", resume=resume, log=log, validate=validate
    )
    embed_train.save(out / "model", net, classes, cfg, norm)
    train_seconds = time.perf_counter() - t0
    vectors: dict[str, Embedded] = {}
    for name in SPLITS:
        path = chip_meta / f"{name}.xml"
        if not path.exists() or not read_chips(path).chips:  # e.g. no holdout once every bear is named
            continue
        data = open_chips(path, cfg.input_size, labelled_only=False, log=log, norm=norm)
        v = embed_train.embed(net, data)
        vectors[name] = Embedded(v, data.labels, data.paths)
        write_embeddings(
            out / "embeddings" / f"{name}.npz",
            out / "embed_meta" / f"{name}.xml",
            read_chips(path),
            v,
            data.labels,
            data.paths,
        )
    if cfg.views:
        views = embed_train.embed_views(net, train_chips, cfg)
        write_embedding_file(
            out / "embeddings" / VIEWS_FILE, views, train_chips.labels * cfg.views, train_chips.paths * cfg.views
        )
    metrics = {
        "train_seconds": round(train_seconds, 1),
        "train_chips": len(train_chips),
        "identities": len(classes),
        "chips_per_second": round(cfg.steps * cfg.p * cfg.k / max(train_seconds, 1e-9), 1),
        "kept_step": curves.kept.get("step") if cfg.steps else 0,  # the best validation step's weights
    }
    if curves.rate:  # a fine-tune's rate, chosen on validation
        metrics["chosen"] = curves.rate
    for name in ("val", "test"):
        if name in vectors:
            metrics[name] = embedding_report(vectors[name], vectors["train"], classes)
            log(f"embed {name}: {metrics[name]}")
    if cfg.steps:
        write_curves(out, {cfg.loss: curves})
        plots.loss_curve(out / "plots" / "loss.png", {cfg.loss: curves})
    test = vectors.get("test")
    if test is not None and len(test.labels):
        same, sims = pairs(test)
        fpr, tpr = roc_curve(sims, same)
        plots.roc(out / "plots" / "roc.png", {"same bear vs other bear (test)": (fpr, tpr, roc_auc(sims, same))})
        plots.embedding_map(out / "plots" / "embeddings.png", unit(test.vectors), test.labels)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    return metrics


# -- bearsvm ----------------------------------------------------------------------------
def run_classify(out: Path, cfg: ClassifyConfig, embeddings: Path, log: Log) -> dict:
    """Fit the classifier on train embeddings, its open-set threshold on validation (known
    val chips against unknown bears); measure top-1/5, BAKS, BAUS, AUROC on test. Bears of
    the holdout split, never trained on, are new bears: half of them join validation, the
    other half test."""
    if cfg.svm:  # the original BearID's SVM, as it is (bearid import-dlib --svm)
        from bearid.training.dlibsvm import run_imported_classify

        return run_imported_classify(out, cfg, embeddings, log)
    t0 = time.perf_counter()
    data = {
        name: load_embeddings(embeddings / f"{name}.npz") for name in SPLITS if (embeddings / f"{name}.npz").exists()
    }
    train = data["train"].labelled()
    classes = set(known_bears(train.labels).tolist())  # the bears fit will know, to split validation by
    val_known, val_unknown = data["val"].split_known(classes)
    test_known, test_unknown = data["test"].split_known(classes)
    if "holdout" in data:
        h_val, h_test = data["holdout"].split_known(classes)[1].halves_by_bear()
        val_unknown, test_unknown = val_unknown + h_val, test_unknown + h_test
    views = load_views(embeddings)
    choice = choose(train, cfg, views, known=val_known, unknown=val_unknown)
    log(
        f"classify: chose {choice.classifier}" + (f" C {choice.C:g}" if choice.C is not None else "")
        + f" on {choice.naming_on}; open-set score {choice.open_set} on {choice.open_set_on}"
    )  # fmt: skip
    clf = fit(train, cfg, views, known=val_known, unknown=val_unknown, choice=choice)
    why = clf.threshold_note_
    log(f"classify: threshold {clf.threshold_:.4f} ({why})")
    (out / "classifier").mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "classifier" / "classifier.pkl") as tmp:
        tmp.write_bytes(pickle.dumps(clf))
    atomic_write_text(out / "classifier" / "ids.json", json.dumps(clf.ids, indent=1))
    left_out = sorted(set(train.labels) - set(clf.ids))
    if left_out:
        log(f"classify: too few training chips to know {', '.join(left_out)}: treated as unknown bears")
    metrics = {
        "threshold": round(clf.threshold_, 4),
        "threshold_note": why,
        "target_met": clf.target_met_,  # None: no unknown bears in validation to measure it on
        "chosen": choice.record(),
        "identities": len(clf.ids),
        "left_out": left_out,
        "val": evaluate_classifier(clf, val_known, val_unknown),
        "test": evaluate_classifier(clf, test_known, test_unknown),
    }
    for name in ("val", "test"):
        log(f"classify {name}: " + ", ".join(f"{k} {v}" for k, v in metrics[name].items() if k != "confusion"))
    if "confusion" in metrics["test"]:
        plots.confusion(
            out / "plots" / "confusion.png",
            metrics["test"]["confusion"]["labels"],
            metrics["test"]["confusion"]["matrix"],
        )
    if len(test_known.labels) and len(test_unknown.labels):
        scores = np.concatenate([clf.familiarity(test_known.vectors), clf.familiarity(test_unknown.vectors)])
        is_known = np.concatenate([np.ones(len(test_known.labels), bool), np.zeros(len(test_unknown.labels), bool)])
        fpr, tpr = roc_curve(scores, is_known)
        plots.roc(
            out / "plots" / "open_set_roc.png",
            {"known vs new bear (test)": (fpr, tpr, metrics["test"].get("auroc", float("nan")))},
        )
    write_predictions(out / "class_meta", clf, data)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    return metrics
