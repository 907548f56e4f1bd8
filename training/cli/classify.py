"""`bearid classify ...`: the classify stage alone (train, run, eval), from embedding files,
like the original tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bearid.training.cli.common import Settings, log, stage_config

app = typer.Typer(help="The classify stage: train, run, evaluate.", no_args_is_help=True)


@app.command("train")
def classify_train(
    embeddings: Annotated[
        Path,
        typer.Argument(
            help="embeddings directory with train.npz, val.npz, test.npz (holdout.npz; train_views.npz, "
            "augmented views of the training chips, joins the open-set Gaussians), or the original bearembed's "
            "train_embeds.xml, val_embeds.xml, test_embeds.xml"
        ),
    ],
    out: Annotated[Path, typer.Option(help="output directory (classifier/, class_meta/, metrics.json)")],
    config: Annotated[Path | None, typer.Option(help="classify config YAML")] = None,
    setting: Settings = None,
) -> None:
    """Fit the classifier (SVM, kNN or nearest mean, C and open-set score chosen on the chips), choose the
    unknown-bear threshold on validation, evaluate on test.

    Example: bearid classify train results/.../embed_config_01/embeddings --out svm1 --set C=10
    The original SVM: --set svm=bearsvm_network.dat --set svm_ids=bearsvm_network_ids.dat
    """
    from bearid.training import results, stages
    from bearid.training.embed.embeddings import npz_folder

    cfg = stage_config("classify", config, setting)
    if not cfg.svm:  # BearID's own classifier reads .npz: bearembed's XMLs are converted first
        embeddings = npz_folder(embeddings, out / "embeddings")
    results.write_metrics(out, stages.run_classify(out, cfg, embeddings, log))


@app.command("run")
def classify_run(
    model: Annotated[Path, typer.Argument(help="a class config directory (with classifier/classifier.pkl)")],
    embeddings: Annotated[Path, typer.Argument(help="embedding file (.npz)")],
) -> None:
    """Name the bear of each embedding, or say it is unknown (JSON lines).

    Example: bearid classify run results/.../class_config_01 new.npz
    """
    from bearid.classify import load_classifier
    from bearid.training.embed.embeddings import load_embeddings

    clf = load_classifier(model / "classifier" / "classifier.pkl")
    e = load_embeddings(embeddings)
    for path, pred in zip(e.paths, clf.predictions(e.vectors)):
        print(
            json.dumps(
                {
                    "chip": path,
                    "bear_id": pred.bear_id,
                    "known": pred.known,
                    "confidence": round(pred.confidence, 4),
                    "candidates": [{"bear_id": b, "score": round(s, 4)} for b, s in pred.candidates],
                }
            )
        )


@app.command("eval")
def classify_eval(
    model: Annotated[Path, typer.Argument(help="a class config directory")],
    embeddings: Annotated[
        Path, typer.Argument(help="embedding file (.npz): bears not in the classifier count as unknown")
    ],
) -> None:
    """Top-1/top-5, BAKS, BAUS, AUROC and the confusion matrix on an embedding file.

    Example: bearid classify eval results/.../class_config_01 test.npz
    """
    from bearid.classify import load_classifier
    from bearid.training.classify import evaluate
    from bearid.training.embed.embeddings import load_embeddings

    clf = load_classifier(model / "classifier" / "classifier.pkl")
    known, unknown = load_embeddings(embeddings).split_known(set(clf.ids))
    print(json.dumps(evaluate(clf, known, unknown), indent=1))
