"""Plots a person looks at: loss curves, ROC, confusion matrix, embedding map, detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bearid.training.optim import Curves


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(path: Path, curves: dict[str, Curves]) -> Path:
    """Training loss per step (smoothed) and the validation figures taken along the way:
    validation losses on the same axes, other figures (AUC, top-1) on a second one; a dashed
    line marks the step whose weights were kept where a validation figure chose it."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=90)
    other = None
    for i, (name, curve) in enumerate(curves.items()):
        colour = f"C{i}"
        v = np.asarray(curve.loss)
        if len(v) > 20:
            w = max(1, len(v) // 50)
            v = np.convolve(v, np.ones(w) / w, mode="valid")
        ax.plot(v, label=f"{name} loss", color=colour)
        for key in sorted({k for r in curve.validation for k in r if k != "step"}):
            steps = [r["step"] for r in curve.validation if key in r]
            values = [r[key] for r in curve.validation if key in r]
            if key == "val_loss":
                ax.plot(steps, values, "o--", color=colour, label=f"{name} validation loss", markersize=3)
            else:
                other = other or ax.twinx()
                other.plot(steps, values, "s:", label=f"{name} validation {key}", markersize=3)
        if "figure" in curve.kept:
            ax.axvline(curve.kept["step"], color=colour, linestyle="--", linewidth=1,
                       label=f"{name} kept: step {curve.kept['step']} (best {curve.kept['figure']})")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    handles, labels = ax.get_legend_handles_labels()
    if other is not None:
        other.set_ylabel("validation figure")
        more = other.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, fontsize=7)
    fig.tight_layout()
    return _save(fig, path, plt)


def roc(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4), dpi=90)
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path, plt)


def confusion(path: Path, labels: list[str], matrix: list[list[int]]) -> Path:
    plt = _plt()
    m = np.asarray(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(0.35 * len(labels) + 2, 0.35 * len(labels) + 1.5), dpi=90)
    ax.imshow(m / np.maximum(m.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return _save(fig, path, plt)


def embedding_map(path: Path, vectors: np.ndarray, labels: list[str]) -> Path:
    """The embeddings projected on their first two principal components, coloured by bear."""
    plt = _plt()
    x = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    fig, ax = plt.subplots(figsize=(6, 5), dpi=90)
    names = sorted(set(labels))
    cmap = plt.get_cmap("tab20", max(len(names), 1))
    for i, name in enumerate(names):
        sel = np.array([label == name for label in labels])
        ax.scatter(xy[sel, 0], xy[sel, 1], s=10, color=cmap(i), label=name)
    if len(names) <= 24:
        ax.legend(fontsize=6, ncol=2, markerscale=1.5)
    ax.set_title("embeddings (PCA)")
    fig.tight_layout()
    return _save(fig, path, plt)


def detections(path: Path, examples: list[tuple[object, list, list]]) -> Path:
    """Photos with true boxes (green) and detected boxes and landmarks (red)."""
    from PIL import Image, ImageDraw

    tiles = []
    for image, truths, found in examples:
        img = image.copy()
        k = 320 / max(img.size)
        img = img.resize((max(1, int(img.width * k)), max(1, int(img.height * k))))
        d = ImageDraw.Draw(img)
        for x, y, w, h in truths:
            d.rectangle((x * k, y * k, (x + w) * k, (y + h) * k), outline=(0, 230, 0), width=2)
        for det in found:
            x, y, w, h = det.box
            d.rectangle((x * k, y * k, (x + w) * k, (y + h) * k), outline=(255, 40, 40), width=1)
            for px, py in det.landmarks.values():
                d.ellipse((px * k - 2, py * k - 2, px * k + 2, py * k + 2), fill=(255, 40, 40))
        tiles.append(img)
    sheet = Image.new("RGB", (320 * 4, 320 * ((len(tiles) + 3) // 4)), (30, 30, 30))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % 4) * 320, (i // 4) * 320))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def _save(fig, path: Path, plt) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
