"""`bearid runs`: the results tree with each stage's figures, and the best path.

The best path is chosen on the validation split, never on test: test figures are reported
beside, so the figure a path is shown with was not used to choose it. Paths are ranked on
their validation photos answered end to end (`answered.json`, bearid.training.pathnet: a
missed face counts as wrong, a false face as a false accept, as the promotion gate counts),
with the class stage's chip-level figures beside; a path that has no answered figures (the
dlib HOG face backend, trees made before) is ranked on its chip-level ones. Ties are broken by the
next validation measures in `TIE_BREAK`, then by the path's directory names (the earliest
numbers first), so the same tree always gives the same best path. A path with no
validation figure for the measure is never the best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bearid.errors import BearIDError
from bearid.training import results
from bearid.training.config import stage_of_dir

SELECTED_ON = "val"
# Headline figures per stage: (name shown, key in the split's metrics).
HEADLINES = {
    "face": [("AP50", "ap50"), ("NME", "nme"), ("recall", "recall")],
    "chip": [("chipped", "chipped")],
    "embed": [("AUC", "verification_auc"), ("1-NN top1", "nn_top1")],
    "classify": [("top1", "top1"), ("BAKS", "baks"), ("BAUS", "baus"), ("AUROC", "auroc")],
}
MEASURES = ("open_set", "top1", "baks", "baus", "auroc")  # open_set: the mean of BAKS and BAUS
TIE_BREAK = ("open_set", "auroc", "top1")
ANSWERED = ("open_set", "top1", "baks", "baus")  # what photos answered end to end give


def measure(metrics: dict, split: str, by: str) -> float | None:
    """A class stage's figure `by` on `split` (None where it has none)."""
    figures = metrics.get(split)
    if not isinstance(figures, dict):
        return None
    if by == "open_set":
        values = [v for v in (figures.get("baks"), figures.get("baus")) if _number(v)]
        return sum(values) / len(values) if values else None
    value = figures.get(by)
    return float(value) if _number(value) else None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def check_measure(by: str) -> str:
    if by not in MEASURES:
        raise BearIDError(f"--by {by}: choose one of {', '.join(MEASURES)}")
    return by


@dataclass
class Runs:
    root: Path
    paths: list[list[Path]]
    best: list[Path] | None
    by: str

    def figures(self, path: list[Path], split: str) -> dict[str, float | None]:
        """The path's figures on `split`: answered end to end where they were, else chip-level."""
        return path_figures(path, split)

    def chip_figures(self, path: list[Path], split: str) -> dict[str, float | None]:
        m = results.read_metrics(path[-1])
        return {name: measure(m, split, name) for name in MEASURES}

    def as_json(self) -> dict:
        def node(d: Path) -> dict:
            m = results.read_metrics(d)
            stage = stage_of_dir(d.name).name
            return {
                "dir": str(d.relative_to(self.root)),
                "chosen": m.get("chosen"),
                **{
                    split: {name: (m.get(split) or {}).get(key) for name, key in HEADLINES[stage]}
                    for split in ("val", "test")
                },
            }

        return {
            "selected_on": SELECTED_ON,
            "by": self.by,
            "tie_break": [f"{SELECTED_ON} {t}" for t in TIE_BREAK if t != self.by] + ["directory names"],
            "best": [str(p.relative_to(self.root)) for p in self.best] if self.best else None,
            "paths": [
                {
                    "stages": [node(d) for d in p],
                    "val": self.figures(p, "val"),
                    "val_chips": self.chip_figures(p, "val"),
                    "test": self.figures(p, "test"),
                    "open_set_target_met": target_met(p[-1]),
                    "class_chosen": chosen(p[-1]),
                }
                for p in self.paths
            ],
        }


def path_figures(path: list[Path], split: str) -> dict[str, float | None]:
    """A path's figures on `split`: its photos answered end to end where the training answered
    them (validation), the class stage's chip-level figures for the rest (AUROC always)."""
    from bearid.training.pathnet import read_answered

    chips = {name: measure(results.read_metrics(path[-1]), split, name) for name in MEASURES}
    answered = read_answered(path[-1]).get(split)
    if not answered:
        return chips
    return {
        **chips,
        **{name: measure({split: answered}, split, name) for name in ANSWERED},
        "face_recall": answered.get("face_recall"),
    }


def chosen(stage_dir: Path) -> dict | None:
    """What a stage chose on the data: the class stage its classifier, C and open-set score,
    a fine-tuned embed stage its learning rate (and on what)."""
    return results.read_metrics(stage_dir).get("chosen")


def chosen_text(stage_dir: Path) -> str:
    """A stage's choice in a few words, e.g. "svm C 10, mahalanobis" or "lr 0.0002" ("" for a
    stage that chose nothing, or was trained before it chose)."""
    c = chosen(stage_dir)
    if not c:
        return ""
    if "lr" in c:
        return f"lr {c['lr']:g}" + ("" if c.get("chosen_by") else f" (not chosen: {c.get('why')})")
    return c["classifier"] + (f" C {c['C']:g}" if c.get("C") is not None else "") + f", {c['open_set']}"


def target_met(class_dir: Path) -> bool | None:
    """Whether the class stage's open-set threshold met its false-accept target on validation."""
    m = results.read_metrics(class_dir)
    if "target_met" in m:  # None: no unknown bears in validation to measure it on
        return None if m["target_met"] is None else bool(m["target_met"])
    note = m.get("threshold_note")
    return None if note is None else "not met" not in note


def rank_key(path: list[Path], by: str) -> tuple:
    """Sorts the best path first: the validation measure, then the tie-breakers, highest
    first, then the directory names."""
    figures = path_figures(path, SELECTED_ON)
    keys = [by, *(t for t in TIE_BREAK if t != by)]
    values = [figures.get(k) for k in keys]
    return (*(-v if v is not None else math.inf for v in values), [d.name for d in path])


def runs(root: Path, by: str = "open_set", keep=lambda path: True) -> Runs:
    """The tree's finished paths, and the best of those `keep` accepts by validation `by`."""
    check_measure(by)
    root = Path(root)
    paths = results.walk(root)
    eligible = [p for p in paths if keep(p) and path_figures(p, SELECTED_ON).get(by) is not None]
    best = min(eligible, key=lambda p: rank_key(p, by)) if eligible else None
    return Runs(root, paths, best, by)


def headline(d: Path) -> str:
    """A stage's headline figures, validation / test."""
    m = results.read_metrics(d)
    parts = []
    for name, key in HEADLINES[stage_of_dir(d.name).name]:
        val, test = ((m.get(split) or {}).get(key) for split in ("val", "test"))
        if val is None and test is None:
            continue
        parts.append(f"{name} {_show(val)}/{_show(test)}")
    return ", ".join(parts) + (" (val/test)" if parts else "")


def _show(v) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def chain(path: Path) -> list[Path]:
    """The stage directories from the face stage down to `path`, a stage directory of a tree."""
    path = Path(path)
    if not (path / results.CONFIG).is_file():
        raise BearIDError(f"{path}: not a stage directory of a results tree (no {results.CONFIG})")
    dirs = [path]
    while stage_of_dir(dirs[0].name).name != "face":
        dirs.insert(0, dirs[0].parent)
        if not (dirs[0] / results.CONFIG).is_file():
            raise BearIDError(
                f"{path}: its parent {dirs[0]} is not a stage directory; give a path inside a results tree"
            )
    return dirs


@dataclass
class PathDiff:
    configs: list[tuple[str, str, object, object]]  # stage, key, value in A, value in B
    figures: list[tuple[str, str, object, object]]  # stage, "val AP50", ..., figure in A, figure in B


def path_diff(a: Path, b: Path) -> PathDiff:
    """What differs between two results paths, stage by stage (as far as both go)."""
    from bearid.training.config import as_dict, read_config

    configs, figures = [], []
    for da, db in zip(chain(a), chain(b)):
        stage = stage_of_dir(da.name).name
        if stage_of_dir(db.name).name != stage:
            break
        ca, cb = as_dict(read_config(da)), as_dict(read_config(db))
        configs += [(stage, k, ca[k], cb[k]) for k in ca if ca[k] != cb[k]]
        ma, mb = results.read_metrics(da), results.read_metrics(db)
        for split in ("val", "test"):
            for name, key in HEADLINES[stage]:
                fa, fb = (ma.get(split) or {}).get(key), (mb.get(split) or {}).get(key)
                if fa is not None or fb is not None:
                    figures.append((stage, f"{split} {name}", fa, fb))
    return PathDiff(configs, figures)
