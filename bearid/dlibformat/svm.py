"""bearsvm's files (the original BearID's classifier) read without dlib, and run as dlib runs them.

`bearsvm_network.dat` is `one_vs_one_decision_function<one_vs_one_trainer<any_trainer<matrix<float,
128,1>>>, decision_function<linear_kernel<matrix<float,128,1>>>>` (dlib/svm/one_vs_one_decision_
function.h, function.h):

    version 1, the number of pairs, then per pair: its two labels (doubles, the smaller first),
    the type_safe_union's type id (1: the one decision function type it holds), and the
    decision function: alpha (a column), b, the kernel's parameters (none for linear_kernel),
    the basis vectors (a column of 128 x 1 samples)

`bearsvm_network_ids.dat` is a `std::vector<std::string>`: the bear of each label (bearsvm
numbers its bears 0, 1, ... in sorted order). A pair's score is sum(alpha_i <basis_i, x>) - b;
above 0 it votes for the pair's first label, else for its second; the label with the most votes
wins, the smallest label among equals (dlib iterates its std::map of votes in label order and
takes a strictly larger count only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bearid.dlibformat.reader import DlibFormatError, Reader

EMBEDDING_DIM = 128  # bearembed's embeddings, and the matrix<float,128,1> bearsvm is compiled for


@dataclass(frozen=True)
class OneVsOneSvm:
    """dlib's one-vs-one linear SVMs, as arrays: each pair's weight vector and bias."""

    ids: tuple[str, ...]  # the bear of each label 0..K-1
    pairs: np.ndarray  # P x 2 label indices, the first smaller (dlib's unordered_pair), in file order
    weights: np.ndarray  # P x dim: sum over the basis vectors of alpha_i * basis_i
    bias: np.ndarray  # P: dlib's b (the score is w.x - b)

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1])

    def scores(self, x: np.ndarray) -> np.ndarray:
        """N x P: each pair's decision value (positive: a vote for the pair's first label)."""
        return np.asarray(x, dtype=np.float64) @ self.weights.T - self.bias

    def votes(self, x: np.ndarray) -> np.ndarray:
        """N x K: how many pairs vote for each label."""
        s = self.scores(x)
        out = np.zeros((len(s), len(self.ids)), dtype=np.int64)
        winners = np.where(s > 0, self.pairs[:, 0], self.pairs[:, 1])
        for col in range(winners.shape[1]):
            np.add.at(out, (np.arange(len(s)), winners[:, col]), 1)
        return out

    def decide(self, x: np.ndarray) -> np.ndarray:
        """N label indices, as dlib's operator() returns them: the most votes, the smallest
        label among equals (argmax takes the first)."""
        return self.votes(x).argmax(axis=1)


def _dlib_integer_matrix_header(r: Reader, what: str) -> tuple[int, int, int]:
    """A matrix's (rows, columns) as written (dlib writes them negated), and where they start."""
    at = r.pos
    return r.integer(f"the rows of {what}"), r.integer(f"the columns of {what}"), at


def _column(r: Reader, what: str) -> tuple[int, int]:
    """The length of a column matrix (N x 1), refused if it is not one."""
    rows, cols, at = _dlib_integer_matrix_header(r, what)
    if abs(cols) != 1 or (rows < 0) != (cols < 0):
        raise r.fail(f"{what}: a {abs(rows)} x {abs(cols)} matrix, not a column", at)
    return abs(rows), at


def read_svm(r: Reader, dim: int = EMBEDDING_DIM) -> tuple[list[tuple[float, float]], np.ndarray, np.ndarray]:
    """The pairs' labels, weight vectors and biases of a one-vs-one set of linear SVMs."""
    if r.peek() is None:
        raise r.fail("empty: no SVM")
    r.version((1,), "the one-vs-one decision function (is this bearsvm's file?)")
    n = r.count("pairs", each=8)
    labels, weights, biases = [], np.zeros((n, dim)), np.zeros(n)
    for p in range(n):
        labels.append((r.number("a pair's first label"), r.number("a pair's second label")))
        at = r.pos
        kind = r.integer("the decision function's type")
        if kind != 1:
            raise r.fail(f"a decision function of type number {kind}: bearsvm's file holds one type (1)", at)
        count, _ = _column(r, "alpha")
        alpha = r.numbers(count, "alpha").astype(np.float64)
        biases[p] = r.number("b")
        # linear_kernel has no parameters: the basis vectors follow b. A kernel with some (the
        # RBF's gamma, the polynomial's gamma, coef and degree) puts them here instead.
        rows, cols, at = _dlib_integer_matrix_header(r, "the basis vectors")
        if abs(cols) != 1 or abs(rows) != count:
            raise r.fail(
                f"not a linear_kernel decision function: after b come {rows}, {cols}, not the {count} basis vectors "
                "(a kernel with parameters, such as radial_basis_kernel's gamma, writes them there); "
                "BearID reads bearsvm's linear SVMs",
                at,
            )
        for i in range(count):
            sample_rows, _, at = _dlib_integer_matrix_header(r, "a basis vector")
            if abs(sample_rows) != dim:
                raise r.fail(f"a sample of {abs(sample_rows)} dimensions: the embedding has {dim}", at)
            r.pos = at
            weights[p] += alpha[i] * r.matrix("a basis vector").ravel().astype(np.float64)
    if r.left:
        raise r.fail(f"{r.left} bytes after the SVM (not bearsvm's file?)")
    return labels, weights, biases


def read_ids(r: Reader) -> tuple[list[str], int]:
    """bearsvm's ids (a std::vector<std::string>) and the byte their count is at."""
    if r.peek() is None:
        raise r.fail("empty: no ids")
    n = r.count("ids", each=2)
    ids = [r.string("an id") for _ in range(n)]
    if r.left:
        raise r.fail(f"{r.left} bytes after {n} ids (not bearsvm's ids file?)")
    return ids, 0


def read_bearsvm(svm: Path, ids: Path, dim: int = EMBEDDING_DIM) -> OneVsOneSvm:
    """bearsvm_network.dat and its ids file, checked against each other: labels 0..K-1 with
    every pair of them, one id each."""
    r = Reader.open(svm)
    labels, weights, biases = read_svm(r, dim)
    names, at = read_ids(Reader.open(ids))
    found = sorted({v for pair in labels for v in pair})
    if found != list(range(len(names))):
        shown = ", ".join(f"{v:g}" for v in found[:8]) + (", ..." if len(found) > 8 else "")
        raise DlibFormatError(
            f"{ids}: {len(names)} ids at byte {at}, but {svm} names the classes {shown} "
            f"(bearsvm numbers its bears 0..{len(names) - 1}): the ids do not match the SVM"
        )
    pairs = np.array([[int(a), int(b)] for a, b in labels], dtype=np.int64).reshape(-1, 2)
    k = len(names)
    if len({tuple(p) for p in pairs.tolist()}) != k * (k - 1) // 2 or (pairs[:, 0] >= pairs[:, 1]).any():
        raise DlibFormatError(f"{svm}: {len(pairs)} pairs for {k} classes, not one SVM for each pair of them")
    return OneVsOneSvm(tuple(names), pairs, weights, biases)
