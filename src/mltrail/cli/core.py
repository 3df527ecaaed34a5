"""Top-level commands: init, register, transition, show, history, list."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mltrail.cli.common import STATE, JsonOpt, console, emit, open_ledger
from mltrail.config import ENV_PASSWORD
from mltrail.errors import InputError


def ask_password(confirm: bool = False) -> str:
    """``$MLTRAIL_PASSWORD``, else a prompt on a terminal, else an error."""
    pw = os.environ.get(ENV_PASSWORD)
    if pw:
        return pw
    if not os.isatty(0):
        raise InputError("no password: set MLTRAIL_PASSWORD or run on a terminal")
    pw = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != pw:
        raise InputError("passwords differ")
    return pw


def _short(artefact_id: str) -> str:
    return artefact_id[:12]


def init(
    ledger: Annotated[str | None, typer.Option(
        "--ledger", help="JSON-RPC URL of a shared network (default: embedded chain).")] = None,
    registry: Annotated[str | None, typer.Option(
        "--registry", help="Join this deployed registry instead of deploying one.")] = None,
    lifecycle: Annotated[Path | None, typer.Option(
        "--lifecycle", help="Your own lifecycle YAML (default: lifecycles/default.yaml).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Identity to create (admin when deploying, member when joining).")] = None,
    import_key: Annotated[Path | None, typer.Option(
        "--import-key", help="File holding a hex private key to use (a funded one).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a home (.mltrail/) with a ledger: embedded, or on a node with --ledger."""
    from mltrail.config import new_home_path
    from mltrail.identity import read_key_file
    from mltrail.ledger.setup import init_home

    key = read_key_file(import_key) if import_key is not None else None
    target = new_home_path(STATE.home)
    home = init_home(target.root, ask_password(confirm=True), lifecycle, ledger, registry, name,
                     key)
    settings = home.settings()
    from mltrail.identity import address_of

    data = {"home": str(home.root), "backend": settings.backend, "chain_id": settings.chain_id,
            "registry": settings.registry, "identity": settings.identity,
            "address": address_of(home, settings.identity),
            "lifecycle_digest": settings.lifecycle_digest}
    verb = "joined registry" if registry else "deployed registry"
    emit(data, as_json, f"initialised [bold]{home.root}[/] ({settings.backend}); {verb} "
         f"{settings.registry}; identity [bold]{settings.identity}[/] = {data['address']}")


def register(
    path: Annotated[Path, typer.Argument(help="File or directory to register.")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="dataset, model, service, ...")],
    parent: Annotated[list[str] | None, typer.Option(
        "--parent", "-p", help="Artefact it derives from.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Human name (metadata).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hash PATH and register it as an artefact of KIND."""
    from mltrail.provenance.artefacts import register_path

    with open_ledger() as led:
        r, hashed = register_path(led, path, kind, parent or [], name)
    digest = hashed.digest
    data = {"artefact_id": r.artefact_id, "kind": kind, "content_digest": digest, **r.as_dict()}
    emit(data, as_json, f"registered {kind} [bold]{r.artefact_id}[/]\n  content {digest}\n"
         f"  tx {r.tx_hash} block {r.block} gas {r.gas_used}")


def transition(
    artefact_id: Annotated[str, typer.Argument(help="Artefact id (or unique prefix).")],
    state: Annotated[str, typer.Argument(help="Target state.")],
    evidence: Annotated[Path | None, typer.Option(
        "--evidence", help="File cited as evidence (stored; its digest goes on chain).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an artefact to STATE (if the lifecycle and your roles allow it)."""
    with open_ledger() as led:
        digest = None
        if evidence is not None:
            if not evidence.is_file():
                raise InputError(f"evidence file not found: {evidence}")
            digest = led.home.store.put_file(evidence)
        before = led.artefact(artefact_id)
        r = led.transition(before.id, state, digest)
    data = {"artefact_id": before.id, "from": before.state, "to": state,
            "evidence_digest": digest, **r.as_dict()}
    emit(data, as_json, f"{_short(before.id)} {before.state} -> [bold]{state}[/]  "
         f"tx {r.tx_hash} block {r.block} gas {r.gas_used}")


def show(artefact_id: Annotated[str, typer.Argument(help="Artefact id (or prefix).")],
         as_json: JsonOpt = False) -> None:
    """Show an artefact's current state and digests."""
    with open_ledger() as led:
        art = led.artefact(artefact_id)
    data = art.as_dict()

    def human() -> None:
        t = Table(show_header=False, box=None)
        for k, v in data.items():
            t.add_row(f"[bold]{k}[/]", ", ".join(v) if isinstance(v, list) else str(v))
        console.print(t)

    emit(data, as_json, human)


def history(artefact_id: Annotated[str, typer.Argument(help="Artefact id (or prefix).")],
            as_json: JsonOpt = False) -> None:
    """Every event about an artefact, oldest first."""
    with open_ledger() as led:
        art = led.artefact(artefact_id)
        kind = led.lifecycle.kind(art.kind)
        events = led.history(art.id)
    rows = []
    for e in events:
        a = dict(e.args)
        if e.name == "Registered":
            what = f"registered in state {kind.state_name(int(a['state']))}"
        elif e.name == "Transitioned":
            what = (f"{kind.state_name(int(a['from_state']))} -> "
                    f"{kind.state_name(int(a['to_state']))}")
        else:
            what = f"anchored {a['count']} records, root {str(a['root'])[:18]}"
        rows.append({"block": e.block, "timestamp": e.timestamp, "event": e.name,
                     "actor": e.actor, "tx_hash": e.tx_hash, "what": what, "args": a})

    def human() -> None:
        t = Table("block", "event", "what", "actor")
        for r in rows:
            t.add_row(str(r["block"]), str(r["event"]), str(r["what"]), str(r["actor"])[:10])
        console.print(t)

    emit({"artefact_id": art.id, "events": rows}, as_json, human)


def list_(kind: Annotated[str | None, typer.Option("--kind", "-k")] = None,
          limit: Annotated[int, typer.Option("--limit", min=1)] = 1000,
          as_json: JsonOpt = False) -> None:
    """List registered artefacts, newest first."""
    with open_ledger() as led:
        arts = led.list_artefacts(limit, kind)
    data = [a.as_dict() for a in arts]

    def human() -> None:
        t = Table("id", "kind", "state", "block", "content")
        for a in arts:
            t.add_row(_short(a.id), a.kind, a.state, str(a.block), a.content_digest[:19])
        console.print(t)

    emit(data, as_json, human)


def install(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(register)
    app.command()(transition)
    app.command()(show)
    app.command()(history)
    app.command("list")(list_)
