"""`bearid data ...`: the curators' tools (scan, ingest, clean, restore, split, stats, backup, verify)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from bearid.cli.bars import Bars
from bearid.data import catalog as catalog_mod
from bearid.data import clean as clean_mod
from bearid.data import ingest as ingest_mod
from bearid.data import quarantine, report
from bearid.data import split as split_mod
from bearid.data import stats as stats_mod
from bearid.fsio import check_file_target, make_dirs
from bearid.metadata import read_faces
from bearid.overrides import with_overrides

app = typer.Typer(help="Manage the photo archive: scan, ingest, clean, restore, split, stats.", no_args_is_help=True)
console = Console()

FacesOption = Annotated[
    list[Path] | None,
    typer.Option("--faces", help="imglab faces XML with boxes and labels for these photos (repeatable)."),
]


def _table(title: str, rows: list[tuple[str, object]]) -> Table:
    table = Table(title=title, show_header=False)
    for key, value in rows:
        table.add_row(key, str(value))
    return table


@app.command()
def scan(
    root: Annotated[Path, typer.Argument(help="The archive root.")],
    workers: Annotated[int, typer.Option(help="Processes reading files (0 = one per core).")] = 0,
    quick: Annotated[
        bool,
        typer.Option(
            help="Hash, header and EXIF only (no pixel decoding); the next "
            "full scan adds quality scores and perceptual hashes."
        ),
    ] = False,
) -> None:
    """Index every image of the archive in ROOT/.bearid/catalog.sqlite (incremental).

    Example: bearid data scan /data/bears
    """
    with catalog_mod.Catalog(root) as cat, Bars(console) as bars:
        r = cat.scan(workers=workers, quick=quick, progress=bars.counter("reading new and changed files"))
    console.print(
        _table(
            f"catalog of {root}",
            [
                ("images", r.files),
                ("added", r.added),
                ("updated", r.updated),
                ("unchanged", r.unchanged),
                ("removed", r.removed),
                ("unreadable", r.unreadable),
                ("other files (not catalogued)", len(r.skipped_names)),
                ("read", f"{r.bytes_read / 1e6:.1f} MB in {r.seconds:.2f} s"),
                ("catalog", root / catalog_mod.CATALOG),
            ],
        )
    )


@app.command()
def ingest(
    drop: Annotated[Path, typer.Argument(help="The contributor's drop (folders, flat files, zip/tar archives).")],
    root: Annotated[Path, typer.Argument(help="The archive root.")],
    location: Annotated[str, typer.Option(help="Location folder, e.g. brooks_falls.")],
    contributor: Annotated[str, typer.Option(help="Contributor name, e.g. freels.")],
    date: Annotated[str, typer.Option(help="Contribution date, YYYYMM or YYYYMMDD.")],
    id_from: Annotated[
        list[str] | None, typer.Option(help="Where the bear ID is: 'filename:REGEX' or 'dir:REGEX' (repeatable).")
    ] = None,
    link: Annotated[
        bool, typer.Option(help="Hard-link instead of copying where the drop is on the same disk.")
    ] = False,
) -> None:
    """File a drop into ROOT/LOCATION/CONTRIBUTOR_DATE/<bear>/, verified, never touching the drop.

    Example: bearid data ingest ~/drops/aug bears --location brooks_falls --contributor hartley --date 201908
    --id-from 'filename:(bf_\\d+)'
    """
    with Bars(console) as bars:
        r = ingest_mod.ingest(
            drop, root, location, contributor, date, id_from=id_from, link=link, progress=bars.ticker("filing photos")
        )
    for rec in r.records:
        if rec.action in ("unreadable", "skipped", "renamed", "already_archived"):
            console.print(
                f"{rec.action}: {rec.source}"
                + (f" -> {rec.dest}" if rec.dest else "")
                + (f" ({rec.reason})" if rec.reason else ""),
                highlight=False,
            )
    per_bear: dict[str, int] = {}
    for rec in r.records:
        if rec.action in ("copied", "linked", "renamed"):
            per_bear[rec.label or "?"] = per_bear.get(rec.label or "?", 0) + 1
    console.print(
        _table(
            f"ingested into {r.contribution}",
            [
                *sorted(r.counts.items()),
                *[(f"  {k}", v) for k, v in sorted(per_bear.items())],
                ("manifest", r.manifest),
            ],
        )
    )


@app.command()
def clean(
    root: Annotated[Path, typer.Argument(help="The archive root.")],
    faces: FacesOption = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Move flagged files to ROOT/_quarantine/<reason>/ (undo with restore).")
    ] = False,
    only: Annotated[str | None, typer.Option(help="With --apply: only these reasons, comma-separated.")] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", help="A threshold, e.g. --set min_sharpness=20 --set near_distance=4."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write report.json and report.html (default ROOT/.bearid/clean).")
    ] = None,
) -> None:
    """Find duplicates, broken files, outliers and label problems; report them (and quarantine).

    Example: bearid data clean bears --faces bears/faces.xml, then
    bearid data clean bears --apply --only exact_duplicate,corrupt
    """
    thresholds = with_overrides(clean_mod.Thresholds(), setting or [], what="threshold")
    reasons = quarantine.check_reasons(set(only.split(",")) if only else None)
    report_dir = make_dirs(out or root / ".bearid" / "clean")
    datasets = [read_faces(p) for p in faces or []]
    with Bars(console) as bars:
        r = clean_mod.clean(root, thresholds, datasets, progress=bars.counter("reading photos"))
    json_path, html_path = report.write_clean_report(r, report_dir)
    rows = [(reason, f"{len(items)}  ({items[0].action})") for reason, items in r.by_reason().items()]
    console.print(
        _table(f"clean report: {r.checked} photos checked", [*rows, ("report", html_path), ("json", json_path)])
    )
    if apply:
        moved = quarantine.apply(r, reasons)
        for path, why in moved.skipped:
            console.print(f"not moved: {path}: {why}", highlight=False)
        console.print(
            f"moved {len(moved.moved)} file(s) to {root / quarantine.QUARANTINE_DIR} (batch "
            f"{moved.batch}); undo: bearid data restore {root} --batch {moved.batch}",
            highlight=False,
        )


@app.command()
def restore(
    root: Annotated[Path, typer.Argument(help="The archive root.")],
    batch: Annotated[str | None, typer.Option(help="Only this batch of moves (printed by clean --apply).")] = None,
    reason: Annotated[str | None, typer.Option(help="Only files quarantined for this reason.")] = None,
) -> None:
    """Move quarantined files back exactly where they were.

    Example: bearid data restore bears --reason near_duplicate
    """
    r = quarantine.restore(root, batch, reason)
    for path, why in r.skipped:
        console.print(f"not restored: {path}: {why}", highlight=False)
    console.print(f"restored {len(r.moved)} file(s)")


@app.command("split")
def split_cmd(
    root: Annotated[Path, typer.Argument(help="The archive root.")],
    out: Annotated[Path, typer.Option(help="Directory for train.xml, val.xml, test.xml, holdout.xml, split.json.")],
    by: Annotated[
        Literal["image", "bear", "time"],  # bearid.data.split.MODES, listed by -h (tests check they agree)
        typer.Option(help="image (within each bear), bear (disjoint identities) or time (whole days)."),
    ] = "image",
    ratios: Annotated[str, typer.Option(help="train,val,test fractions.")] = "0.7,0.15,0.15",
    min_images: Annotated[int, typer.Option(help="Bears with fewer photos go to holdout (unknown bears).")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    window_days: Annotated[int, typer.Option(help="With --by time: days grouped together.")] = 1,
    year_cutoff: Annotated[int | None, typer.Option(help="Photos taken from this year on go to test.")] = None,
    fix_leaks: Annotated[bool, typer.Option(help="Move near-duplicates split apart into the earliest split.")] = False,
    faces: FacesOption = None,
) -> None:
    """Write train/val/test/holdout imglab XML, with a leakage check.

    Example: bearid data split bears --out splits --by time --faces bears/faces.xml
    """
    try:
        fractions = tuple(float(v) for v in ratios.split(","))
    except ValueError:
        raise typer.BadParameter(f"--ratios '{ratios}': three numbers like 0.7,0.15,0.15") from None
    config = split_mod.SplitConfig(by, fractions, min_images, seed, window_days, year_cutoff, fix_leaks)  # type: ignore[arg-type]
    make_dirs(out)
    dataset = None
    if faces:
        dataset = read_faces(faces[0])
        for extra in faces[1:]:
            more = read_faces(extra)
            dataset.images += [
                type(i)(str(more.path_of(i).resolve()), i.boxes, i.width, i.height, i.attrs) for i in more.images
            ]
    r = split_mod.split(root, out, config, dataset)
    for warning in r.warnings:  # an empty split: one line each, on stderr, before the table
        typer.echo(f"warning: {warning}", err=True)
    table = Table(title=f"split by {by} -> {out}")
    for column in ("split", "photos", "bears"):
        table.add_column(column)
    for name, c in r.counts().items():
        table.add_row(name, str(c["photos"]), str(c["bears"]))
    console.print(table)
    for kind, n in sorted(r.skipped.items()):
        console.print(f"left out: {n} {kind}")
    verdict = (
        "none"
        if not r.leaks
        else f"{len(r.leaks)} group(s) of near-duplicates in different splits (see split.json; --fix-leaks moves them)"
    )
    console.print(f"leaks: {verdict}", highlight=False)


@app.command()
def stats(
    root: Annotated[Path, typer.Argument(help="The archive root.")],
    faces: FacesOption = None,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML report with plots here.")] = None,
) -> None:
    """Counts per location, contributor, year, season and bear; photos per bear; face sizes.

    Example: bearid data stats bears --faces bears/faces.xml --html stats.html
    """
    if html:
        check_file_target(html)
    s = stats_mod.archive_stats(root, read_faces(faces[0]) if faces else None)
    console.print(f"{s.photos} photos, {s.bytes / 1e6:.1f} MB, {s.unreadable} unreadable, {len(s.per_bear)} bears")
    for name, rows in s.tables().items():
        table = Table(title=name, show_header=False)
        for key, value in rows[:40]:
            table.add_row(key, str(value))
        if len(rows) > 40:
            table.add_row("...", f"{len(rows) - 40} more")
        console.print(table)
    if html:
        console.print(f"html report: {stats_mod.write_stats_html(s, html, f'BearID archive {root}')}")


@app.command()
def backup(
    root: Annotated[Path, typer.Argument(help="The archive root.")],
    dest: Annotated[Path, typer.Argument(help="The backup directory (a portable drive, a NAS mount).")],
    extra: Annotated[
        list[Path] | None, typer.Option(help="Also back up this folder, e.g. a results path (repeatable).")
    ] = None,
) -> None:
    """Incremental, content-addressed backup: each distinct file is copied once (renames are
    not copied again), a manifest per run, nothing at the destination is ever deleted.

    Example: bearid data backup bears /mnt/nas/bearid-backup --extra results/face_config_01
    """
    from bearid.data.backup import backup as run

    with Bars(console) as bars:
        r = run(root, dest, list(extra or []), progress=bars.counter("backing up"))
    console.print(
        _table(
            f"backup of {root} to {dest}",
            [
                ("files", r.files),
                ("copied", r.copied),
                ("copied MB", round(r.copied_bytes / 1e6, 1)),
                ("already there", r.already),
                ("manifest", r.manifest),
            ],
        )
    )


@app.command()
def recover(
    backup_dir: Annotated[
        Path, typer.Argument(metavar="BACKUP", help="A backup directory made by bearid data backup.")
    ],
    to: Annotated[Path, typer.Option(help="Where to rebuild the files (e.g. a new archive root).")],
    manifest: Annotated[str | None, typer.Option(help="Which run (a manifest name); default the latest.")] = None,
    only: Annotated[
        str, typer.Option(help="Only paths starting with this, e.g. brooks_falls/ or extra/face_config_01/.")
    ] = "",
) -> None:
    """Rebuild files from a backup, each verified against its hash; never overwrites a file
    that is in the way (it is reported). Exit 0: all recovered; 1: conflicts, damaged or
    missing content.

    Example: bearid data recover /mnt/nas/bearid-backup --to bears-restored --only brooks_falls/
    """
    from bearid.data.backup import recover as run

    with Bars(console) as bars:
        r = run(backup_dir, to, manifest, only, progress=bars.counter("recovering"))
    for kind in ("conflicts", "damaged", "missing"):
        for item in getattr(r, kind):
            console.print(f"{kind}: {item}", highlight=False)
    console.print(
        f"recovered from {r.manifest.name} into {to}: {r.restored} restored, {r.already} already there, "
        f"{len(r.conflicts)} in the way, {len(r.damaged)} damaged, {len(r.missing)} missing",
        highlight=False,
    )
    raise typer.Exit(0 if r.ok else 1)


@app.command()
def verify(
    target: Annotated[
        Path, typer.Argument(help="An archive root (checked against its catalog) or a backup directory.")
    ],
    sample: Annotated[
        str | None,
        typer.Option(help="Re-hash only a share, e.g. 1% (missing and extra files are always all checked)."),
    ] = None,
) -> None:
    """Re-hash and report bit rot, missing and extra files. Exit 0: all well; 1: problems.

    Example: bearid data verify /mnt/nas/bearid-backup --sample 5%
    """
    from bearid.data.backup import verify as run
    from bearid.errors import BearIDError

    fraction = None
    if sample:
        try:
            fraction = float(sample.rstrip("%")) / (100 if sample.endswith("%") else 1)
        except ValueError:
            fraction = -1.0
        if not 0 < fraction <= 1:
            raise BearIDError(f"--sample {sample}: give a share from 0 to 100%, like 1% or 0.01") from None
    with Bars(console) as bars:
        r = run(target, fraction, progress=bars.counter("re-hashing"))
    for kind in ("bitrot", "missing", "extra"):
        for item in getattr(r, kind):
            console.print(f"{kind}: {item}", highlight=False)
    console.print(
        f"{r.what} {target}: {r.checked} re-hashed, {len(r.bitrot)} "
        f"bit rot, {len(r.missing)} missing, {len(r.extra)} extra: " + ("all well" if r.ok else "PROBLEMS"),
        highlight=False,
    )
    if not r.ok:
        raise typer.Exit(1)


@app.command()
def workset(
    splits: Annotated[list[Path], typer.Argument(help="Split (faces) XML files whose photos the working set holds.")],
    to: Annotated[Path, typer.Option("--to", help="The working-set folder on the fast disk.")],
    root: Annotated[Path, typer.Option(help="The archive root (on the big disk).")] = Path("."),
    max_size: Annotated[str | None, typer.Option(help="Refuse to use more than this, e.g. 400G.")] = None,
    evict: Annotated[bool, typer.Option(help="Remove copies that none of these sets needs.")] = False,
) -> None:
    """Copy the photos some splits need to a fast disk (only missing or changed ones, each
    verified against the catalog) and write the splits' XML pointing at the copies.

    Example: bearid data workset splits/train.xml splits/val.xml --root bears --to /ssd/bears --max-size 400G
    """
    from bearid.data.workset import parse_size
    from bearid.data.workset import workset as run

    with Bars(console) as bars:
        r = run(root, splits, to, parse_size(max_size) if max_size else None, evict, progress=bars.counter("copying"))
    console.print(
        _table(
            f"working set in {to}",
            [
                ("photos", r.photos),
                ("size MB", round(r.bytes / 1e6, 1)),
                ("copied", r.copied),
                ("already there", r.kept),
                ("evicted", len(r.evicted)),
                ("XML", ", ".join(str(x) for x in r.xml)),
            ],
        )
    )
