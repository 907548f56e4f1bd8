"""`bearid label`: the browser labelling tool. Thin: the logic is in bearid.label."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bearid.errors import BearIDError

console = Console()


def label(
    source: Annotated[
        Path,
        typer.Argument(
            help="An imglab XML (a split, a `bearid face detect` or `bearid score` output), or a folder of photos."
        ),
    ],
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0 for volunteers on the network)."
        ),
    ] = "127.0.0.1",
    xml: Annotated[
        Path | None,
        typer.Option(help="For a folder: the XML to create and label (default FOLDER/.bearid/label/faces.xml)."),
    ] = None,
    flags: Annotated[
        Path | None,
        typer.Option(
            help="A `bearid data clean` report.json for the 'flagged' queue "
            "(default: FOLDER/.bearid/clean/report.json if there)."
        ),
    ] = None,
    unsure_below: Annotated[float, typer.Option(help="Detections scored below this go to the 'unsure' queue.")] = 0.5,
    confident: Annotated[
        float, typer.Option(help="Bears named with less confidence than this wait in the 'match' queue.")
    ] = 0.7,
    bundle: Annotated[
        Path | None,
        typer.Option(help="Candidates for the match review from this bundle, run here (default: the XML's own)."),
    ] = None,
    champion: Annotated[
        bool, typer.Option("--champion", help="Candidates from the model store's champion, run here.")
    ] = False,
    accounts: Annotated[
        Path | None,
        typer.Option(
            help="Volunteers' accounts (bearid accounts); default .bearid-label/accounts.json beside the XML."
        ),
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without accounts on a non-loopback address (a trusted network).")
    ] = False,
    https: Annotated[
        bool, typer.Option("--https", help="Behind a TLS reverse proxy: session cookies are sent over HTTPS only.")
    ] = False,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="Reverse proxies (comma-separated addresses, as uvicorn's option) whose X-Forwarded-For and "
            "X-Forwarded-Proto are believed, e.g. 127.0.0.1 for a proxy on this machine that sets them "
            "(default: none; a login's address is the connection's).",
        ),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="Another name the page is reached by (a proxy's public name, e.g. label.example.org); repeatable. "
            "Requests for other names are refused (DNS rebinding); 127.0.0.1, localhost, ::1 and --host always work.",
        ),
    ] = None,
    redundancy: Annotated[
        int,
        typer.Option(
            help="Annotators per photo, each labelling blind; their consensus is what the XML holds "
            "(1: one person's edit is the label).",
            min=1,
            max=9,
        ),
    ] = 1,
    gold_every: Annotated[
        int, typer.Option(help="With --redundancy: one gold photo (a curator's truth) in every N tasks.", min=2)
    ] = 5,
    id_prefix: Annotated[
        list[str] | None,
        typer.Option(help="A location's bear-ID prefix for new bears, LOCATION=PREFIX (default: what its bears use)."),
    ] = None,
) -> None:
    """Review and fix faces, landmarks and bear IDs in the browser; every change is saved at
    once to the XML (atomic write plus a journal of who changed what).

    Example: bearid label results/face_config_01/face_meta/test.xml --port 8080
    Then open http://127.0.0.1:8080/?volunteer=YOUR_NAME
    Match review of a season: bearid score photos/ --bundle B --out s.jsonl; bearid label s.xml, queue 'match'
    """
    try:
        import uvicorn

        from bearid.label.app import Labeler, create_app
        from bearid.label.auth import Hosts
    except ImportError as exc:
        raise BearIDError(f"bearid label needs the label extra: pip install 'bearid[label]' ({exc})") from exc
    from bearid.label.identities import parse_prefixes
    from bearid.label.queues import QueueContext, read_flags
    from bearid.label.store import LabelStore, photo_list

    prefixes = parse_prefixes(id_prefix or [])
    model = _candidates(bundle, champion)

    if not source.exists():
        raise BearIDError(f"{source}: no such XML file or folder")
    folder = source if source.is_dir() else None
    if folder is not None:
        flags = flags or next((p for p in [folder / ".bearid/clean/report.json"] if p.exists()), None)
        source = (xml or folder / ".bearid/label/faces.xml").resolve()
    # Everything is checked before a folder's XML is written: a refused command writes nothing.
    auth = _auth(accounts or accounts_file(source), host, no_auth, https)
    flagged = read_flags(flags) if flags else {}
    if folder is not None:
        source = photo_list(folder, source)
    store = LabelStore(source)
    try:
        labeler = Labeler(
            store,
            QueueContext(unsure_below, flagged, confident),
            model=model,
            prefixes=prefixes,
            redundancy=redundancy,
            gold_every=gold_every,
        )
        opened = store.opened
        console.print(f"Labelling {store.xml}: {len(store)} photos. Journal: {store.journal}")
        if opened.recovered:
            console.print(f"Restored {opened.recovered} change(s) from the journal that a crash kept out of the XML.")
        if opened.outside:
            console.print(
                f"{opened.outside} photo(s) were changed by another tool "
                "since they were labelled here; the XML's version is kept."
            )
        if opened.torn:
            console.print(f"Dropped the journal's last line ({opened.torn} bytes), cut short by a crash mid-write.")
        if opened.temps:
            console.print(f"Removed {opened.temps} temporary file(s) a killed save left beside the XML.")
        if opened.skipped:
            console.print(f"Skipped {opened.skipped} journal edit(s) XML cannot hold (an older release took them).")
        console.print(f"Open http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/  (Ctrl+C stops)")
        if auth:
            console.print(f"Accounts: {len(auth.accounts.accounts)} in {auth.accounts.path}; everyone logs in.")
        if labeler.crowd is not None:
            console.print(
                f"{redundancy} annotators per photo, blind (/api/blind); {len(labeler.crowd.gold)} gold photo(s), "
                f"one in every {gold_every} tasks; disagreements in the 'disagreement' queue."
            )
        app = create_app(labeler, auth, Hosts.serving(host, allowed_host or []))
        uvicorn.run(app, host=host, port=port, log_level="warning", **proxy_options(forwarded_allow_ips))
    finally:
        store.close()


def accounts_file(xml: Path) -> Path:
    """Where an XML's accounts live by default: beside its journal."""
    return Path(xml).resolve().parent / ".bearid-label" / "accounts.json"


def proxy_options(forwarded_allow_ips: str | None) -> dict:
    """uvicorn's settings for forwarded headers: believed only from the proxies named
    (uvicorn itself would believe 127.0.0.1 by default, and so anyone's X-Forwarded-For)."""
    ips = (forwarded_allow_ips or "").strip()
    return {"proxy_headers": True, "forwarded_allow_ips": ips} if ips else {"proxy_headers": False}


def _auth(path: Path, host: str, no_auth: bool, https: bool):
    """Accounts if there are any; refused on a non-loopback address without them, and
    refused if others may read the accounts file (as ssh refuses such a key)."""
    import ipaddress

    from bearid.label.accounts import Accounts, check_private
    from bearid.label.auth import Auth

    found = Accounts.open(path) if path.exists() else None
    if found and found.accounts and not no_auth:
        check_private(path)
        return Auth(found, https=https)
    loopback = (
        host == "localhost"
        or (host.replace(".", "").isdigit() or ":" in host)
        and ipaddress.ip_address(host).is_loopback
    )
    if not loopback and not no_auth:
        raise BearIDError(
            f"--host {host} lets anyone on the network change the labels, and {path} has no accounts: "
            "add some (bearid accounts add NAME --role curator --xml XML), or give --no-auth on a trusted network"
        )
    return None


def _candidates(bundle: Path | None, champion: bool):
    """The match review's model, run in this process: a bundle folder or the champion."""
    from bearid.errors import require_in_process

    if bundle is None and not champion:
        return None
    require_in_process()
    from bearid.label.matches import ModelCandidates
    from bearid.serving.offline import InProcess

    local = InProcess.chosen(bundle, champion)
    return ModelCandidates(local.pipeline) if local is not None else None
