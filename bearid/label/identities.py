"""Bear IDs as a site writes them (`bf_051` at Brooks Falls, `gc_300` at Glendale Cove): which
prefix a location uses, and the next ID nobody has had.

An ID once given is never given again, even if every face that had it was relabelled since:
`taken` is every ID the XML, the journal and the bear register have ever held.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from bearid.data.layout import is_bear_id, location_of
from bearid.errors import BearIDError
from bearid.metadata import Dataset

NUMBERED = re.compile(r"^(?P<prefix>[a-z]{1,6})_(?P<number>\d+)$")


def check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[a-z]{1,6}", prefix or ""):
        raise BearIDError(f"ID prefix {prefix!r}: use 1-6 lower-case letters (as in bf_051)")
    return prefix


def parse_prefixes(pairs: Iterable[str]) -> dict[str, str]:
    """`--id-prefix LOCATION=PREFIX` options, e.g. `brooks_falls=bf`."""
    out = {}
    for pair in pairs:
        location, sep, prefix = pair.partition("=")
        if not sep or not location:
            raise BearIDError(f"--id-prefix {pair!r}: expected LOCATION=PREFIX, e.g. brooks_falls=bf")
        out[location] = check_prefix(prefix)
    return out


def prefix_for(location: str, dataset: Dataset, configured: dict[str, str] | None = None) -> str:
    """The site's prefix: as configured, else the one most of the location's bears have, else
    the location's initials (brooks_falls -> bf)."""
    if configured and location in configured:
        return configured[location]
    seen = Counter(
        m["prefix"]
        for image, box in dataset.faces()
        if box.label and location_of(dataset.path_of(image)) == location and (m := NUMBERED.match(box.label))
    )
    if seen:
        return seen.most_common(1)[0][0]
    initials = "".join(word[0] for word in re.split(r"[^a-z]+", location.lower()) if word)
    return check_prefix(initials[:6] or "bear")


def next_free(prefix: str, taken: Iterable[str], digits: int = 3) -> str:
    """One more than the highest number `prefix` has had."""
    numbers = [int(m["number"]) for t in taken if (m := NUMBERED.match(t)) and m["prefix"] == prefix]
    return f"{prefix}_{(max(numbers) + 1 if numbers else 1):0{digits}d}"


def check_bear_id(bear_id: str) -> str:
    bear_id = (bear_id or "").strip().lower()
    if not is_bear_id(bear_id):
        raise BearIDError(f"bear ID {bear_id!r} is not like bf_051 (letters, '_', letters or digits)")
    return bear_id
