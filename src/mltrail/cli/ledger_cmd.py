"""``mltrail ledger``: check and rebuild the event index, show status."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mltrail.cli.common import (
    JsonOpt,
    emit,
    fields_table,
    open_ledger,
    progress,
    read_index,
    show_progress,
)

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check_(as_json: JsonOpt = False) -> None:
    """Verify the whole ledger: chain, pins, index and contract state (exit 1 if not).

    Example: mltrail ledger check --json
    """
    from mltrail.ledger.check import check

    with open_ledger() as led:
        total = led.backend.head() + 1
        with progress("checking blocks", total, show_progress(as_json)) as advance:
            report = check(led, advance)
    how = "re-executed from genesis" if report.rows else "linked and pinned"
    emit(report.as_dict(), as_json, f"ledger ok: {report.blocks} blocks {how}, "
         f"{report.events} events and {report.artefacts} artefacts match the index and the "
         f"contract (head {report.head})")


@app.command("reindex")
def reindex_(as_json: JsonOpt = False) -> None:
    """Rebuild the event index from the chain (refused when the chain itself is damaged).

    Example: mltrail ledger reindex
    """
    from mltrail.ledger.check import reindex

    with open_ledger() as led:
        n = reindex(led)
        head = led.index.last_block()
    emit({"events": n, "head": head}, as_json, f"reindexed {n} events up to block {head}")


@app.command("trust")
def trust_(
    accept: Annotated[bool, typer.Option(
        "--i-accept-unverifiable-history",
        help="Pin the chain as it is now although the home's pins.json is missing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Trust this home's chain again after its pins.json vanished (explicit; see the warning).

    The chain is re-executed and checked first; what the lost pins can no longer vouch for
    is printed on stderr.

    Example: mltrail ledger trust --i-accept-unverifiable-history
    """
    from mltrail.errors import RefusedError
    from mltrail.ledger.check import retrust
    from mltrail.ledger.trust import ACCEPT_FLAG

    if not accept:
        raise RefusedError(f"re-trusting a chain is explicit: add {ACCEPT_FLAG} (history cut "
                           "back or rewritten while the pins were missing cannot be detected)")
    with open_ledger() as led:
        head, lost = retrust(led)
    for line in lost:
        sys.stderr.write(f"warning: {line}\n")
    emit({"head": head, "lost": lost}, as_json,
         f"trusted the chain as it is now: pinned head {head}")


@app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """Backend, chain, registry and head of this home's ledger.

    Example: mltrail ledger status
    """
    with read_index() as reader:
        s = reader.settings
        data = {"home": str(reader.home.root), "backend": s.backend, "rpc_url": s.rpc_url,
                "chain_id": s.chain_id, "registry": s.registry, "identity": s.identity,
                "head": reader.head, "lifecycle_digest": s.lifecycle_digest}
    emit(data, as_json, lambda: fields_table(data))
