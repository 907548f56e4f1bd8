"""The development worlds' open-set measure: embed models trained on one synthetic world
score every bear of another world, all of them new to the models.

    python bench/crossworld.py EMBED_DIR [EMBED_DIR ...] --new CHIP_DIR

Each EMBED_DIR is an embed stage of world A's results tree (its parent is the chip stage
whose splits it was trained on); CHIP_DIR is a chip stage of world B. The classifier is
fitted as the class stage fits it (default ClassifyConfig) on A's training chips and their
augmented views (the embed stage's train_views.npz, where it wrote one); A's
validation and test chips are the known bears, every labelled chip of B (all splits) the new
ones. Per model it prints:

- top-1: closed-set, on A's validation and test chips;
- AUROC: new vs known, the mean over B's bears (p10: the 10th percentile, the worst placed);
- rejected @k90 / @k95: the share of new bears' chips turned away (mean over B's bears)
  where 90% / 95% of known chips are accepted;
- BAUS @BAKS 0.90: the best BAUS a threshold can give while BAKS (balanced over A's bears,
  a turned-away or misnamed chip counting as wrong) stays at 0.90 or more; "-" where BAKS
  cannot reach 0.90 at all.

These choose configs without looking at the bench world's test split. Making the two worlds
(as the README's figures were made):

    bearid synth dev/w22/world --bears 16 --photos 900 --seed 22   (and seed 23 for w23)
    bearid data split dev/w22/world --out dev/w22/splits --faces dev/w22/world/_truth/faces.xml
    bearid train SWEEP.yaml --data dev/w22/splits --results dev/w22/results
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bearid.metrics import roc_auc
from bearid.training.classify import fit
from bearid.training.config import ClassifyConfig
from bearid.training.embed.embeddings import Embedded, load_views
from bearid.training.embed.loader import open_chips
from bearid.training.embed.train import embed, load

SPLITS = ("train", "val", "test", "holdout")


def embedded(net, size: int, chip_dir: Path, split: str, norm=None) -> Embedded:
    data = open_chips(chip_dir / "chip_meta" / f"{split}.xml", size, labelled_only=True, norm=norm)
    return Embedded(embed(net, data).astype(np.float64), list(data.labels), list(data.paths))


def measure(embed_dir: Path, new_chips: Path) -> dict[str, float]:
    net, size, norm = load(embed_dir / "model")
    chips = embed_dir.parent
    own = {s: embedded(net, size, chips, s, norm) for s in ("train", "val", "test")}
    clf = fit(own["train"], ClassifyConfig(), load_views(embed_dir / "embeddings"))
    known = [own[s].split_known(set(clf.ids))[0] for s in ("val", "test")]
    k_vec = np.concatenate([k.vectors for k in known])
    k_lab = np.array(sum((k.labels for k in known), []))
    new = [embedded(net, size, new_chips, s, norm) for s in SPLITS if (new_chips / "chip_meta" / f"{s}.xml").exists()]
    n_vec = np.concatenate([n.vectors for n in new])
    n_lab = np.array(sum((n.labels for n in new), []))
    k_fam, n_fam = clf.familiarity(k_vec), clf.familiarity(n_vec)
    correct = np.array(clf.ids)[clf.predict_proba(k_vec).argmax(axis=1)] == k_lab
    known_bears = sorted(set(k_lab))
    new_bears = [b for b in sorted(set(n_lab)) if (n_lab == b).sum() >= 3]
    aucs = [
        roc_auc(np.r_[k_fam, n_fam[n_lab == b]], np.r_[np.ones(len(k_fam), bool), np.zeros((n_lab == b).sum(), bool)])
        for b in new_bears
    ]

    def baus(threshold: float) -> float:
        return float(np.mean([np.mean(n_fam[n_lab == b] < threshold) for b in new_bears]))

    def baks(threshold: float) -> float:
        return float(np.mean([np.mean(correct[k_lab == b] & (k_fam[k_lab == b] >= threshold)) for b in known_bears]))

    # BAKS only falls as the threshold rises, and only at a known chip's familiarity: the
    # highest of those that keeps it at 0.90.
    at90 = next((t for t in np.sort(k_fam)[::-1] if baks(t) >= 0.90), None)
    return {
        "top1": float(correct.mean()),
        "auroc": float(np.mean(aucs)),
        "auroc_p10": float(np.percentile(aucs, 10)),
        "rejected_k90": baus(np.quantile(k_fam, 0.10)),
        "rejected_k95": baus(np.quantile(k_fam, 0.05)),
        "baus_at_baks90": float("nan") if at90 is None else baus(at90),
        "new_bears": len(new_bears),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("embed_dirs", type=Path, nargs="+", help="embed stages of world A")
    parser.add_argument("--new", type=Path, required=True, help="a chip stage of world B: its bears are the new ones")
    args = parser.parse_args()
    print("| model | top-1 | AUROC (p10) | rejected @k90 | @k95 | BAUS @BAKS 0.90 | new bears |")
    print("|---|---|---|---|---|---|---|")
    for d in args.embed_dirs:
        m = measure(d, args.new)
        at90 = "-" if np.isnan(m["baus_at_baks90"]) else f"{m['baus_at_baks90']:.3f}"
        print(
            f"| {d} | {m['top1']:.3f} | {m['auroc']:.4f} ({m['auroc_p10']:.3f}) | {m['rejected_k90']:.3f} | "
            f"{m['rejected_k95']:.3f} | {at90} | {m['new_bears']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
