"""Provenance commands: run, verify, lineage, export, anchor, import dvc|mlflow.

Argument parsing and printing only; each command is one call into
:mod:`mltrail.provenance`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mltrail.cli.common import (
    JsonOpt,
    console,
    emit,
    err_console,
    escape,
    open_ledger,
    read_index,
)

if TYPE_CHECKING:
    from rich.tree import Tree
from mltrail.errors import InputError, VerificationError

import_app = typer.Typer(no_args_is_help=True)


def _params(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"a parameter is key=value, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def run(
    command: Annotated[list[str], typer.Argument(help="The command, after '--'.")],
    step: Annotated[str, typer.Option("--step", help="Name of the step (train, prepare...).")],
    inputs: Annotated[list[Path] | None, typer.Option("-i", "--input", help="Input path.")] = None,
    outputs: Annotated[list[Path] | None, typer.Option(
        "-o", "--output", help="Output path (registered as an artefact).")] = None,
    code: Annotated[list[Path] | None, typer.Option(
        "-c", "--code", help="Code file (hashed as a dependency, not registered).")] = None,
    params: Annotated[list[str] | None, typer.Option(
        "-p", "--param", help="Parameter key=value (value parsed as JSON if it can be).")] = None,
    kind: Annotated[str, typer.Option("--kind", "-k", help="Kind of the outputs.")] = "model",
    input_kind: Annotated[str, typer.Option(
        "--input-kind", help="Kind to register unregistered inputs as.")] = "dataset",
    as_json: JsonOpt = False,
) -> None:
    """Run CMD as a captured step: hash inputs and outputs, sign an in-toto statement,
    register the outputs with the inputs as parents. A failing command registers nothing
    and mltrail exits with its code."""
    from mltrail.provenance.capture import run_command

    with open_ledger() as led:
        rc, result = run_command(led, step, command, inputs or [], outputs or [],
                                 _params(params), kind, input_kind, as_json, code or [])
    if result is None:
        err_console.print(f"[bold red]step {step!r} failed[/] with exit code {rc}; "
                          "nothing registered", highlight=False)
        sys.exit(rc)
    data = result.as_dict()

    def human() -> None:
        console.print(f"step [bold]{step}[/] recorded; statement {result.statement_digest}")
        for i in result.inputs:
            new = " (registered now)" if i["registered"] else ""
            console.print(f"  input  {i['path']} -> {i['artefact_id']}{new}")
        for o in result.outputs:
            console.print(f"  output {o['path']} -> {o['kind']} [bold]{o['artefact_id']}[/]  "
                          f"tx {o['tx_hash']} block {o['block']} gas {o['gas_used']}")

    emit(data, as_json, human)


def verify(
    path: Annotated[Path | None, typer.Argument(help="File or folder to re-hash.")] = None,
    artefact_id: Annotated[str | None, typer.Argument(help="Artefact to check against.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Check every artefact whose location "
                                       "is known.")] = False,
    proof: Annotated[Path | None, typer.Option("--proof", help="Check a Merkle inclusion "
                                               "proof against the chain.")] = None,
    statement: Annotated[Path | None, typer.Option(
        "--statement", help="Check a DSSE statement's signature against the chain.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-hash PATH and report what it matches; exit 1 naming every changed file."""
    from mltrail.provenance import batch
    from mltrail.provenance import verify as v

    chosen = sum(x for x in (path is not None, all_, proof is not None, statement is not None))
    if chosen != 1:
        raise InputError("give exactly one of PATH, --all, --proof FILE, --statement FILE")
    with open_ledger() as led:
        if proof is not None:
            res = batch.verify_proof(led, batch.load_proof(proof))
            emit(res, as_json, f"[green]ok[/] record {res['index']} of {res['count']} is in "
                 f"the batch anchored about {res['artefact_id']} in block "
                 f"{res['anchored_block']}")
            return
        if statement is not None:
            res = v.verify_envelope(led, statement)
            emit(res, as_json, f"[green]ok[/] signed by {', '.join(res['signers'])}; "
                 f"{len(res['subjects'])} subject(s) on chain")
            return
        checks = v.verify_all(led) if all_ else [v.verify_path(led, path or Path("."),
                                                               artefact_id)]
    bad = [c for c in checks if not c.ok]

    def human() -> None:
        for c in checks:
            if c.ok:
                console.print(f"[green]ok[/] {c.path}: {c.message}; registered by "
                              f"{c.registered_by} at {c.registered_at}", highlight=False)
            else:
                err_console.print(f"[bold red]MISMATCH[/] {c.message}", highlight=False)
        if all_:
            console.print(f"{len(checks) - len(bad)} of {len(checks)} artefacts match")

    emit({"ok": not bad, "checks": [c.as_dict() for c in checks]}, as_json, human)
    if bad:
        raise SystemExit(VerificationError.exit_code)


def lineage(
    artefact_id: Annotated[str, typer.Argument(help="Artefact id, unique prefix, or name.")],
    up: Annotated[bool, typer.Option("--up", help="Ancestors only.")] = False,
    down: Annotated[bool, typer.Option("--down", help="Descendants only.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f",
                                     help="tree, json, dot, svg or png.")] = "tree",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """An artefact's ancestors (--up), descendants (--down) or both, drawn or as data."""
    from mltrail.provenance import lineage as lin

    if up and down:
        raise InputError("give --up or --down, not both")
    if as_json:
        fmt = "json"
    if fmt not in ("tree", "json", "dot", "svg", "png"):
        raise InputError(f"unknown format {fmt!r}: use tree, json, dot, svg or png")
    with read_index() as reader:  # the fast path: no EVM when the index is current
        g = lin.graph(reader, artefact_id, "down" if down else "up" if up else "both")
    if fmt in ("svg", "png"):
        target = out or Path(f"lineage-{g['root'][2:12]}.{fmt}")
        lin.write(g, fmt, target)  # type: ignore[arg-type]
        console.print(f"wrote {target} ({len(g['nodes'])} artefacts, {len(g['edges'])} steps)")
        return
    text = {"json": lambda: json.dumps(g, indent=2, sort_keys=True) + "\n",
            "dot": lambda: lin.to_dot(g)}.get(fmt)
    if text is not None:
        _write_or_print(text(), out)
        return
    from rich.tree import Tree

    by_id = {n["id"]: n for n in g["nodes"]}
    parents: dict[str, list[tuple[str, str]]] = {}
    children: dict[str, list[tuple[str, str]]] = {}
    for e in g["edges"]:
        parents.setdefault(e["to"], []).append((e["from"], e["activity"]))
        children.setdefault(e["from"], []).append((e["to"], e["activity"]))

    def grow(node: Tree, ident: str, nxt: dict[str, list[tuple[str, str]]],
             seen: frozenset[str]) -> None:
        for other, step in nxt.get(ident, []):
            if other not in seen:
                grow(node.add(f"[dim]{escape(step)}[/] {escape(lin.label(by_id[other]))}"),
                     other, nxt,
                     seen | {other})

    root = g["root"]
    tree = Tree(f"[bold]{escape(lin.label(by_id[root]))}[/]")
    if not down:
        grow(tree.add("ancestors") if not up else tree, root, parents, frozenset({root}))
    if not up:
        grow(tree.add("descendants") if not down else tree, root, children,
             frozenset({root}))
    console.print(tree)


def _write_or_print(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    from mltrail._fs import atomic_write

    atomic_write(out, text.encode(), durable=False)
    err_console.print(f"wrote {out}")


def export(
    artefact_id: Annotated[str, typer.Argument(help="Artefact id (or prefix).")],
    fmt: Annotated[str, typer.Option("--format", "-f",
                                     help="prov-json, prov-n or in-toto.")] = "prov-json",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write.")] = None,
) -> None:
    """Provenance of an artefact and its ancestry as W3C PROV or an in-toto bundle."""
    from mltrail.provenance.export import export as do_export

    if fmt not in ("prov-json", "prov-n", "in-toto"):
        raise InputError(f"unknown format {fmt!r}: use prov-json, prov-n or in-toto")
    with open_ledger() as led:
        _write_or_print(do_export(led, artefact_id, fmt), out)  # type: ignore[arg-type]


def anchor(
    artefact_id: Annotated[str, typer.Argument(help="Artefact the records are about.")],
    records: Annotated[Path, typer.Argument(help="JSON Lines file, one record a line.")],
    proofs: Annotated[Path | None, typer.Option(
        "--proofs", help="Folder to write one inclusion proof per record into.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Anchor a batch of records (one Merkle root, one transaction)."""
    from mltrail.provenance import batch

    rows = batch.read_records(records)
    with open_ledger() as led:
        res = batch.anchor_batch(led, artefact_id, rows)
    if proofs is not None:
        batch.write_proofs(proofs, res["artefact_id"], rows, res["batch"])
        res["proofs"] = str(proofs)
    emit(res, as_json, f"anchored {res['count']} records about {res['artefact_id'][:12]}: "
         f"root {res['root'][:16]}...  tx {res['tx_hash']} block {res['block']} "
         f"gas {res['gas_used']}")


@import_app.command("dvc")
def import_dvc(
    lock: Annotated[Path, typer.Argument(help="A dvc.lock file.")] = Path("dvc.lock"),
    kind: Annotated[str, typer.Option("--kind", help="Kind of stage outputs.")] = "dataset",
    stage_kind: Annotated[list[str] | None, typer.Option(
        "--stage-kind", help="STAGE=KIND for one stage's outputs (e.g. train=model).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-hash each DVC stage's deps and outs and record the stages as activities."""
    from mltrail.provenance.importers import import_dvc as do

    kinds = {k: str(v) for k, v in _params(stage_kind).items()}
    with open_ledger() as led:
        res = do(led, lock, kind, kinds)
    emit({"stages": [r.as_dict() for r in res]}, as_json,
         "\n".join(f"stage [bold]{r.step}[/]: " + ", ".join(
             f"{o['path']} -> {o['kind']} {o['artefact_id'][:12]}" for o in r.outputs)
             for r in res))


@import_app.command("mlflow")
def import_mlflow(
    run_id: Annotated[str, typer.Argument(help="MLflow run id.")],
    tracking_uri: Annotated[str, typer.Option("--tracking-uri", help="Local MLflow store.")],
    kind: Annotated[str, typer.Option("--kind", help="Kind of the run's outputs.")] = "model",
    as_json: JsonOpt = False,
) -> None:
    """Record a local MLflow run's params, input datasets and artefacts."""
    from mltrail.provenance.importers import import_mlflow as do

    with open_ledger() as led:
        r = do(led, run_id, tracking_uri, kind)
    emit(r.as_dict(), as_json, f"run [bold]{r.step}[/]: " + ", ".join(
        f"{o['path']} -> {o['artefact_id'][:12]}" for o in r.outputs))


def install(app: typer.Typer) -> None:
    app.command(context_settings={"allow_interspersed_args": False})(run)
    app.command()(verify)
    app.command()(lineage)
    app.command()(export)
    app.command()(anchor)
    app.add_typer(import_app, name="import", help="Import provenance from DVC or MLflow.")

