"""The four stages as steps of the results tree. Each takes its parent's directory, writes
its own (models, metadata XML, metrics.json, plots) and can run alone from XML files."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bearid.classifier import unit
from bearid.errors import BearIDError
from bearid.fsio import atomic_path, atomic_write_text
from bearid.imageio import load_photo
from bearid.metadata import ChipSet, read_chips, read_faces, write_chips, write_faces
from training import plots
from training.chip import chip_dataset, spec_of
from training.embed.chipcache import build_cache
from training.classify import Embedded, choose_threshold, evaluate as evaluate_classifier, fit
from training.config import ChipConfig, ClassConfig, EmbedConfig, FaceConfig
from training.data import read_samples
from training.metrics import roc_auc, roc_curve, topk

Log = Callable[[str], None]
SPLITS = ("train", "val", "test", "holdout")
VIEWS_FILE = "train_views.npz"  # augmented views of the training chips, for the classifier's Gaussians


# -- bearface ---------------------------------------------------------------------------
def run_face(out: Path, cfg: FaceConfig, splits: dict[str, Path], log: Log) -> dict:
    """Train the face finder on the train split, detect faces in every split (labels carried
    over from the truth), and measure AP@0.5, precision, recall and NME on val and test."""
    from training.face import detect as face_detect
    from training.face import train as face_train

    t0 = time.perf_counter()
    train = read_samples(splits["train"])
    if cfg.max_train_photos:
        train = train[: cfg.max_train_photos]
    if not any(f.landmarks is not None and not f.ignore for s in train for f in s.faces):
        raise BearIDError(f"{splits['train']}: no faces with all five landmarks to train the face finder on "
                          "(were the splits made without --faces? `bearid data split WORLD --out SPLITS --faces FACES.xml`)")
    if cfg.backend == "dlib":
        from training.face import dlib_backend

        finder = dlib_backend.train(train, cfg, out / "model", log)
        curves: dict[str, list[float]] = {}
    else:
        detector, det_losses = face_train.train_detector(train, cfg, log)
        refiner, ref_losses = face_train.train_refiner(train, cfg, log)
        face_train.save(out / "model", detector, refiner, cfg)
        finder = face_detect.torch_finder(detector, refiner, face_detect.detector_spec(cfg))
        curves = {"detector": det_losses, "refiner": ref_losses}
    train_seconds = time.perf_counter() - t0
    metrics: dict = {"backend": cfg.backend, "train_seconds": round(train_seconds, 1), "train_photos": len(train)}
    examples = []
    for name, path in splits.items():
        samples = read_samples(path)
        found = face_detect.detect_all(samples, finder.find, cfg.refine_side, threshold=0.05)
        if name in ("val", "test"):
            metrics[name] = face_detect.evaluate(samples, found, cfg.score_threshold)
            log(f"face {name}: {metrics[name]}")
        if name == "test":
            examples = [_example(s, dets, cfg.score_threshold) for s, dets in list(zip(samples, found))[:8]]
        write_faces(face_detect.faces_dataset(samples, found, cfg.score_threshold, out / "face_meta"), out / "face_meta" / f"{name}.xml")
    if curves:
        plots.loss_curve(out / "plots" / "loss.png", curves)
    plots.detections(out / "plots" / "detections.png", examples)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    return metrics


def _example(sample, dets: list, threshold: float) -> tuple:
    """A small upright photo with its true boxes and its detections, in its own pixels."""
    from bearid.detection import Detection

    image = load_photo(sample.path, max_side=640).image
    k = image.width / sample.width
    found = [Detection(d.left * k, d.top * k, d.width * k, d.height * k, d.score, {n: (x * k, y * k) for n, (x, y) in d.landmarks.items()})
             for d in dets if d.score >= threshold]
    return image, [tuple(v * k for v in f.box) for f in sample.faces], found


# -- bearchip ---------------------------------------------------------------------------
def run_chip(out: Path, cfg: ChipConfig, face_meta: Path, truth: dict[str, Path], log: Log) -> dict:
    """Chips for every split, from the detected landmarks (or the truth's)."""
    t0 = time.perf_counter()
    spec = spec_of(cfg)
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
        log(f"chip {name}: {report.chipped} of {report.faces} faces chipped" + (f"; not chipped: {dict(report.problems)}" if report.problems else ""))
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    return metrics


# -- bearembed --------------------------------------------------------------------------
def run_embed(out: Path, cfg: EmbedConfig, chip_meta: Path, log: Log, resume: bool = True) -> dict:
    """Train the embedding network on the train chips, embed every split, and measure
    verification AUC and 1-NN top-1/top-5 (test queries against the train gallery)."""
    from training.embed import train as embed_train
    from training.embed.loader import open_chips

    t0 = time.perf_counter()
    train_chips = open_chips(chip_meta / "train.xml", cfg.input_size, log=log)
    net, classes, losses = embed_train.train_embedder(train_chips, cfg, out / "model", resume=resume, log=log)
    embed_train.save(out / "model", net, classes, cfg)
    train_seconds = time.perf_counter() - t0
    vectors: dict[str, Embedded] = {}
    for name in SPLITS:
        path = chip_meta / f"{name}.xml"
        if not path.exists():
            continue
        data = open_chips(path, cfg.input_size, labelled_only=False, log=log)
        v = embed_train.embed(net, data)
        vectors[name] = Embedded(v, data.labels, data.paths)
        write_embeddings(out, name, read_chips(path), v, data.labels, data.paths)
    if cfg.views:
        views = embed_train.embed_views(net, train_chips, cfg)
        write_embedding_file(out / "embeddings" / VIEWS_FILE, views, train_chips.labels * cfg.views, train_chips.paths * cfg.views)
    metrics = {"train_seconds": round(train_seconds, 1), "train_chips": len(train_chips), "identities": len(classes),
               "chips_per_second": round(cfg.steps * cfg.p * cfg.k / max(train_seconds, 1e-9), 1)}
    for name in ("val", "test"):
        if name in vectors:
            metrics[name] = embedding_report(vectors[name], vectors["train"], classes)
            log(f"embed {name}: {metrics[name]}")
    plots.loss_curve(out / "plots" / "loss.png", {cfg.loss: losses})
    test = vectors.get("test")
    if test is not None and len(test.labels):
        same, sims = _pairs(test)
        fpr, tpr = roc_curve(sims, same)
        plots.roc(out / "plots" / "roc.png", {"same bear vs other bear (test)": (fpr, tpr, roc_auc(sims, same))})
        plots.embedding_map(out / "plots" / "embeddings.png", unit(test.vectors), test.labels)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    return metrics


def write_embedding_file(path: Path, vectors: np.ndarray, labels: list[str], paths: list[str]) -> None:
    """The original tools' embedding file: .npz with paths, labels, unit-length vectors, and
    the network outputs' lengths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, paths=np.array(paths), labels=np.array(labels), vectors=unit(vectors).astype(np.float32),
                     lengths=np.linalg.norm(vectors, axis=1).astype(np.float32))


def write_embeddings(out: Path, name: str, chipset: ChipSet, vectors: np.ndarray, labels: list[str], paths: list[str]) -> None:
    """A split's embedding file and embeddings XML (unit vectors)."""
    write_embedding_file(out / "embeddings" / f"{name}.npz", vectors, labels, paths)
    vectors = unit(vectors)
    by_path = {p: v for p, v in zip(paths, vectors)}
    chips = []
    for chip in chipset.chips:
        if (v := by_path.get(str(chipset.path_of(chip)))) is not None:
            chip.embedding = [float(a) for a in v]
            chips.append(chip)
    write_chips(ChipSet(chips, name="bearid embeddings", comment=f"{vectors.shape[1]}-D", base_dir=chipset.base_dir), out / "embed_meta" / f"{name}.xml")


def load_embeddings(path: Path) -> Embedded:
    """An embedding file as the network's outputs (unit vectors times their lengths; a file
    without lengths, as other tools write, is taken as unit vectors)."""
    data = np.load(path)
    vectors = data["vectors"] * data["lengths"][:, None] if "lengths" in data else data["vectors"]
    return Embedded(vectors, [str(v) for v in data["labels"]], [str(v) for v in data["paths"]])


def load_views(embeddings: Path) -> Embedded | None:
    """The augmented views of the training chips in an embeddings folder, if its embed
    stage wrote them (`views: 0`, and folders of other tools, have none)."""
    return load_embeddings(embeddings / VIEWS_FILE) if (embeddings / VIEWS_FILE).exists() else None


def _pairs(e: Embedded) -> tuple[np.ndarray, np.ndarray]:
    keep = [i for i, label in enumerate(e.labels) if label]
    v = unit(e.vectors[keep])
    lab = np.array([e.labels[i] for i in keep])
    i, j = np.triu_indices(len(keep), k=1)
    return lab[i] == lab[j], (v[i] * v[j]).sum(axis=1)


def embedding_report(queries: Embedded, gallery: Embedded, classes: list[str]) -> dict:
    """Verification AUC over all pairs of labelled chips; 1-NN top-k for known bears."""
    same, sims = _pairs(queries)
    out = {"verification_auc": round(roc_auc(sims, same), 4)}
    known = [i for i, label in enumerate(queries.labels) if label in classes]
    if known:
        g_labels = np.array(gallery.labels)
        sim = unit(queries.vectors[known]) @ unit(gallery.vectors).T
        scores = np.stack([sim[:, g_labels == c].max(axis=1) for c in classes], axis=1)
        truth = [queries.labels[i] for i in known]
        out["nn_top1"] = round(topk(scores, classes, truth, 1), 4)
        out["nn_top5"] = round(topk(scores, classes, truth, 5), 4)
    return out


# -- bearsvm ----------------------------------------------------------------------------
def unknown_halves(holdout: Embedded) -> tuple[Embedded, Embedded]:
    """Hold-out bears split by identity (alternately) into validation and test unknowns; a
    single anonymous group (plain bear_unknown photos) is split by chip instead."""
    names = sorted(set(holdout.labels))
    if len(names) >= 2:
        val_names = set(names[0::2])
        pick = [label in val_names for label in holdout.labels]
    else:
        pick = [i % 2 == 0 for i in range(len(holdout.labels))]
    a = [i for i, p in enumerate(pick) if p]
    b = [i for i, p in enumerate(pick) if not p]

    def sub(idx):
        return Embedded(holdout.vectors[idx], [holdout.labels[i] for i in idx], [holdout.paths[i] for i in idx])

    return sub(a), sub(b)


def split_known(e: Embedded, classes: set[str]) -> tuple[Embedded, Embedded]:
    """(bears the classifier knows, labelled bears it does not)."""
    k = [i for i, label in enumerate(e.labels) if label in classes]
    u = [i for i, label in enumerate(e.labels) if label and label not in classes]

    def sub(idx):
        return Embedded(e.vectors[idx], [e.labels[i] for i in idx], [e.paths[i] for i in idx])

    return sub(k), sub(u)


def _join(a: Embedded, b: Embedded) -> Embedded:
    return Embedded(np.concatenate([a.vectors, b.vectors]), a.labels + b.labels, a.paths + b.paths)


def run_classify(out: Path, cfg: ClassConfig, embeddings: Path, log: Log) -> dict:
    """Fit the SVM on train embeddings; choose the open-set threshold on validation (known
    val chips against unknown bears); measure top-1/5, BAKS, BAUS, AUROC on test."""
    t0 = time.perf_counter()
    data = {name: load_embeddings(embeddings / f"{name}.npz") for name in SPLITS if (embeddings / f"{name}.npz").exists()}
    train, _ = split_known(data["train"], set(filter(None, data["train"].labels)))  # labelled train chips
    clf = fit(train, cfg, load_views(embeddings))
    classes = set(clf.ids)
    val_known, val_unknown = split_known(data["val"], classes)
    test_known, test_unknown = split_known(data["test"], classes)
    if "holdout" in data:
        h_val, h_test = unknown_halves(split_known(data["holdout"], classes)[1])
        val_unknown, test_unknown = _join(val_unknown, h_val), _join(test_unknown, h_test)
    clf.threshold, why = choose_threshold(clf, val_known, val_unknown, cfg.target_far, cfg.min_known_accept)
    log(f"classify: threshold {clf.threshold:.4f} ({why})")
    (out / "classifier").mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "classifier" / "classifier.pkl") as tmp:
        tmp.write_bytes(pickle.dumps(clf))
    atomic_write_text(out / "classifier" / "ids.json", json.dumps(clf.ids, indent=1))
    left_out = sorted(set(train.labels) - set(clf.ids))
    if left_out:
        log(f"classify: too few training chips to know {', '.join(left_out)}: treated as unknown bears")
    metrics = {"threshold": round(clf.threshold, 4), "threshold_note": why, "identities": len(clf.ids), "left_out": left_out,
               "val": evaluate_classifier(clf, val_known, val_unknown), "test": evaluate_classifier(clf, test_known, test_unknown)}
    for name in ("val", "test"):
        log(f"classify {name}: " + ", ".join(f"{k} {v}" for k, v in metrics[name].items() if k != "confusion"))
    if "confusion" in metrics["test"]:
        plots.confusion(out / "plots" / "confusion.png", metrics["test"]["confusion"]["labels"], metrics["test"]["confusion"]["matrix"])
    if len(test_known.labels) and len(test_unknown.labels):
        scores = np.concatenate([clf.familiarity(test_known.vectors), clf.familiarity(test_unknown.vectors)])
        is_known = np.concatenate([np.ones(len(test_known.labels), bool), np.zeros(len(test_unknown.labels), bool)])
        fpr, tpr = roc_curve(scores, is_known)
        plots.roc(out / "plots" / "open_set_roc.png", {"known vs new bear (test)": (fpr, tpr, metrics["test"].get("auroc", float("nan")))})
    write_predictions(out, clf, data)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    return metrics


def write_predictions(out: Path, clf, data: dict[str, Embedded]) -> None:
    """class_meta/<split>.json: per chip, the truth and the prediction."""
    (out / "class_meta").mkdir(parents=True, exist_ok=True)
    for name, e in data.items():
        rows = [{"chip": p, "truth": t or None, "bear_id": pr.bear_id, "known": pr.known, "confidence": round(pr.confidence, 4)}
                for p, t, pr in zip(e.paths, e.labels, clf.predict(e.vectors))]
        atomic_write_text(out / "class_meta" / f"{name}.json", json.dumps(rows, indent=1))
