"""The candidates a box carries: the bears `bearid score` found it could be, best first, as
one attribute of the imglab XML ("bf_051:0.6100 bf_022:0.2000"). Read by the match review,
written by scoring."""

from __future__ import annotations

import math

CANDIDATES = "candidates"  # the box attribute `bearid score` writes: "bf_051:0.6100 bf_022:0.2000"


def encode(candidates: list[dict]) -> str:
    return " ".join(f"{c['bear_id']}:{c['score']:.4f}" for c in candidates)


def decode(text: str | None) -> list[dict]:
    out = []
    for item in (text or "").split():
        bear, _, score = item.rpartition(":")
        try:
            value = float(score)
        except ValueError:
            continue
        if bear and math.isfinite(value):
            out.append({"bear_id": bear, "score": value})
    return out
