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
    progress,
    read_index,
    show_progress,
)
from mltrail.errors import InputError, VerificationError

if TYPE_CHECKING:
    from rich.tree import Tree

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
    capture_env: Annotated[bool, typer.Option(
        "--capture-env", help="Also put local details in the statement: absolute paths, "
        "working folder, host, user, the installed package list.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run CMD as a captured step: hash inputs and outputs, sign an in-toto statement,
    register the outputs with the inputs as parents. A failing command registers nothing
    and mltrail exits with its code.

    Example: mltrail run --step train -i data.csv -c train.py -o model.pt -p lr=0.1 --
    python train.py
    """
    from mltrail.provenance.capture import run_command

    with open_ledger() as led:
        rc, result = run_command(led, step, command, inputs or [], outputs or [],
                                 _params(params), kind, input_kind, as_json, code or [],
                                 capture_env=capture_env)
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
        "--statement", help="Check every signature of a DSSE statement against its "
        "signer's identity on chain (address, published Ed25519 key).")] = None,
    anchored_by: Annotated[str | None, typer.Option(
        "--anchored-by", help="With --proof: the anchor must be this member's (an address, "
        "an identity, or 'owner').")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-hash PATH and report what it matches; exit 1 naming every changed file.

    With --proof, names who anchored the batch and who owns the artefact; exit 1 if the
    anchorer is neither the owner nor allowed by the kind's anchor: rule.

    Example: mltrail verify model.pt
    """
    from mltrail.provenance.verify import verify_any

    with open_ledger() as led, progress("hashing files", None,
                                        show_progress(as_json)) as advance:
        res = verify_any(led, path, artefact_id, all_=all_, proof=proof, statement=statement,
                         anchored_by=anchored_by, advance=advance)
    d = res.data
    if res.mode == "proof":
        by = ("its owner" if d["anchored_by_owner"] else
              f"{', '.join(d['anchored_by_roles']) or 'no role'}, not the owner "
              f"{d['owner']}; allowed by {d['rule']}")
        emit(d, as_json, f"[green]ok[/] record {d['index']} of {d['count']} is in the batch "
             f"anchored about {d['kind']} {d['artefact_id']} in block {d['anchored_block']} "
             f"by {d['anchored_by']} ({by})")
    elif res.mode == "statement":
        emit(d, as_json, lambda: _print_statement(d))
    else:
        emit(res.as_dict(), as_json, lambda: _print_checks(res.checks, res.summary()))
        if not res.ok:
            raise SystemExit(VerificationError.exit_code)


def _print_statement(d: dict[str, Any]) -> None:
    for sig in d["signatures"]:
        console.print(f"[green]ok[/] {sig['scheme']} signature by {sig['signer_name']}: "
                      f"{sig['detail']} (keyid {str(sig['keyid'])[:16]}…)", highlight=False)
    console.print(f"statement {d['statement_digest']} signed by {', '.join(d['signers'])}; "
                  f"{len(d['subjects'])} subject(s) on chain", highlight=False)


def _print_checks(checks: list[Any], summary: str | None) -> None:
    for c in checks:
        if c.ok:
            console.print(f"[green]ok[/] {c.path}: {c.message}; registered by "
                          f"{c.registered_by} at {c.registered_at}", highlight=False)
        else:
            err_console.print(f"[bold red]MISMATCH[/] {c.message}", highlight=False)
    if summary is not None:
        console.print(summary, highlight=False)


def lineage(
    artefact_id: Annotated[str, typer.Argument(help="Artefact id, unique prefix, or name.")],
    up: Annotated[bool, typer.Option("--up", help="Ancestors only.")] = False,
    down: Annotated[bool, typer.Option("--down", help="Descendants only.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f",
                                     help="tree, json, dot, svg or png.")] = "tree",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """An artefact's ancestors (--up), descendants (--down) or both, drawn or as data.

    Example: mltrail lineage model.pt --up --format dot --out lineage.dot
    """
    from mltrail.provenance import lineage as lin

    direction, fmt_ = lin.direction_of(up, down), lin.check_format("json" if as_json else fmt)
    with read_index() as reader:  # the fast path: no EVM when the index is current
        g = lin.graph(reader, artefact_id, direction)
    if fmt_ == "tree":
        console.print(_rich_tree(lin.tree(g), root=True))
        return
    saved = lin.save_or_text(g, fmt_, out)
    if isinstance(saved, str):
        sys.stdout.write(saved)
    elif fmt_ in ("svg", "png"):
        console.print(f"wrote {saved} ({len(g['nodes'])} artefacts, {len(g['edges'])} steps)")
    else:
        err_console.print(f"wrote {saved}")


def _rich_tree(node: Any, root: bool = False) -> Tree:
    """A :class:`mltrail.provenance.lineage.TreeNode` drawn with Rich."""
    from rich.tree import Tree

    text = escape(node.text)
    t = Tree(f"[bold]{text}[/]" if root else
             f"[dim]{escape(node.step)}[/] {text}" if node.step is not None else text)
    for child in node.children:
        t.children.append(_rich_tree(child))
    return t


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
                                     help="prov-json, prov-n, in-toto (statements) or "
                                     "in-toto-links.")] = "prov-json",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write.")] = None,
) -> None:
    """Provenance of an artefact and its ancestry as W3C PROV or an in-toto bundle.

    Example: mltrail export model.pt --format in-toto --out model.intoto.json
    """
    from mltrail.provenance.export import FORMATS
    from mltrail.provenance.export import export as do_export

    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}: use prov-json, prov-n, in-toto or "
                         "in-toto-links")
    with open_ledger() as led:
        _write_or_print(do_export(led, artefact_id, fmt), out)


def anchor(
    artefact_id: Annotated[str, typer.Argument(help="Artefact the records are about.")],
    records: Annotated[Path, typer.Argument(help="JSON Lines file, one record a line.")],
    proofs: Annotated[Path | None, typer.Option(
        "--proofs", help="Folder to write one inclusion proof per record into.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Anchor a batch of records (one Merkle root, one transaction).

    On a terminal a progress bar counts the records hashed and the proofs written.

    Example: mltrail anchor train-v1 records.jsonl --proofs proofs
    """
    from mltrail.provenance import batch

    with open_ledger() as led, progress("anchoring records", None,
                                        show_progress(as_json)) as live:
        res = batch.anchor_file(led, artefact_id, records, proofs, live.counted)
    emit(res, as_json, f"anchored {res['count']} records about {res['artefact_id'][:12]}: "
         f"root {res['root'][:16]}...  tx {res['tx_hash']} block {res['block']} "
         f"gas {res['gas_used']}")


@import_app.command("dvc")
def import_dvc(
    lock: Annotated[Path, typer.Argument(help="A dvc.lock file.")] = Path("dvc.lock"),
    kind: Annotated[str | None, typer.Option(
        "--kind", help="Kind of every stage output (default: model for a model file such "
        "as .pt/.onnx/.pkl or a folder holding one, else dataset).")] = None,
    stage_kind: Annotated[list[str] | None, typer.Option(
        "--stage-kind", help="STAGE=KIND for one stage's outputs (e.g. train=model).")] = None,
    out_kind: Annotated[list[str] | None, typer.Option(
        "--out-kind", help="PATH=KIND for one output, PATH as in dvc.lock "
        "(e.g. metrics.json=dataset).")] = None,
    capture_env: Annotated[bool, typer.Option(
        "--capture-env", help="Also put local details in the statements.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-hash each DVC stage's deps and outs and record the stages as activities.

    Example: mltrail import dvc dvc.lock --stage-kind prepare=dataset --out-kind model.pkl=model
    """
    from mltrail.provenance.importers import import_dvc as do

    kinds = {k: str(v) for k, v in _params(stage_kind).items()}
    outs = {k: str(v) for k, v in _params(out_kind).items()}
    with open_ledger() as led:
        res = do(led, lock, kind, kinds, outs, capture_env=capture_env)
    emit({"stages": [r.as_dict() for r in res]}, as_json,
         "\n".join(f"stage [bold]{r.step}[/]: " + ", ".join(
             f"{o['path']} -> {o['kind']} {o['artefact_id'][:12]}" for o in r.outputs)
             for r in res))


@import_app.command("mlflow")
def import_mlflow(
    run_id: Annotated[str, typer.Argument(help="MLflow run id.")],
    tracking_uri: Annotated[str, typer.Option("--tracking-uri", help="Local MLflow store.")],
    kind: Annotated[str, typer.Option("--kind", help="Kind of the run's outputs.")] = "model",
    capture_env: Annotated[bool, typer.Option(
        "--capture-env", help="Also put local details in the statement (store path, "
        "user, host, packages).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Record a local MLflow run's params, input datasets and artefacts.

    Example: mltrail import mlflow 0f3c9a --tracking-uri mlruns --kind model
    """
    from mltrail.provenance.importers import import_mlflow as do

    with open_ledger() as led:
        r = do(led, run_id, tracking_uri, kind, capture_env=capture_env)
    emit(r.as_dict(), as_json, f"run [bold]{r.step}[/]: " + ", ".join(
        f"{o['path']} -> {o['artefact_id'][:12]}" for o in r.outputs))


def install(app: typer.Typer) -> None:
    app.command(context_settings={"allow_interspersed_args": False})(run)
    app.command()(verify)
    app.command()(lineage)
    app.command()(export)
    app.command()(anchor)
    app.add_typer(import_app, name="import", help="Import provenance from DVC or MLflow.\n\n"
                    "Example: mltrail import dvc dvc.lock --out-kind model.pkl=model")

