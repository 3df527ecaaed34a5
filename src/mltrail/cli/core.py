"""Top-level commands: init, register, transition, show, history, list."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from mltrail.cli.common import (
    STATE,
    JsonOpt,
    actor,
    console,
    emit,
    escape,
    open_ledger,
    read_index,
    tx_fields,
)
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
    """Create a home (.mltrail/) with a ledger: embedded, or on a node with --ledger.

    Example: mltrail init --name alice --lifecycle lifecycles/default.yaml
    """
    from mltrail._fs import regular_file
    from mltrail.config import new_home_path
    from mltrail.identity import address_of, read_key_file
    from mltrail.ledger.setup import init_home

    key = read_key_file(import_key) if import_key is not None else None
    if lifecycle is not None:
        regular_file(lifecycle, "lifecycle")
    target = new_home_path(STATE.home)
    home = init_home(target.root, ask_password(confirm=True), lifecycle, ledger, registry, name,
                     key)
    settings = home.settings()

    data = {"home": str(home.root), "backend": settings.backend, "chain_id": settings.chain_id,
            "registry": settings.registry, "identity": settings.identity,
            "address": address_of(home, settings.identity),
            "lifecycle_digest": settings.lifecycle_digest}
    verb = "joined registry" if registry else "deployed registry"
    emit(data, as_json, f"initialised [bold]{escape(str(home.root))}[/] ({settings.backend}); "
         f"{verb} {settings.registry}; identity [bold]{settings.identity}[/] = {data['address']}")


def register(
    path: Annotated[Path, typer.Argument(help="File or directory to register.")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="dataset, model, service, ...")],
    parent: Annotated[list[str] | None, typer.Option(
        "--parent", "-p", help="Artefact it derives from (id, prefix or name).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Name shared on chain (default: the file's name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hash PATH and register it as an artefact of KIND.

    Example: mltrail --as alice register data/train.csv --kind dataset --name train-v1
    """
    from mltrail.ledger.client import check_name
    from mltrail.provenance.artefacts import register_artefact

    if name is not None:
        check_name(name)  # before anything is hashed: refused, never dropped silently
    with open_ledger() as led:
        led.resolve_parents(parent or [])  # a parent given twice is refused, not merged
        r, hashed, art_name = register_artefact(led, path, kind, parent, name)
    digest = hashed.digest
    data = {"artefact_id": r.artefact_id, "name": art_name, "kind": kind,
            "content_digest": digest, **tx_fields(r)}
    label = f" [bold]{escape(art_name)}[/]" if art_name else ""
    emit(data, as_json, f"registered {escape(kind)}{label} {r.artefact_id}\n  content {digest}\n"
         f"  tx {r.tx_hash} block {r.block} gas {r.gas_used} at {data['timestamp']}")


def transition(
    artefact: Annotated[str, typer.Argument(help="Artefact id, unique prefix, or name.")],
    state: Annotated[str, typer.Argument(help="Target state.")],
    evidence: Annotated[Path | None, typer.Option(
        "--evidence", help="File cited as evidence (stored; its digest goes on chain).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an artefact to STATE (if the lifecycle and your roles allow it).

    Example: mltrail --as victor transition train-v1 validated --evidence checks.json
    """
    from mltrail.provenance.artefacts import transition_artefact

    with open_ledger() as led:
        m = transition_artefact(led, artefact, state, evidence)
    data = {"artefact_id": m.artefact_id, "name": m.name, "from": m.before, "to": m.after,
            "evidence_digest": m.evidence_digest, **tx_fields(m.tx)}
    label = escape(m.name) if m.name else _short(m.artefact_id)
    emit(data, as_json, f"{label} {m.before} -> [bold]{escape(state)}[/]  "
         f"tx {m.tx.tx_hash} block {m.tx.block} gas {m.tx.gas_used}")


def show(artefact: Annotated[str, typer.Argument(help="Artefact id, unique prefix, or name.")],
         as_json: JsonOpt = False) -> None:
    """Show an artefact's current state and digests.

    Example: mltrail show train-v1 --json
    """
    with read_index() as reader:
        data = reader.artefact(artefact).as_dict()

    def human() -> None:
        from rich.table import Table

        t = Table(show_header=False, box=None)
        for k, v in data.items():
            text = ", ".join(v) if isinstance(v, list) else ("" if v is None else str(v))
            t.add_row(f"[bold]{k}[/]", escape(text))
        console.print(t)

    emit(data, as_json, human)


def _what(kind: Any, e: dict[str, Any]) -> str:
    a = e["args"]
    try:
        if e["event"] == "Registered":
            return f"registered in state {kind.state_name(int(a['state']))}"
        if e["event"] == "Transitioned":
            return (f"{kind.state_name(int(a['from_state']))} -> "
                    f"{kind.state_name(int(a['to_state']))}")
        if e["event"] == "Anchored":
            return f"anchored {a['count']} records, root {str(a['root'])[:18]}"
    except (KeyError, TypeError, ValueError):
        pass
    return str(e["event"])


def history(artefact: Annotated[str, typer.Argument(help="Artefact id, unique prefix, or name.")],
            as_json: JsonOpt = False) -> None:
    """Every event about an artefact, oldest first.

    Example: mltrail history train-v1
    """
    from mltrail.identity import names_by_address

    with read_index() as reader:
        art, events = reader.history(artefact)
        kind = reader.lifecycle.kind(art.kind)
        local = names_by_address(reader.home)
    rows = [{**e, "what": _what(kind, e), "actor_name": local.get(str(e["actor"]).lower())}
            for e in events]

    def human() -> None:
        from rich.table import Table

        console.print(f"[bold]{escape(art.kind)} {escape(art.name or '')}[/] {art.id}")
        t = Table("block", "time (UTC)", "event", "what", "actor")
        for r in rows:
            t.add_row(str(r["block"]), str(r["timestamp"]), str(r["event"]),
                      escape(str(r["what"])), actor(str(r["actor"]), r["actor_name"]))
        console.print(t)

    emit({"artefact_id": art.id, "name": art.name, "events": rows}, as_json, human)


MAX_LIMIT = 1_000_000


def list_(kind: Annotated[str | None, typer.Option(
              "--kind", "-k", help="Only artefacts of this kind.")] = None,
          limit: Annotated[int, typer.Option(
              "--limit", min=1, max=MAX_LIMIT, help="At most this many artefacts.")] = 1000,
          as_json: JsonOpt = False) -> None:
    """List registered artefacts, newest first.

    Example: mltrail list --kind model --limit 20 --json
    """
    with read_index() as reader:
        arts = reader.artefacts(limit, kind)
    data = [a.as_dict() for a in arts]

    def human() -> None:
        from rich.table import Table

        t = Table("id", "name", "kind", "state", "block", "time (UTC)")
        for a in arts:
            t.add_row(_short(a.id), escape(a.name or ""), a.kind, a.state, str(a.block),
                      a.timestamp)
        console.print(t)

    emit(data, as_json, human)


def install(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(register)
    app.command()(transition)
    app.command()(show)
    app.command()(history)
    app.command("list")(list_)
