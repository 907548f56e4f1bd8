"""`bearid runs ...`: the results tree (show, diff) and its housekeeping (du, prune)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.tree import Tree
from typer.core import TyperGroup

from bearid.errors import BearIDError
from bearid.training.cli.common import console

# The library's bearid.training.runs.MEASURES, here so that -h lists them (tests check they agree).
Measure = Literal["open_set", "top1", "baks", "baus", "auroc"]


class _RunsGroup(TyperGroup):
    """`bearid runs RESULTS` shows the tree (the `show` verb); `du` and `prune` keep house."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RunsGroup,
    no_args_is_help=True,
    help="The results tree: metrics and best path (show), disk use (du), pruning (prune).",
)


@app.command("show")
def runs(
    results_dir: Annotated[Path, typer.Argument(help="The results tree.")],
    by: Annotated[
        Measure,
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


@app.command("du")
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


@app.command("prune")
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
    from bearid.training.runs import SELECTED_ON, chosen_text, headline, target_met
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
    tree = Tree(
        f"[bold]{results_dir}[/] (best by {SELECTED_ON} {by} marked ★, on validation photos answered end to end "
        "where they were; figures val/test)"
    )
    nodes: dict[Path, Tree] = {}
    for path in r.paths:
        parent = tree
        for d in path:
            if d not in nodes:
                star = " ★" if d in best else ""
                extra = ""
                if d == path[-1]:
                    v = r.figures(path, SELECTED_ON)
                    if v.get("face_recall") is not None:
                        extra = (
                            f"; val photos answered: recall {_fig(v['face_recall'])}, open_set {_fig(v['open_set'])}"
                        )
                    if target_met(d) is False:
                        extra += " [yellow]⚠ open-set target not met on val[/]"
                if chosen_text(d):
                    extra = f"; chose {chosen_text(d)}" + extra
                nodes[d] = parent.add(f"{d.name}{star}  [dim]{headline(d)}{extra}[/]")
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


@app.command("diff")
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
