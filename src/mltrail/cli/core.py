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
    """Create a home (.mltrail/) with a ledger: embedded, or on a node with --ledger."""
    from mltrail.config import new_home_path
    from mltrail.identity import read_key_file
    from mltrail.ledger.setup import init_home

    key = read_key_file(import_key) if import_key is not None else None
    if lifecycle is not None:
        from mltrail._fs import regular_file

        regular_file(lifecycle, "lifecycle")
    target = new_home_path(STATE.home)
    for folder in (target.root, *target.root.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                what = "a dangling link" if not folder.exists() else "not a folder"
                raise InputError(f"cannot create a home at {target.root}: {folder} is {what}")
            break
    home = init_home(target.root, ask_password(confirm=True), lifecycle, ledger, registry, name,
                     key)
    settings = home.settings()
    from mltrail.identity import address_of

    data = {"home": str(home.root), "backend": settings.backend, "chain_id": settings.chain_id,
            "registry": settings.registry, "identity": settings.identity,
            "address": address_of(home, settings.identity),
            "lifecycle_digest": settings.lifecycle_digest}
    verb = "joined registry" if registry else "deployed registry"
    emit(data, as_json, f"initialised [bold]{escape(str(home.root))}[/] ({settings.backend}); "
         f"{verb} {settings.registry}; identity [bold]{settings.identity}[/] = {data['address']}")


def _default_name(path: Path) -> str | None:
    """The file's name as the artefact's name, when it makes a usable one."""
    from mltrail.ledger.reader import looks_like_id

    n = path.resolve().name
    ok = n and n.isprintable() and n == n.strip() and len(n.encode()) <= 64
    return n if ok and not looks_like_id(n) else None


def _lookup(led: Any, ref: str) -> tuple[str, str | None]:
    """Full id and name from an id, a prefix or a name, after syncing ``led``'s index."""
    from mltrail.ledger.reader import IndexReader

    led.sync()
    reader = IndexReader.open(led.home, led.settings, led.lifecycle, require_current=False)
    if reader is None:
        return str(led.resolve(ref)), None
    with reader:
        view = reader.artefact(ref)
        return view.id, view.name


def _resolve(led: Any, ref: str) -> str:
    return _lookup(led, ref)[0]


def register(
    path: Annotated[Path, typer.Argument(help="File or directory to register.")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="dataset, model, service, ...")],
    parent: Annotated[list[str] | None, typer.Option(
        "--parent", "-p", help="Artefact it derives from (id, prefix or name).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Name shared on chain (default: the file's name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hash PATH and register it as an artefact of KIND."""
    from mltrail._fs import readable_tree
    from mltrail.provenance.artefacts import register_path

    if not path.exists() and not path.is_symlink():
        raise InputError(f"path does not exist: {path}")
    readable_tree(path, "path")
    art_name = name if name is not None else _default_name(path)
    with open_ledger() as led:
        parents = [_resolve(led, p) for p in parent or []]
        with led.home.store.discard_on_failure():
            r, hashed = register_path(led, path, kind, parents, art_name)
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
    """Move an artefact to STATE (if the lifecycle and your roles allow it)."""
    from mltrail._fs import regular_file
    from mltrail.provenance.digest import digest_file

    digest = None
    if evidence is not None:
        regular_file(evidence, "evidence file")
        digest = digest_file(evidence)
    with open_ledger() as led:
        aid, name = _lookup(led, artefact)
        before = led.artefact(aid)
        r = led.transition(before.id, state, digest)
        if evidence is not None:  # stored only once the chain accepted the transition
            led.home.store.put_file(evidence)
    data = {"artefact_id": before.id, "name": name, "from": before.state, "to": state,
            "evidence_digest": digest, **tx_fields(r)}
    label = escape(name) if name else _short(before.id)
    emit(data, as_json, f"{label} {before.state} -> [bold]{escape(state)}[/]  "
         f"tx {r.tx_hash} block {r.block} gas {r.gas_used}")


def show(artefact: Annotated[str, typer.Argument(help="Artefact id, unique prefix, or name.")],
         as_json: JsonOpt = False) -> None:
    """Show an artefact's current state and digests."""
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
    """Every event about an artefact, oldest first."""
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
            who = str(r["actor"])[:10]
            t.add_row(str(r["block"]), str(r["timestamp"]), str(r["event"]),
                      escape(str(r["what"])),
                      f"{escape(r['actor_name'])} ({who})" if r["actor_name"] else who)
        console.print(t)

    emit({"artefact_id": art.id, "name": art.name, "events": rows}, as_json, human)


MAX_LIMIT = 1_000_000


def list_(kind: Annotated[str | None, typer.Option("--kind", "-k")] = None,
          limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LIMIT)] = 1000,
          as_json: JsonOpt = False) -> None:
    """List registered artefacts, newest first."""
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
