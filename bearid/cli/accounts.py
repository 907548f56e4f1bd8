"""`bearid accounts ...`: volunteers' and curators' accounts for `bearid label` on a network.
Thin: the logic is in bearid.label.accounts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

app = typer.Typer(help="Accounts for bearid label: add, invite, list.")
console = Console()

XmlOption = Annotated[Path, typer.Option("--xml", help="The XML the accounts are for (they live beside its journal).")]
# bearid.label.accounts.ROLES, here so that -h lists them (tests check they agree).
Role = Annotated[
    Literal["volunteer", "curator"],
    typer.Option(help="volunteer (labels, proposes matches) or curator (also new bears, merges)."),
]


def _open(xml: Path):
    from bearid.cli.label import accounts_file
    from bearid.label.accounts import Accounts

    return Accounts.open(accounts_file(xml))


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="The account's name (recorded with every change).")],
    xml: XmlOption,
    role: Role = "volunteer",
    password: Annotated[str, typer.Option(help="Asked for (twice, hidden) if not given.")] = "",
) -> None:
    """Add an account (or set its role and password again: its sessions end).

    Example: bearid accounts add anna --role curator --xml faces.xml
    """
    from bearid.label.accounts import check_password, check_role
    from bearid.label.store import check_volunteer

    name, role = check_volunteer(name), check_role(role)  # before the password is asked for
    accounts = _open(xml)
    if not password:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    account = accounts.add(name, role, check_password(password))
    console.print(f"account {account.name} ({account.role}) saved")


@app.command()
def invite(
    xml: XmlOption,
    role: Role = "volunteer",
    url: Annotated[str, typer.Option(help="Where volunteers reach the tool.")] = "http://127.0.0.1:8080",
    by: Annotated[str, typer.Option(help="Your name, recorded with the invitation.")] = "",
    days: Annotated[float, typer.Option(help="Days the link stays valid.")] = 7,
) -> None:
    """A one-time link with which a volunteer chooses their name and password.

    Example: bearid accounts invite --xml faces.xml --url https://label.example.org --by anna
    """
    token = _open(xml).invite(role, by, days)
    console.print(f"{url.rstrip('/')}/invite?token={token}", soft_wrap=True)


@app.command("list")
def list_accounts(xml: XmlOption) -> None:
    """The accounts and open invitations.

    Example: bearid accounts list --xml faces.xml
    """
    from bearid.label.crowd import journal_stats

    found = _open(xml)
    measured = journal_stats(xml)

    def figure(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for a in found.accounts.values():
        line = f"{a.name:20} {a.role:10} since {a.created}"
        s = measured.get(a.name)
        if s is not None:  # what gold photos measured (bearid label --redundancy)
            line += (
                f"  answers {s.answers}, gold {s.gold}: box IoU {figure(s.box_iou, '.2f')}, "
                f"landmark error {figure(s.landmark_error, '.3f')} chip, ID accuracy {figure(s.id_accuracy, '.0%')}"
            )
        console.print(line, soft_wrap=True, highlight=False)
    console.print(f"{len(found.invites)} open invitation(s)")
