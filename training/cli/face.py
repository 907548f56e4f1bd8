"""`bearid face ...`: the face stage alone (train, detect, eval), from faces XML, like the
original tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bearid.training.cli.common import Settings, console, log, splits, stage_config

app = typer.Typer(help="The face stage: train, detect, evaluate.", no_args_is_help=True)


@app.command("train")
def face_train(
    train_xml: Annotated[Path, typer.Argument(help="faces XML of the training photos")],
    out: Annotated[Path, typer.Option(help="output directory (model/, face_meta/, metrics.json, plots/)")],
    val: Annotated[Path | None, typer.Option(help="faces XML to validate on")] = None,
    test: Annotated[Path | None, typer.Option(help="faces XML to test on")] = None,
    config: Annotated[Path | None, typer.Option(help="face config YAML")] = None,
    setting: Settings = None,
) -> None:
    """Train the face finder and measure AP@0.5, precision, recall and landmark NME.

    Example: bearid face train splits/train.xml --val splits/val.xml --test splits/test.xml --out face1
    --set backend=dlib
    """
    from bearid.training import results, stages

    metrics = stages.run_face(
        out, stage_config("face", config, setting), splits(train_xml, {"val": val, "test": test}), log
    )
    results.write_metrics(out, metrics)


@app.command("detect")
def face_detect(
    model: Annotated[Path, typer.Argument(help="a face config directory (with model/ and config.yaml)")],
    photos: Annotated[list[Path], typer.Argument(help="photos, folders of photos, or an image-list XML")],
    out: Annotated[Path, typer.Option(help="faces XML to write (boxes, landmarks, detection scores)")],
) -> None:
    """Find faces in photos and write them as imglab XML, for a person to correct.

    Example: bearid face detect results/face_config_01 new_photos/ --out new_faces.xml
    """
    from bearid.cli.bars import Bars
    from bearid.fsio import check_file_target
    from bearid.metadata import write_faces
    from bearid.training.data import photo_samples
    from bearid.training.face.detect import detect_all, faces_dataset, finder_from_dir

    finder, cfg = finder_from_dir(model)
    check_file_target(out)
    samples = photo_samples(photos)
    unreadable: dict[Path, str] = {}
    with Bars() as bars:
        found = detect_all(samples, finder.find, cfg.refine_side, cfg.threshold, unreadable, log=bars)
    write_faces(faces_dataset(samples, found, cfg.threshold, out.parent, set(unreadable)), out)
    for why in unreadable.values():
        console.print(f"not read: {why}", highlight=False)
    read = len(samples) - len(unreadable)
    console.print(f"{sum(len(f) for f in found)} face(s) in {read} photo(s) -> {out}", highlight=False)
    if unreadable:
        console.print(f"{len(unreadable)} photo(s) could not be read and are not in {out}", highlight=False)
        raise typer.Exit(1)


@app.command("eval")
def face_eval(
    model: Annotated[Path, typer.Argument(help="a face config directory")],
    truth: Annotated[Path, typer.Argument(help="faces XML with the true boxes and landmarks")],
) -> None:
    """AP@0.5, precision, recall and landmark NME against a faces XML.

    Example: bearid face eval results/face_config_01 splits/test.xml
    """
    from bearid.training.data import read_samples
    from bearid.training.face.detect import detect_all, evaluate, finder_from_dir

    finder, cfg = finder_from_dir(model)
    samples = read_samples(truth)
    print(
        json.dumps(
            evaluate(
                samples,
                detect_all(samples, finder.find, cfg.refine_side, threshold=cfg.search_threshold),
                cfg.threshold,
            ),
            indent=1,
        )
    )
