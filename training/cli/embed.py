"""`bearid embed ...`: the embed stage alone (train, run, eval), from chips XML, like the
original tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bearid.training.cli.common import Settings, console, log, stage_config

app = typer.Typer(help="The embed stage: train, run, evaluate.", no_args_is_help=True)


@app.command("train")
def embed_train(
    chip_meta: Annotated[Path, typer.Argument(help="chip_meta directory with train.xml (and val/test/holdout.xml)")],
    out: Annotated[Path, typer.Option(help="output directory (model/, embeddings/, embed_meta/, metrics.json)")],
    config: Annotated[Path | None, typer.Option(help="embed config YAML")] = None,
    setting: Settings = None,
) -> None:
    """Train the embedding network (ArcFace or triplet), embed every split, evaluate.

    Example: bearid embed train chips/chip_meta --out embed1 --set loss=triplet
    For several processes:
    torchrun --nproc_per_node 2 -m bearid.training.embed chips/chip_meta/train.xml --out embed1/model
    """
    from bearid.training import results, stages

    results.write_metrics(out, stages.run_embed(out, stage_config("embed", config, setting), chip_meta, log))


@app.command("run")
def embed_run(
    model: Annotated[Path, typer.Argument(help="an embed config directory (with model/embed.pt)")],
    chips: Annotated[Path, typer.Argument(help="chips XML")],
    out: Annotated[
        Path,
        typer.Option(
            help="embedding file to write (.npz with paths, labels, unit vectors and their lengths; "
            "--format dlib: the embeddings XML, e.g. test_embeds.xml)"
        ),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="npz (BearID's, with an embeddings XML in embed_meta/) or dlib (the original bearembed's: "
            "one dlib matrix file per chip under embeds/, and the embeddings XML listing them)",
        ),
    ] = "npz",
) -> None:
    """Embed chips into the original tools' embedding file (and an embeddings XML beside it).

    Example: bearid embed run results/.../embed_config_01 chips/chip_meta/test.xml --out test.npz
    As bearembed wrote them (bearsvm, and bearid classify train, read them):
    bearid embed run results/.../embed_config_01 chips/chip_meta/test.xml --format dlib --out test_embeds.xml
    """
    from bearid.errors import BearIDError

    if fmt not in ("npz", "dlib"):
        raise BearIDError(f"--format {fmt}: npz or dlib")
    from bearid.metadata import read_chips
    from bearid.training.embed.embeddings import write_embeddings
    from bearid.training.embed.loader import open_chips
    from bearid.training.embed.train import embed, load

    net, size, norm = load(model / "model")
    data = open_chips(chips, size, labelled_only=False, log=console.print, norm=norm)
    vectors = embed(net, data)
    if fmt == "dlib":
        from bearid.training.embed.embeddings import write_dlib_embeddings

        command = f"bearid embed run {model} {chips} --format dlib --out {out}"
        folder = write_dlib_embeddings(out, vectors, data.labels, data.paths, command)
        console.print(f"{len(data)} chips -> {out} (embedding files in {folder})")
        return
    write_embeddings(
        out, out.parent / "embed_meta" / f"{out.stem}.xml", read_chips(chips), vectors, data.labels, data.paths
    )
    console.print(f"{len(data)} chips -> {out}")


@app.command("eval")
def embed_eval(
    queries: Annotated[Path, typer.Argument(help="embedding file (.npz) of the chips to identify")],
    gallery: Annotated[Path, typer.Argument(help="embedding file (.npz) of known chips (e.g. train)")],
) -> None:
    """Verification AUC and 1-NN top-1/top-5 of query embeddings against a gallery.

    Example: bearid embed eval test.npz train.npz
    """
    from bearid.training.embed.embeddings import load_embeddings
    from bearid.training.embed.evaluate import embedding_report

    g = load_embeddings(gallery)
    print(json.dumps(embedding_report(load_embeddings(queries), g, sorted(set(filter(None, g.labels)))), indent=1))
