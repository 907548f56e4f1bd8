"""`bearid import-dlib`: the original BearID's dlib models as a path of the results tree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bearid.training.cli.common import console
from bearid.training.cli.runs import show_runs


def import_dlib(
    face: Annotated[Path, typer.Option(help="The dlib face detector file: bearface_network.dat, or an MMOD .dat.")],
    embed: Annotated[Path, typer.Option(help="The dlib embedding network: bearembed_network.dat (a metric ResNet).")],
    data: Annotated[
        Path,
        typer.Option(help="Splits (train/val/test.xml from bearid data split): the class stage is fitted on them."),
    ],
    results_dir: Annotated[Path, typer.Option("--out", help="The results tree to write the imported path into.")],
    landmarks: Annotated[
        Path | None,
        typer.Option(help="A dlib shape predictor .dat, where the face file holds none (bearface_network.dat does)."),
    ] = None,
    parts: Annotated[
        str | None, typer.Option(help="The shape predictor's part names, comma-separated (default: by their number).")
    ] = None,
    chips: Annotated[
        str,
        typer.Option(
            help="Chip template: bearid (the original BearID's, for bearembed_network.dat) or dlib_face "
            "(dlib's 5-point human model)."
        ),
    ] = "bearid",
    svm: Annotated[
        Path | None,
        typer.Option(help="The original classifier, bearsvm_network.dat: the class stage uses it as it is."),
    ] = None,
    ids: Annotated[Path | None, typer.Option(help="bearsvm's ids file, bearsvm_network_ids.dat (with --svm).")] = None,
) -> None:
    """Import the original BearID's dlib models (or dlib's own) as a path of the results tree:
    the detector and shape predictor as a face stage, the chips they were trained on, the
    ResNet as an embed stage, and a class stage fitted on the splits' embeddings (with --svm
    and --ids: bearsvm's SVM as it is, its open-set threshold fitted on the splits). Then
    `bearid runs`, `export`, `promote` and `serve` work as for any trained path.

    Example: bearid import-dlib --face bearface_network.dat --embed bearembed_network.dat --data splits --out results
    """
    from bearid.cli.bars import Bars
    from bearid.training.cli.train import check_splits
    from bearid.training.config import Sweep

    sweep = Sweep.of_dlib(face, embed, landmarks, parts.split(",") if parts else None, chips, svm, ids)
    check_splits(data)
    check_models(sweep)  # a refused import writes nothing: every input is read before the results tree
    from bearid.training.train import train as run

    with Bars(console) as bars:
        report = run(sweep, data, results_dir, bars)
    done = f"{len(report.computed)} stage(s) computed, {len(report.reused)} reused"
    console.print(f"imported: {report.branches[0][-1]} ({done})", highlight=False)
    show_runs(results_dir, "open_set", False)


def check_models(sweep) -> None:
    """The dlib files of an import sweep read as BearID will use them: the detector and its
    shape predictor (imported into a temporary folder, then dropped), the metric ResNet, and
    bearsvm's SVM and ids where given (its samples the ResNet's size)."""
    import tempfile

    from bearid.dlibformat.network import read_network_file
    from bearid.errors import BearIDError
    from bearid.training.face.mmod import import_model

    with tempfile.TemporaryDirectory(prefix="bearid-import-") as scratch:
        import_model(sweep.face[0], Path(scratch) / "model")
    cfg = sweep.embed[0]
    network, _ = read_network_file(Path(cfg.init))
    if network.architecture != "dlib_resnet":
        raise BearIDError(f"{cfg.init}: a dlib {network.architecture} network, not the metric ResNet")
    if network.input.size not in (None, (cfg.input_size, cfg.input_size)):
        raise BearIDError(f"{cfg.init}: takes {network.input.size} chips, the config gives {cfg.input_size}")
    if sweep.classify[0].svm:  # bearsvm's SVM, over the ResNet's embeddings
        from bearid.dlibformat.network import Fc
        from bearid.training.dlibsvm import imported_svm

        last = network.ops[-1]
        imported_svm(sweep.classify[0], last.weight.shape[1] if isinstance(last, Fc) else None)
