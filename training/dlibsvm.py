"""The class stage made from the original BearID's SVM (`classify: {svm: ..., svm_ids: ...}`,
what `bearid import-dlib --svm --ids` writes): bearsvm's one-vs-one vote as it was trained,
with BearID's open-set familiarity and threshold fitted on the splits beside it. The stage
writes what every class stage writes (classifier/classifier.pkl and ids.json, class_meta/,
metrics.json, plots/), so `runs`, `export`, `promote` and `serve` take it as any other.
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np

from bearid.dlibformat.classifier import ImportedSvmClassifier
from bearid.dlibformat.svm import OneVsOneSvm, read_bearsvm
from bearid.errors import BearIDError
from bearid.fsio import atomic_path, atomic_write_text
from bearid.training import plots
from bearid.training.classify import evaluate, write_predictions
from bearid.training.config import ClassifyConfig
from bearid.training.embed.embeddings import Embedded, load_embeddings, load_views, split_file
from bearid.training.progress import Log

SPLITS = ("train", "val", "test", "holdout")


def imported_svm(cfg: ClassifyConfig, dim: int | None = None) -> OneVsOneSvm:
    """The SVM a class config imports, read and checked (its samples' size against `dim`)."""
    if not cfg.svm or not cfg.svm_ids:
        raise BearIDError("this class config imports no SVM (svm, svm_ids)")
    return read_bearsvm(Path(cfg.svm), Path(cfg.svm_ids), dim or 128)


def novelty_of(cfg: ClassifyConfig) -> str:
    if cfg.open_set in ("auto", "mahalanobis"):
        return "mahalanobis"
    if cfg.open_set == "cosine":
        return "cosine"
    raise BearIDError(f"open_set {cfg.open_set}: an imported SVM takes mahalanobis or cosine")


def load_splits(embeddings: Path) -> dict[str, Embedded]:
    """The splits in an embeddings folder (BearID's .npz, or bearembed's NAME_embeds.xml)."""
    data = {name: load_embeddings(f) for name in SPLITS if (f := split_file(embeddings, name)) is not None}
    if "train" not in data or "val" not in data:
        raise BearIDError(f"{embeddings}: needs train and val embeddings (train.npz or train_embeds.xml, and val)")
    return data


def run_imported_classify(out: Path, cfg: ClassifyConfig, embeddings: Path, log: Log) -> dict:
    """The class stage of an imported SVM: the threshold on validation (its bears' chips
    against bears it never knew, and half the holdout's), the figures on test."""
    t0 = time.perf_counter()
    data = load_splits(embeddings)
    svm = imported_svm(cfg, data["train"].vectors.shape[1])
    empty = Embedded(np.zeros((0, svm.dim)), [], [])
    classes = set(svm.ids)
    train = data["train"].labelled()
    val_known, val_unknown = data["val"].split_known(classes)
    test_known, test_unknown = data.get("test", empty).split_known(classes)
    if "holdout" in data:
        h_val, h_test = data["holdout"].split_known(classes)[1].halves_by_bear()
        val_unknown, test_unknown = val_unknown + h_val, test_unknown + h_test
    views = load_views(embeddings)
    clf = ImportedSvmClassifier(
        svm=svm, novelty=novelty_of(cfg), target_far=cfg.target_far, min_known_accept=cfg.min_known_accept
    ).fit(
        train.vectors,
        train.labels,
        X_views=None if views is None else views.vectors,
        y_views=None if views is None else views.labels,
        X_val=val_known.vectors,
        y_val=val_known.labels,
        X_unknown=val_unknown.vectors,
        y_unknown=val_unknown.labels,
    )
    absent = [svm.ids[i] for i in sorted(set(range(len(svm.ids))) - set(clf.present_.tolist()))]
    log(f"classify: bearsvm's SVM, {len(svm.ids)} bears, {len(svm.pairs)} pairs, from {cfg.svm}")
    if absent:
        log(f"classify: no training chips of {', '.join(absent)}: the SVM names them, familiarity never favours them")
    log(f"classify: threshold {clf.threshold_:.4f} ({clf.threshold_note_})")
    (out / "classifier").mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "classifier" / "classifier.pkl") as tmp:
        tmp.write_bytes(pickle.dumps(clf))
    atomic_write_text(out / "classifier" / "ids.json", json.dumps(clf.ids, indent=1))
    metrics = {
        "threshold": round(clf.threshold_, 4),
        "threshold_note": clf.threshold_note_,
        "target_met": clf.target_met_,
        "chosen": {"classifier": "dlib_svm", "C": None, "open_set": clf.novelty, "naming_on": str(cfg.svm)},
        "identities": len(clf.ids),
        "without_training_chips": absent,
        "left_out": sorted(set(train.labels) - classes),  # bears the SVM does not know
        "val": evaluate(clf, val_known, val_unknown),
        "test": evaluate(clf, test_known, test_unknown),
    }
    for name in ("val", "test"):
        log(f"classify {name}: " + ", ".join(f"{k} {v}" for k, v in metrics[name].items() if k != "confusion"))
    if "confusion" in metrics["test"]:
        c = metrics["test"]["confusion"]
        plots.confusion(out / "plots" / "confusion.png", c["labels"], c["matrix"])
    write_predictions(out / "class_meta", clf, data)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    return metrics
