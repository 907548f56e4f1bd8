"""Who a synthetic bear is: persistent identity traits, siblings, and drift with time.

Traits are what a person (or a network) can tell bears apart by in a face chip: fur and
muzzle colour, ear shape, size and spacing, eye spacing, muzzle shape, marks and scars.
Siblings share most traits, so some bears are close look-alikes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BearTraits:
    bear_id: str
    fur_rgb: tuple[float, float, float]  # base fur colour, 0..1
    muzzle_tint: float  # 0 = muzzle like fur, 1 = pale tan muzzle
    mask_dark: float  # darkness around the eyes (0..0.6)
    head_aspect: float  # head height / width
    eye_spacing: float  # half distance between eyes, in head half-widths
    eye_size: float
    ear_spacing: float
    ear_size: float
    ear_round: float  # 1 round .. 0 pointed
    ear_notch: int  # 0 none, -1 the bear's right ear, +1 the bear's left ear
    muzzle_length: float
    muzzle_width: float
    nose_width: float
    blaze: float  # size of a pale forehead blaze (0 = none)
    blaze_y: float
    scar: tuple[float, float, float, float]  # x0, y0, x1, y1 on the face (0 length = none)
    collar: float  # pale neck band strength
    family: int  # bears of one family are siblings (look-alikes)

    def on(self, when: dt.date, drift: float) -> BearTraits:
        """How the bear looks on a date: paler and shaggier in early summer, darker and
        rounder in autumn, and slowly changing year on year."""
        season = np.cos(2 * np.pi * (when.timetuple().tm_yday - 170) / 365.0)  # +1 late June
        years = when.year - 2014
        rng = np.random.default_rng(zlib.crc32(f"{self.bear_id}:{when.year}".encode()))
        # Brightness changes keep the hue: a bear never turns green or purple.
        yearly = float(rng.normal(0.0, 0.05)) * drift
        lighten = 0.10 * drift * season + 0.01 * drift * years + yearly
        fur = tuple(float(np.clip(c * (1 + lighten), 0.03, 0.95)) for c in self.fur_rgb)
        return dataclasses.replace(
            self,
            fur_rgb=fur,  # type: ignore[arg-type]
            head_aspect=self.head_aspect * (1 - 0.05 * drift * season),
            muzzle_tint=float(np.clip(self.muzzle_tint + 0.08 * drift * season, 0, 1)),
        )


def _new_traits(rng: np.random.Generator, bear_id: str, family: int) -> BearTraits:
    # Brown bear fur: from blonde to near-black chocolate.
    value = rng.uniform(0.18, 0.78)
    warmth = rng.uniform(0.55, 0.9)
    fur = (value, value * warmth, value * warmth * rng.uniform(0.45, 0.75))
    scar = (0.0, 0.0, 0.0, 0.0)
    if rng.random() < 0.35:
        x0, y0 = rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.4)
        angle, length = rng.uniform(0, np.pi), rng.uniform(0.2, 0.45)
        scar = (x0, y0, x0 + length * np.cos(angle), y0 + length * np.sin(angle))
    return BearTraits(
        bear_id=bear_id,
        fur_rgb=fur,
        muzzle_tint=float(rng.uniform(0.0, 1.0)),
        mask_dark=float(rng.uniform(0.0, 0.6)),
        head_aspect=float(rng.uniform(0.82, 1.08)),
        eye_spacing=float(rng.uniform(0.30, 0.46)),
        eye_size=float(rng.uniform(0.07, 0.12)),
        ear_spacing=float(rng.uniform(0.58, 0.86)),
        ear_size=float(rng.uniform(0.20, 0.36)),
        ear_round=float(rng.uniform(0.0, 1.0)),
        ear_notch=int(rng.choice([-1, 0, 0, 0, 1])),
        muzzle_length=float(rng.uniform(0.45, 0.75)),
        muzzle_width=float(rng.uniform(0.26, 0.42)),
        nose_width=float(rng.uniform(0.12, 0.22)),
        blaze=float(rng.uniform(0.08, 0.22)) if rng.random() < 0.4 else 0.0,
        blaze_y=float(rng.uniform(-0.55, -0.25)),
        scar=tuple(float(v) for v in scar),  # type: ignore[arg-type]
        collar=float(rng.uniform(0.2, 0.7)) if rng.random() < 0.3 else 0.0,
        family=family,
    )


def _sibling_of(rng: np.random.Generator, base: BearTraits, bear_id: str, closeness: float) -> BearTraits:
    """A look-alike: same family traits, nudged by (1 - closeness), and one feature redrawn."""
    fresh = _new_traits(rng, bear_id, base.family)
    mix = 1.0 - closeness
    values = {}
    for f in dataclasses.fields(BearTraits):
        a, b = getattr(base, f.name), getattr(fresh, f.name)
        if f.name in ("bear_id", "family"):
            values[f.name] = b
        elif isinstance(a, float):
            values[f.name] = a + (b - a) * mix
        elif isinstance(a, tuple):
            values[f.name] = tuple(x + (y - x) * mix for x, y in zip(a, b))
        else:
            values[f.name] = a
    # Siblings differ in at least one clear, discrete feature.
    distinct = rng.choice(["ear_notch", "blaze", "scar", "collar"])
    values[distinct] = (
        getattr(fresh, distinct)
        if getattr(fresh, distinct) != getattr(base, distinct)
        else {
            "ear_notch": -base.ear_notch or 1,
            "blaze": 0.0 if base.blaze else 0.15,
            "scar": (0.0, 0.0, 0.0, 0.0) if base.scar[2] != base.scar[0] else (-0.4, -0.2, -0.1, 0.1),
            "collar": 0.0 if base.collar else 0.5,
        }[distinct]
    )
    return BearTraits(**values)


def make_population(
    rng: np.random.Generator, bear_ids: list[str], lookalike_rate: float, closeness: float
) -> list[BearTraits]:
    """Traits for each bear; about `lookalike_rate` of them are siblings of an earlier bear."""
    bears: list[BearTraits] = []
    for i, bear_id in enumerate(bear_ids):
        if bears and rng.random() < lookalike_rate:
            base = bears[int(rng.integers(len(bears)))]
            bears.append(_sibling_of(rng, base, bear_id, closeness))
        else:
            bears.append(_new_traits(rng, bear_id, family=i))
    return bears


def cub_of(parent: BearTraits, rng: np.random.Generator) -> BearTraits:
    """A cub: rounder head, bigger eyes, closer-set ears, paler fur."""
    return dataclasses.replace(
        _sibling_of(rng, parent, f"{parent.bear_id}_cub", closeness=0.6),
        head_aspect=0.95,
        eye_size=parent.eye_size * 1.3,
        ear_size=parent.ear_size * 1.25,
        muzzle_length=parent.muzzle_length * 0.7,
        scar=(0.0, 0.0, 0.0, 0.0),
        fur_rgb=tuple(min(0.95, c * 1.15) for c in parent.fur_rgb),  # type: ignore[arg-type]
    )
