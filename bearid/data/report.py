"""Clean reports a person can check: JSON for tools, an HTML page with thumbnails by reason."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from PIL import Image, ImageOps

from bearid.data.clean import CleanReport
from bearid.fsio import atomic_write_text

THUMB = 160


def thumbnail_data_uri(path: Path) -> str | None:
    """A small inline JPEG of a photo (upright), or None if it cannot be decoded."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (THUMB * 2, THUMB * 2))
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=80)
    except Exception:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def write_clean_report(report: CleanReport, out_dir: Path, max_per_reason: int = 200) -> tuple[Path, Path]:
    """Write report.json and report.html into `out_dir`; return both paths."""
    out_dir = Path(out_dir)
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    atomic_write_text(json_path, json.dumps(report.to_json(), indent=1))
    parts = [
        "<!doctype html><meta charset='utf-8'><title>BearID clean report</title>",
        "<style>body{font-family:sans-serif;margin:1.5em} .grid{display:flex;flex-wrap:wrap;gap:10px}"
        " figure{margin:0;width:170px;font-size:11px;word-break:break-all} "
        "img{max-width:160px;max-height:160px;display:block}"
        " .q{color:#a00} .r{color:#555} td,th{padding:2px 10px;text-align:left}</style>",
        f"<h1>Clean report</h1><p>{html.escape(str(report.root))}: {report.checked} photos checked.</p>",
        "<table><tr><th>reason</th><th>photos</th><th>action</th><th>threshold</th></tr>",
    ]
    groups = report.by_reason()
    for reason, items in groups.items():
        action = items[0].action
        parts.append(
            f"<tr><td><a href='#{reason}'>{reason}</a></td><td>{len(items)}</td><td class='{action[0]}'>{action}</td>"
            f"<td>{'' if items[0].threshold is None else items[0].threshold}</td></tr>"
        )
    parts.append("</table>")
    for reason, items in groups.items():
        parts.append(f"<h2 id='{reason}'>{reason} ({len(items)})</h2><div class='grid'>")
        for f in items[:max_per_reason]:
            uri = thumbnail_data_uri(report.root / f.path)
            img = f"<img src='{uri}' alt=''>" if uri else "<div style='height:60px;background:#eee'>no preview</div>"
            score = "" if f.score is None else f"<br>score {f.score} (threshold {f.threshold})"
            parts.append(
                f"<figure>{img}<figcaption><b>{html.escape(f.path)}</b><br>{html.escape(f.detail)}{score}</figcaption></figure>"
            )
        if len(items) > max_per_reason:
            parts.append(f"<p>... and {len(items) - max_per_reason} more (see report.json)</p>")
        parts.append("</div>")
    atomic_write_text(html_path, "\n".join(parts))
    return json_path, html_path
