"""``mltrail id``: create, import and list identities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mltrail.cli.common import JsonOpt, console, emit, home
from mltrail.cli.core import ask_password

app = typer.Typer(no_args_is_help=True)


@app.command("create")
def create(name: Annotated[str, typer.Argument(help="Name of the new identity.")],
           import_key: Annotated[Path | None, typer.Option(
               "--import-key", help="File with a hex private key.")] = None,
           as_json: JsonOpt = False) -> None:
    """Create an encrypted keystore for NAME (password: MLTRAIL_PASSWORD or a prompt).

    Example: mltrail id create alice --import-key alice.hex
    """
    from mltrail.identity import create_identity, read_key_file

    key = read_key_file(import_key) if import_key is not None else None
    address = create_identity(home(), name, ask_password(confirm=True), key)
    emit({"name": name, "address": address}, as_json, f"identity [bold]{name}[/] = {address}")


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List the identities in this home.

    Example: mltrail id list --json
    """
    from mltrail.identity import list_identities
    from mltrail.ledger.reader import load_settings

    h = home()
    default = load_settings(h).identity
    ids = list_identities(h)
    data = [{"name": i.name, "address": i.address, "default": i.name == default} for i in ids]

    def human() -> None:
        t = Table("name", "address", "")
        for d in data:
            t.add_row(escape(str(d["name"])), str(d["address"]), "default" if d["default"] else "")
        console.print(t)

    emit(data, as_json, human)
