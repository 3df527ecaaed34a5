"""`mltrail serve` (the participant node) and `mltrail token create|list|revoke`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from mltrail.cli.common import STATE, JsonOpt, console, emit, home

app = typer.Typer(no_args_is_help=True)


def serve(
    port: Annotated[int, typer.Option("--port", help="Port (0: a free one).")] = 8470,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    advertise: Annotated[str | None, typer.Option(
        "--advertise", help="Publish this URL on chain as your node (--as, else the "
                            "home's default identity); other members fetch blobs from it.")] = None,
    port_file: Annotated[Path | None, typer.Option(
        "--port-file", help="Write the bound port here once listening is possible.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64,
                                         help="Worker processes.")] = 1,
) -> None:
    """Serve this home's node: REST API (/v1, /docs), blob exchange and the dashboard (/).

    Example: mltrail --as alice serve --port 8470 --advertise https://node.example.org
    """
    from mltrail.cli.core import ask_password
    from mltrail.server.run import serve_node

    def notify(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    serve_node(home(), host=host, port=port, workers=workers, password=ask_password,
               advertise=advertise, port_file=port_file, notify=notify,
               identity=STATE.identity)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name for the token (e.g. ci, dashboard).")],
    identity: Annotated[str, typer.Option("--identity", help="Identity whose key signs its "
                                                             "writes.")],
    read_only: Annotated[bool, typer.Option("--read-only", help="May not write.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token; it is shown once and stored only as a hash.

    Example: mltrail token create ci --identity alice --read-only
    """
    from mltrail.server.tokens import TokenStore

    tok, secret = TokenStore(home()).create(name, identity, read_only)
    emit({"name": tok.name, "identity": tok.identity, "read_only": tok.read_only,
          "token": secret}, as_json,
         f"token [bold]{tok.name}[/] for {tok.identity}"
         f"{' (read-only)' if read_only else ''}:\n{secret}\n"
         "[dim]shown once; only its hash is kept[/]")


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List tokens (names, identities, read-only flags; never the secrets).

    Example: mltrail token list --json
    """
    from rich.table import Table

    from mltrail.server.tokens import TokenStore

    toks = TokenStore(home()).list()
    data = [{"name": t.name, "identity": t.identity, "read_only": t.read_only,
             "created": t.created} for t in toks]

    def human() -> None:
        table = Table("name", "identity", "access", "created")
        for t in toks:
            table.add_row(t.name, t.identity, "read-only" if t.read_only else "read-write",
                          time.strftime("%Y-%m-%d %H:%M", time.localtime(t.created)))
        console.print(table if toks else "no tokens")

    emit(data, as_json, human)


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="Token name.")],
           as_json: JsonOpt = False) -> None:
    """Revoke a token: requests with it get 401 from now on.

    Example: mltrail token revoke ci
    """
    from mltrail.server.tokens import TokenStore

    tok = TokenStore(home()).revoke(name)
    emit({"name": tok.name, "revoked": True}, as_json, f"revoked token {tok.name}")


def install(root: typer.Typer) -> None:
    """Add `serve` and `token` to the top-level app."""
    root.command("serve")(serve)
    root.add_typer(app, name="token", help="API tokens of this node (stored as hashes).\n\n"
                   "Example: mltrail token create ci --identity alice --read-only")
