"""The training verbs of the `bearid` command (registered through the `bearid.commands`
entry point; torch is imported only when a verb runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.tree import Tree
from typer.core import TyperGroup

from bearid.cli.bars import Bars
from bearid.errors import BearIDError

console = Console()


def _log(message: str) -> None:
    console.print(message, highlight=False)


def train(
    pipeline: Annotated[
        Path | None,
        typer.Argument(help="Pipeline YAML (configs per stage; lists make a sweep). Default: the default configs."),
    ] = None,
    data: Annotated[
        Path, typer.Option(help="Directory with train.xml, val.xml, test.xml (and holdout.xml) from bearid data split.")
    ] = Path("splits"),
    results_dir: Annotated[Path, typer.Option("--results", help="The results tree.")] = Path("results"),
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change one setting of every config of a stage, e.g. --set embed.steps=400."),
    ] = None,
    mlflow: Annotated[
        str | None,
        typer.Option(help="Also log each stage as an MLflow run at this tracking URI (e.g. file:./mlruns)."),
    ] = None,
) -> None:
    """Run face -> chip -> embed -> classify for every branch, reusing unchanged stages.

    Example: bearid train pipeline.yaml --data splits --results results --set embed.steps=400
    """
    from bearid.training.config import read_sweep
    from bearid.training.train import train as run

    sweep = read_sweep(pipeline).with_overrides(setting or [])
    tracker = None
    if mlflow:
        from bearid.training.tracking import MlflowTracker

        tracker = MlflowTracker(mlflow, results_dir)
    with Bars(console) as bars:
        report = run(sweep, data, results_dir, bars, tracker=tracker)
    console.print(f"{len(report.computed)} stage(s) computed, {len(report.reused)} reused, {report.seconds:.0f} s")
    show_runs(results_dir, "open_set", False)


class _RunsGroup(TyperGroup):
    """`bearid runs RESULTS` shows the tree (the `show` verb); `du` and `prune` keep house."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


runs_app = typer.Typer(
    cls=_RunsGroup,
    no_args_is_help=True,
    help="The results tree: metrics and best path (show), disk use (du), pruning (prune).",
)


@runs_app.command("show")
def runs(
    results_dir: Annotated[Path, typer.Argument(help="The results tree.")],
    by: Annotated[
        str,
        typer.Option(
            help="Best path by this validation figure: open_set (mean of BAKS and BAUS), top1, baks, baus, auroc."
        ),
    ] = "open_set",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the results tree with each stage's headline metrics and the best path marked.

    Example: bearid runs results --by top1
    """
    show_runs(results_dir, by, as_json)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@runs_app.command("du")
def runs_du(results_dir: Annotated[Path, typer.Argument(help="The results tree.")]) -> None:
    """Disk use of every stage directory: weights, chips, embeddings, other.

    Example: bearid runs du results
    """
    from rich.table import Table

    from bearid.training.housekeeping import CATEGORIES, du

    rows = du(results_dir)
    table = Table("stage directory", *CATEGORIES, "total", "")
    for u in rows:
        table.add_row(
            str(u.dir.relative_to(results_dir)),
            *(_mib(u.bytes[c]) for c in CATEGORIES),
            _mib(u.total),
            "pruned" if u.pruned else "",
        )
    table.add_row(
        "all", *(_mib(sum(u.bytes[c] for u in rows)) for c in CATEGORIES), _mib(sum(u.total for u in rows)), ""
    )
    console.print(table)


@runs_app.command("prune")
def runs_prune(
    results_dir: Annotated[Path, typer.Argument(help="The results tree.")],
    apply: Annotated[bool, typer.Option("--apply", help="Delete (without it: only say what would go).")] = False,
    by: Annotated[str, typer.Option(help="The best path (kept) by this metric.")] = "open_set",
    keep: Annotated[list[Path] | None, typer.Option(help="Also keep this results path (repeat).")] = None,
) -> None:
    """Remove weights, chip images and embeddings of abandoned branches; keep configs,
    metrics, plots and XML. Never touches the best path or a promoted bundle's lineage.
    Dry run unless --apply.

    Example: bearid runs prune results --apply
    """
    from bearid.training.housekeeping import apply as run_apply
    from bearid.training.housekeeping import plan, promoted_lineage, protected

    promoted: list[str] = []
    try:
        from bearid.serving.store import ModelStore

        promoted = promoted_lineage(results_dir, ModelStore())
    except ImportError:
        pass  # no [serve] extra: no model store to protect
    p = plan(results_dir, protected(results_dir, by, keep, promoted))
    for d, freed in p.dirs:
        console.print(
            f"{'prune' if apply else 'would prune'} {d.relative_to(results_dir)}: {_mib(freed)}", highlight=False
        )
    console.print(
        f"{len(p.dirs)} stage dir(s), {_mib(p.bytes)} {'freed' if apply else 'to free (dry run: add --apply)'}; "
        f"kept untouched: {len(p.kept)} on the best or promoted paths",
        highlight=False,
    )
    if apply:
        run_apply(p)


def show_runs(results_dir: Path, by: str, as_json: bool) -> None:
    from bearid.training.runs import SELECTED_ON, headline
    from bearid.training.runs import runs as find

    if not results_dir.is_dir():
        raise BearIDError(f"{results_dir}: no such results tree (make one with bearid train)")
    r = find(results_dir, by)
    if not r.paths:
        raise BearIDError(f"{results_dir}: no finished face -> chip -> embed -> class path in this results tree")
    if as_json:
        print(json.dumps(r.as_json(), indent=1))
        return
    best = set(r.best or [])
    tree = Tree(f"[bold]{results_dir}[/] (best by {SELECTED_ON} {by} marked ★; figures val/test)")
    nodes: dict[Path, Tree] = {}
    for path in r.paths:
        parent = tree
        for d in path:
            if d not in nodes:
                star = " ★" if d in best else ""
                nodes[d] = parent.add(f"{d.name}{star}  [dim]{headline(d)}[/]")
            parent = nodes[d]
    console.print(tree)
    if r.best:
        test = r.figures(r.best, "test")
        console.print(f"best path (chosen on {SELECTED_ON} {by}): {r.best[-1]}", highlight=False)
        console.print("its test figures: " + ", ".join(f"{k} {_fig(v)}" for k, v in test.items()), highlight=False)
    else:
        console.print(f"no path has a {SELECTED_ON} {by} figure, so none is best", highlight=False)


def _fig(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


@runs_app.command("diff")
def runs_diff(
    path_a: Annotated[Path, typer.Argument(help="A results path (a stage directory of the tree).")],
    path_b: Annotated[Path, typer.Argument(help="Another results path.")],
) -> None:
    """The config keys that differ between two results paths, stage by stage, and their
    figures side by side.

    Example: bearid runs diff results/face_config_01/chip_config_01/embed_config_01/class_config_01
    results/face_config_01/chip_config_01/embed_config_02/class_config_01
    """
    from rich.table import Table

    from bearid.training.runs import path_diff

    diff = path_diff(path_a, path_b)
    configs = Table("stage", "key", str(path_a.name), str(path_b.name), title="configs that differ")
    for stage, key, a, b in diff.configs:
        configs.add_row(stage, key, str(a), str(b))
    console.print(configs if diff.configs else "the configs are the same on every stage")
    figures = Table("stage", "figure", str(path_a.name), str(path_b.name), title="figures")
    for stage, name, a, b in diff.figures:
        figures.add_row(stage, name, _fig(a) if not isinstance(a, str) else a, _fig(b) if not isinstance(b, str) else b)
    console.print(figures)


# -- each stage alone, from the previous stage's XML, like the original tools ----------
face_app = typer.Typer(help="bearface: train, detect, evaluate.", no_args_is_help=True)
embed_app = typer.Typer(help="bearembed: train, run, evaluate.", no_args_is_help=True)
classify_app = typer.Typer(help="bearsvm: train, run, evaluate.", no_args_is_help=True)
Settings = Annotated[list[str] | None, typer.Option("--set", help="A config setting, e.g. --set steps=500.")]


def _config(stage: str, config: Path | None, settings: list[str] | None):
    from bearid.training.config import stage_config

    return stage_config(stage, config, settings)


def _splits(train_xml: Path, others: dict[str, Path | None]) -> dict[str, Path]:
    return {"train": train_xml, **{k: v for k, v in others.items() if v is not None}}


@face_app.command("train")
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
        out, _config("face", config, setting), _splits(train_xml, {"val": val, "test": test}), _log
    )
    results.write_metrics(out, metrics)


@face_app.command("detect")
def face_detect(
    model: Annotated[Path, typer.Argument(help="a face config directory (with model/ and config.yaml)")],
    photos: Annotated[list[Path], typer.Argument(help="photos, folders of photos, or an image-list XML")],
    out: Annotated[Path, typer.Option(help="faces XML to write (boxes, landmarks, detection scores)")],
) -> None:
    """Find faces in photos and write them as imglab XML, for a person to correct.

    Example: bearid face detect results/face_config_01 new_photos/ --out new_faces.xml
    """
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


@face_app.command("eval")
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


def chip(
    faces: Annotated[list[Path], typer.Argument(help="faces XML files (one per split)")],
    out: Annotated[Path, typer.Option(help="output directory (chip_images/, chip_meta/)")],
    config: Annotated[Path | None, typer.Option(help="chip config YAML")] = None,
    setting: Settings = None,
) -> None:
    """Cut pose-normalised face chips from landmarks; report faces that could not be chipped.

    Example: bearid chip results/face_config_01/face_meta/*.xml --out chips --set size=150
    """
    from bearid.metadata import read_faces, write_chips
    from bearid.training.chip import chip_dataset
    from bearid.training.embed.chipcache import build_cache

    spec = _config("chip", config, setting).spec()
    for path in faces:
        chipset, report = chip_dataset(read_faces(path), out / "chip_images", out / "chip_meta", spec)
        write_chips(chipset, out / "chip_meta" / path.name)
        note = f"; packed into {build_cache(out / 'chip_meta' / path.name).root}" if chipset.chips else ""
        console.print(
            f"{path.name}: {report.chipped} of {report.faces} faces chipped"
            + (f"; not chipped: {dict(report.problems)}" if report.problems else "")
            + note
        )


@embed_app.command("train")
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

    results.write_metrics(out, stages.run_embed(out, _config("embed", config, setting), chip_meta, _log))


@embed_app.command("run")
def embed_run(
    model: Annotated[Path, typer.Argument(help="an embed config directory (with model/embed.pt)")],
    chips: Annotated[Path, typer.Argument(help="chips XML")],
    out: Annotated[
        Path, typer.Option(help="embedding file to write (.npz with paths, labels, unit vectors and their lengths)")
    ],
) -> None:
    """Embed chips into the original tools' embedding file (and an embeddings XML beside it).

    Example: bearid embed run results/.../embed_config_01 chips/chip_meta/test.xml --out test.npz
    """
    from bearid.metadata import read_chips
    from bearid.training.embed.embeddings import write_embeddings
    from bearid.training.embed.loader import open_chips
    from bearid.training.embed.train import embed, load

    net, size, norm = load(model / "model")
    data = open_chips(chips, size, labelled_only=False, log=console.print, norm=norm)
    vectors = embed(net, data)
    write_embeddings(
        out, out.parent / "embed_meta" / f"{out.stem}.xml", read_chips(chips), vectors, data.labels, data.paths
    )
    console.print(f"{len(data)} chips -> {out}")


@embed_app.command("eval")
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


@classify_app.command("train")
def classify_train(
    embeddings: Annotated[
        Path,
        typer.Argument(
            help="embeddings directory with train.npz, val.npz, test.npz (holdout.npz; train_views.npz, "
            "augmented views of the training chips, joins the open-set Gaussians)"
        ),
    ],
    out: Annotated[Path, typer.Option(help="output directory (classifier/, class_meta/, metrics.json)")],
    config: Annotated[Path | None, typer.Option(help="classify config YAML")] = None,
    setting: Settings = None,
) -> None:
    """Fit the SVM, choose the unknown-bear threshold on validation, evaluate on test.

    Example: bearid classify train results/.../embed_config_01/embeddings --out svm1 --set C=10
    """
    from bearid.training import results, stages

    results.write_metrics(out, stages.run_classify(out, _config("classify", config, setting), embeddings, _log))


@classify_app.command("run")
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


@classify_app.command("eval")
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


def import_dlib(
    face: Annotated[Path, typer.Option(help="The dlib face detector file: bearface_network.dat, or an MMOD .dat.")],
    embed: Annotated[Path, typer.Option(help="The dlib embedding network: bearembed_network.dat (a metric ResNet).")],
    data: Annotated[
        Path,
        typer.Option(help="Splits (train/val/test.xml from bearid data split): the class stage is fitted on them."),
    ],
    results_dir: Annotated[Path, typer.Option("--out", help="The results tree to write the imported path into.")],
    landmarks: Annotated[
        Path | None, typer.Option(help="A dlib shape predictor .dat, where the face file holds none (bearface's does).")
    ] = None,
    parts: Annotated[
        str | None, typer.Option(help="The shape predictor's part names, comma-separated (default: by their number).")
    ] = None,
    chips: Annotated[
        str,
        typer.Option(
            help="Chip template: bearid (bearchip's, for bearembed) or dlib_face (dlib's 5-point human model)."
        ),
    ] = "bearid",
) -> None:
    """Import the original BearID's dlib models (or dlib's own) as a path of the results tree:
    the detector and shape predictor as a face stage, the chips they were trained on, the
    ResNet as an embed stage, and a class stage fitted on the splits' embeddings. Then
    `bearid runs`, `export`, `promote` and `serve` work as for any trained path.

    Example: bearid import-dlib --face bearface_network.dat --embed bearembed_network.dat --data splits --out results
    """
    from bearid.training.config import Sweep
    from bearid.training.train import train as run

    sweep = Sweep.of_dlib(face, embed, landmarks, parts.split(",") if parts else None, chips)
    with Bars(console) as bars:
        report = run(sweep, data, results_dir, bars)
    done = f"{len(report.computed)} stage(s) computed, {len(report.reused)} reused"
    console.print(f"imported: {report.branches[0][-1]} ({done})", highlight=False)
    show_runs(results_dir, "open_set", False)


def register(app: typer.Typer) -> None:
    """Add the training verbs to the `bearid` command."""
    app.command("train")(train)
    app.command("import-dlib")(import_dlib)
    app.add_typer(runs_app, name="runs")
    app.add_typer(face_app, name="face")
    app.command("chip")(chip)
    app.add_typer(embed_app, name="embed")
    app.add_typer(classify_app, name="classify")
