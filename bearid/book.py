"""The bear book: a static HTML catalogue of the bears of an archive, one card per bear, of
the kind parks and research groups keep. A card shows the bear's clearest faces (reference
chips, one per date first), its sightings by year, location and contributor with first and
last seen, photos per season, its cubs' folders, and, given a bundle, its look-alikes: the
nearest other bears by embedding, a chip of each beside one of this bear's.

The cards (bearid.cards) are built from the archive's folders and a faces XML; the match
review shows the same card for each candidate.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import os
import urllib.parse
from collections import Counter
from pathlib import Path

from bearid.cards import Card
from bearid.chip import ChipSpec
from bearid.errors import BearIDError
from bearid.fsio import atomic_write_bytes, atomic_write_text, make_dirs
from bearid.imageio import load_photo
from bearid.metadata import Dataset
from bearid.references import Reference, face_picture


# -- writing the book ---------------------------------------------------------------------
def write(
    found: dict[str, Card], dataset: Dataset | None, out: Path, spec: ChipSpec, title: str, root: Path | None = None
) -> Path:
    """book/index.html and its pictures (chips/); written whole each time, atomically per file.
    Cub folders (relative to the archive `root`) are linked from the book's own folder."""
    if not found:
        raise BearIDError("no bears found: give an archive root with bear folders, or --faces with named faces")
    out = Path(out)
    make_dirs(out / "chips")
    pictures: dict[tuple[str, int], str] = {}
    for bear, card in found.items():
        for n, face in enumerate(card.faces):
            pictures[(bear, n)] = _picture(out, f"{bear}_{n}", _chip(dataset, face, spec))
        if not card.faces:  # no faces in an XML: the bear's photos, one per date
            by_date = {}
            for s in sorted(card.sightings, key=lambda s: (s.date or dt.date.min, str(s.photo))):
                by_date.setdefault(s.date, s.photo)
            for n, photo in enumerate(list(by_date.values())[:4]):
                image = load_photo(photo, max_side=320).image
                image.thumbnail((320, 320))
                pictures[(bear, n)] = _picture(out, f"{bear}_{n}", image)
    page = _page(found, pictures, title, out, root)
    target = out / "index.html"
    atomic_write_text(target, page)
    return target


def _chip(dataset: Dataset, face: Reference, spec: ChipSpec):
    image = dataset.images[face.image]
    return face_picture(dataset.path_of(image), image.boxes[face.face], spec)


def _picture(out: Path, name: str, image) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=88)
    atomic_write_bytes(out / "chips" / f"{name}.jpg", buf.getvalue())
    return link(f"chips/{name}.jpg")


def link(relative: str) -> str:
    """An href for a relative path of the data (a folder, a file): percent-encoded, so a
    name like `javascript:alert(1)` stays a path and can never become a scheme."""
    return html.escape(urllib.parse.quote(relative, safe="/"), quote=True)


def _bars(counts: Counter) -> str:
    if not counts:
        return "<p class='none'>no dated photos</p>"
    top = max(counts.values())
    rows = "".join(
        f"<div class='bar'><span>{html.escape(k)}</span><i style='width:{100 * v / top:.0f}%'></i><b>{v}</b></div>"
        for k, v in sorted(counts.items())
    )
    return f"<div class='bars'>{rows}</div>"


def _card(card: Card, pictures: dict, found: dict[str, Card], cub_href) -> str:
    e = html.escape
    own = [p for (b, _), p in pictures.items() if b == card.bear_id]
    s = card.summary()
    chips = "".join(f"<img src='{p}' alt='{e(card.bear_id)}'>" for p in own)
    where = ", ".join(f"{e(k)} ({v})" for k, v in card.by("location").most_common())
    who = ", ".join(f"{e(k)} ({v})" for k, v in card.by("contributor").most_common())
    alike = ""
    for other, sim in card.lookalikes:
        theirs = pictures.get((other, 0))
        if theirs and own:
            alike += (
                f"<figure class='pair'><img src='{own[0]}' alt='{e(card.bear_id)}'>"
                f"<img src='{theirs}' alt='{e(other)}'>"
                f"<figcaption><a href='#{e(other)}'>{e(other)}</a> · similarity {sim:.2f}</figcaption></figure>"
            )
    cubs = "".join(
        f"<li><a href='{cub_href(c)}'>{e(c)}</a></li>" if cub_href else f"<li>{e(c)}</li>" for c in card.cubs
    )
    name = f" <span class='name'>{e(card.name)}</span>" if card.name else ""
    return f"""
<article class='card' id='{e(card.bear_id)}'>
  <h2>{e(card.bear_id)}{name}</h2>
  <div class='chips'>{chips}</div>
  <dl>
    <dt>Seen</dt><dd>{s["photos"]} photos · first {s["first_seen"] or "?"} · last {s["last_seen"] or "?"}</dd>
    <dt>Where</dt><dd>{where or "?"}</dd>
    <dt>By</dt><dd>{who or "?"}</dd>
  </dl>
  <h3>Photos per season</h3>{_bars(card.by("year"))}
  {f"<h3>Look-alikes</h3><div class='alike'>{alike}</div>" if alike else ""}
  {f"<h3>Cubs</h3><ul>{cubs}</ul>" if cubs else ""}
</article>"""


STYLE = """
body { font: 14px system-ui, sans-serif; margin: 0; background: #f4f1ea; color: #222; }
header { background: #2f3e2f; color: #fff; padding: 1em 1.5em; }
header a { color: #ffd54a; margin-right: .6em; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(430px, 1fr)); gap: 1em; padding: 1em; }
.card { background: #fff; border: 1px solid #ccc5b5; border-radius: 6px; padding: .8em 1em; }
.card h2 { margin: 0 0 .4em; font-size: 1.3em; } .card h3 { font-size: 1em; margin: .8em 0 .3em; color: #5a4a2a; }
.name { font-weight: normal; color: #6a5a3a; }
.chips img { width: 96px; height: 96px; object-fit: cover; margin-right: 4px; border-radius: 4px; }
dl { display: grid; grid-template-columns: 4em 1fr; margin: .5em 0; } dt { color: #777; } dd { margin: 0; }
.bar { display: grid; grid-template-columns: 3.5em 1fr 2.5em; align-items: center; gap: .4em; font-size: .9em; }
.bar i { background: #7a9a5a; height: .8em; display: block; border-radius: 2px; }
.alike { display: flex; gap: .6em; flex-wrap: wrap; }
.pair img { width: 80px; height: 80px; object-fit: cover; } .pair { margin: 0; font-size: .85em; }
.none { color: #999; }
"""


def _page(found: dict[str, Card], pictures: dict, title: str, out: Path, root: Path | None) -> str:
    index = " ".join(f"<a href='#{html.escape(b)}'>{html.escape(b)}</a>" for b in found)
    cub_href = None
    if root is not None:
        here = Path(out).resolve()
        cub_href = lambda folder: link(os.path.relpath(Path(root).resolve() / folder, here) + "/")
    body = "".join(_card(c, pictures, found, cub_href) for c in found.values())
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><header><h1>{html.escape(title)}</h1>"
        f"<p>{len(found)} bears. {index}</p></header><main>{body}</main></body></html>"
    )
