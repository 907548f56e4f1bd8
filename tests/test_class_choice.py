"""The class stage chooses its classifier, C and open-set score on the user's own chips (#31).

The embeddings here are shaped like a real network's: every bear's chips packed tightly in
one narrow cone (faces look alike), a few chips for most bears and many for a few. On them
the synthetic world's old default (a linear SVM at C 1) names almost nothing."""

from __future__ import annotations

import numpy as np
import pytest

from bearid.embed import unit
from bearid.training.classify import choose, fit, one_per_bear_folds
from bearid.training.config import ClassifyConfig
from bearid.training.embed.embeddings import Embedded

SHOTS = (2, 2, 3, 4, 12)  # chips per bear, in turn: a long tail


def cone(seed: int, bears: int = 40, shots: tuple[int, ...] = SHOTS, spread: float = 0.045, first: int = 0):
    """Chips of bears `first`..`first + bears - 1`: centres 0.03 apart around one direction."""
    world = np.random.default_rng(7)
    common = unit(world.normal(size=(1, 128)))[0]
    centres = world.normal(size=(first + bears, 128)) * 0.03 + common
    rng = np.random.default_rng(seed)
    vectors, labels = [], []
    for b in range(first, first + bears):
        for _ in range(shots[b % len(shots)]):
            vectors.append(centres[b] + rng.normal(size=128) * spread)
            labels.append(f"bf_{b:03d}")
    return Embedded(np.array(vectors), labels, [f"chip_{i}.jpg" for i in range(len(labels))])


def top1(clf, chips: Embedded) -> float:
    return float(np.mean(clf.classes_[clf.predict_proba(chips.vectors).argmax(axis=1)] == np.array(chips.labels)))


def nearest_neighbour(train: Embedded, chips: Embedded) -> float:
    named = np.array(train.labels)[(unit(chips.vectors) @ unit(train.vectors).T).argmax(axis=1)]
    return float(np.mean(named == np.array(chips.labels)))


@pytest.mark.parametrize("validation", ["large", "small"])
def test_the_class_stage_never_names_worse_than_nearest_neighbour(validation):
    train, val = cone(0), cone(1, shots=(1, 2))
    if validation == "small":  # a chip for a few bears: the cross-validation carries the choice
        val = val.subset(list(range(0, len(val), 4)))
    old = fit(train, ClassifyConfig(classifier="svm", C=1, open_set="cosine"), known=val)
    assert top1(old, val) < nearest_neighbour(train, val) - 0.3  # the collapse this guards against is real here
    choice = choose(train, ClassifyConfig(), known=val)
    clf = fit(train, ClassifyConfig(), known=val, choice=choice)
    assert top1(clf, val) >= nearest_neighbour(train, val)
    assert "cross-validation over the training chips (5 folds" in choice.naming_on  # at most 5, the 12-chip bears
    assert f"and {len(val)} known validation chips" in choice.naming_on
    assert {(r["classifier"], r["C"]) for r in choice.naming_grid} == {
        *(("svm", C) for C in (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)),
        ("knn", None),
        ("ncm", None),
    }
    best = max(r["top1"] for r in choice.naming_grid)
    assert {"classifier": choice.classifier, "C": choice.C, "top1": best} in choice.naming_grid
    assert clf.classifier == choice.classifier and clf.novelty == choice.open_set


def test_what_the_config_fixes_is_not_chosen():
    train = cone(0, bears=12)
    choice = choose(train, ClassifyConfig(classifier="svm", C=10, open_set="cosine"))
    assert (choice.classifier, choice.C, choice.open_set) == ("svm", 10.0, "cosine")
    assert choice.naming_grid == [] and choice.open_set_grid == [] and "nothing to choose" in choice.naming_on
    only_c = choose(train, ClassifyConfig(classifier="svm", open_set="cosine"))
    assert only_c.classifier == "svm" and [r["classifier"] for r in only_c.naming_grid] == ["svm"] * 6


def test_the_open_set_score_is_chosen_with_held_out_bears_as_strangers():
    train = cone(0, bears=20)
    by_cv = choose(train, ClassifyConfig(classifier="ncm"))
    assert "grouped by bear" in by_cv.open_set_on and len(by_cv.open_set_grid) == 3
    assert by_cv.open_set == max(by_cv.open_set_grid, key=lambda r: r["auroc"])["score"]
    strangers = cone(2, bears=6, first=40)
    on_val = choose(train, ClassifyConfig(classifier="ncm"), known=cone(1, bears=20, shots=(1,)), unknown=strangers)
    assert "validation" in on_val.open_set_on and on_val.open_set_grid[0]["auroc"] > 0.5


def test_each_fold_holds_out_one_chip_of_every_bear():
    codes = np.repeat(np.arange(4), [2, 3, 5, 2])
    folds = one_per_bear_folds(codes, folds=5, seed=0)
    assert len(folds) == 5  # as many as the most photographed bear allows, at most 5
    for fit_rows, probe in folds:
        assert sorted(codes[probe].tolist()) == [0, 1, 2, 3]  # every bear, once
        assert set(fit_rows) | set(probe) == set(range(len(codes))) and not set(fit_rows) & set(probe)
    two = np.flatnonzero(codes == 0)
    assert {int(np.intersect1d(p, two)[0]) for _, p in folds} == set(two)  # a bear of two: each left out in turn


def test_each_bears_nearest_chip_is_the_best_of_its_own_chips():
    from bearid.classify import nearest_chip

    rng = np.random.default_rng(3)
    sims, codes = rng.normal(size=(6, 40)), rng.integers(0, 9, 40)
    codes[codes == 4] = 5  # bear 4 has no chips: never nearest
    got = nearest_chip(sims, codes, 9)
    for b in range(9):
        want = sims[:, codes == b].max(axis=1) if (codes == b).any() else np.full(6, -np.inf)
        np.testing.assert_array_equal(got[:, b], want)
    assert nearest_chip(sims[:0], codes, 9).shape == (0, 9)
