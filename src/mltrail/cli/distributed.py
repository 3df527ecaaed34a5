"""`mltrail pol train-distributed`: data-parallel training across untrusted Ray workers.

A thin command over :func:`mltrail.distributed.task.run_task`; added to the ``pol`` group
by :func:`install_pol` (registered in :data:`mltrail.cli.main.EXTENSIONS`). Bad input is
one line and exit 2 (the main module's handler).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mltrail.cli.common import emit, open_ledger, progress, show_progress


def train_distributed(
    out: Annotated[Path, typer.Argument(help="New folder for the proof bundle.")],
    data: Annotated[str, typer.Option("--data", help="'digits' or a safetensors file with "
                                      "float x and int64 y.")] = "digits",
    workers: Annotated[int, typer.Option("--workers", min=1, max=1024,
                                         help="Worker actors.")] = 3,
    ray_address: Annotated[str | None, typer.Option(
        "--ray", help="Address of a Ray cluster (default: start a local one).")] = None,
    spot_check: Annotated[float | None, typer.Option(
        "--spot-check", help="Fraction of updates replayed (default: from --miss-rate and "
        "--cheat-share).")] = None,
    miss_rate: Annotated[float, typer.Option(
        "--miss-rate", help="Accepted chance of missing a worker that corrupts a share "
        "--cheat-share of its updates.")] = 0.01,
    cheat_share: Annotated[float, typer.Option("--cheat-share", help="See --miss-rate.")] = 0.1,
    hidden: Annotated[int, typer.Option("--hidden", help="Hidden units of the MLP.")] = 32,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data.")] = 2,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1,
                                            help="Samples per worker and step.")] = 32,
    k: Annotated[int, typer.Option("--k", min=1, help="Checkpoint every k steps.")] = 10,
    lr: Annotated[float, typer.Option("--lr", help="SGD learning rate.")] = 0.1,
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum.")] = 0.9,
    seed: Annotated[int, typer.Option("--seed", help="Committed seed: batches, shards, "
                                      "init.")] = 0,
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="The data's dataset artefact: exclusions are anchored on it "
        "(needs a home).")] = None,
    byzantine: Annotated[list[str] | None, typer.Option(
        "--byzantine", help="Demonstration: make WORKER:KIND dishonest (random, scaled, "
        "stale, free-rider, rare, collude); repeatable.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Train an MLP data-parallel on Ray workers; spot-check their updates by replay;
    exclude (and, with --dataset, record on the ledger) any worker caught; write one proof.

    Verify the proof with 'mltrail pol verify': its replay adds the per-shard gradients
    as the coordinator did, so it must match exactly (docs/distributed.md).

    Example: mltrail pol train-distributed proof --workers 3 --byzantine 2:scaled
    """
    from contextlib import nullcontext

    from mltrail.distributed.coordinator import Options
    from mltrail.distributed.task import run_task

    opts = Options(workers=workers, batch_size=batch_size, epochs=epochs, k=k, seed=seed,
                   miss_rate=miss_rate, cheat_share=cheat_share, spot_check=spot_check,
                   address=ray_address, dataset_id=dataset)
    opts.check()
    with (open_ledger() if dataset else nullcontext()) as led, \
            progress("training across workers", None, show_progress(as_json)) as live:
        def tick(done: int, total: int) -> None:
            if done == 1:
                with live.counted(total):
                    pass
            live.advance(1)

        result = run_task(out, data=data, hidden=hidden, lr=lr, momentum=momentum,
                          opts=opts, byzantine=byzantine or (), ledger=led, progress=tick)
    caught = result["caught"]
    lines = [f"trained {result['rounds']} rounds on {workers} workers; proof in {out}",
             f"  spot-checked {result['checks']} updates (fraction {result['spot_check']:.3f},"
             f" tolerance {result['tolerance']['basis']})",
             f"  final model {result['final_model']}"]
    for c in caught:
        where = f"; on the ledger (tx {c['ledger']['tx_hash']})" if "ledger" in c else ""
        lines.append(f"  [bold red]worker {c['worker']} caught[/] at round {c['round']} "
                     f"and excluded; evidence {c['evidence']}{where}")
    lines += [f"  restarted from round 0 without worker {r['worker']}: it had been caught "
              f"after {len(r['unchecked_rounds'])} update(s) of its went in unchecked (rounds "
              f"{', '.join(map(str, r['unchecked_rounds'][:8]))}"
              f"{', …' if len(r['unchecked_rounds']) > 8 else ''})"
              for r in result.get("restarts", [])] or ([] if caught else ["  no worker caught"])
    emit(result, as_json, "\n".join(lines))


def install_pol(pol_app: typer.Typer) -> None:
    """Add ``train-distributed`` to the ``mltrail pol`` group (once per app)."""
    if any(c.name == "train-distributed" for c in pol_app.registered_commands):
        return
    pol_app.command("train-distributed")(train_distributed)
