"""`mltrail pol` commands: train under the recorder, verify, dispute, calibrate.

A thin shell over :mod:`mltrail.pol`: every command maps to library calls of the same
names. ``verify`` exits 0 when the proof is accepted and 1 when it is rejected.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from mltrail.cli.common import (
    STATE,
    JsonOpt,
    Live,
    console,
    emit,
    fields_table,
    open_ledger,
    progress,
    show_progress,
)
from mltrail.errors import InputError, MltrailError, VerificationError
from mltrail.pol.challenge import DEFAULT_DELAY, DEFAULT_FORGED, DEFAULT_MISS_RATE

app = typer.Typer(no_args_is_help=True)

DataOpt = Annotated[str, typer.Option("--data", help="Training data: a safetensors file with "
                                      "x and y, or 'digits' (the reference task).")]
NeedDataOpt = Annotated[str | None, typer.Option(
    "--data", help="The training data the proof commits to: a safetensors file with x and y, "
    "or 'digits' (the reference task). Required unless --model names a proof whose dataset "
    "artefact on the ledger records a file with exactly the committed bytes.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", min=0, help="torch CPU threads (0: "
                                         "torch's default). One is fastest for small nets.")]

def _home_or_none() -> Any:
    from mltrail.cli.common import home

    try:
        h = home()
    except MltrailError:
        return None
    return h if h.exists() else None


def _threads(n: int) -> None:
    if n > 0:
        import torch

        torch.set_num_threads(n)


@contextmanager
def _ledger_if(wanted: bool, need_home: bool = False) -> Iterator[Any]:
    """The home's ledger when ``wanted`` (closed after), else None. Without a home: None,
    or the usual 'no home' error when ``need_home``."""
    led = open_ledger() if wanted and (need_home or _home_or_none() is not None) else None
    try:
        yield led
    finally:
        if led is not None:
            led.close()


@app.command("data")
def data_cmd(out: Annotated[Path, typer.Argument(help="Where to write the data file.")],
             as_json: JsonOpt = False) -> None:
    """Write the reference digits training split as a data file (x, y safetensors).

    Example: mltrail pol data digits.safetensors
    """
    from mltrail.pol.datafile import load_data, save_data

    x, y = load_data("digits")
    digest = save_data(x, y, out)
    emit({"path": str(out), "digest": digest, "samples": len(y)}, as_json,
         f"wrote {len(y)} samples to {out}\n  digest {digest}")


@app.command()
def train(
    out: Annotated[Path, typer.Argument(help="New folder for the proof bundle.")],
    data: DataOpt = "digits",
    arch: Annotated[str, typer.Option("--arch", help="cnn, mlp, resnet20 or a JSON spec.")] = "cnn",
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd or adam.")] = "sgd",
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 0.05,
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum.")] = 0.9,
    schedule: Annotated[str, typer.Option("--schedule", help="constant or cosine.")] = "constant",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data.")] = 3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Samples per "
                                            "step.")] = 32,
    k: Annotated[int, typer.Option("--k", min=1, help="Checkpoint every k steps.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Init seed (data order: seed+1).")] = 0,
    no_init_seed: Annotated[bool, typer.Option(
        "--no-init-seed", help="Do not commit the init seed (verifiers test it "
        "statistically).")] = False,
    name: Annotated[str, typer.Option("--name", help="Model name on the ledger.")] = "pol-model",
    ledger: Annotated[bool, typer.Option("--ledger/--no-ledger", help="Anchor epochs and "
                                         "register the model (default: if a home exists).")] = True,
    threads: ThreadsOpt = 1,
    as_json: JsonOpt = False,
) -> None:
    """Train a reference model under the Proof-of-Learning recorder; anchor and register it.

    To record your own PyTorch loop instead, use mltrail.record_loop from Python
    (docs/pol-your-loop.md).

    Example: mltrail pol train proof --arch cnn --epochs 2 --k 10
    """
    from mltrail.pol.workflows import TrainRequest, train_and_publish

    _threads(threads)
    req = TrainRequest(out=out, data=data, arch=arch, optimizer=optimizer, lr=lr,
                       momentum=momentum, schedule=schedule, epochs=epochs,
                       batch_size=batch_size, k=k, seed=seed, no_init_seed=no_init_seed,
                       name=name)
    with progress("training", None, show_progress(as_json)) as live, \
            _ledger_if(ledger) as led:
        result = train_and_publish(req, led, live.counted, status=live.status)
    text = (f"trained {result['steps']} steps; proof in {out} "
            f"({result['checkpoints']} checkpoints)\n  final model {result['final_model']}")
    if "model_id" in result:
        text += (f"\n  model [bold]{result['model_id']}[/] -> trained "
                 f"(tx {result['tx_hash']} block {result['block']} gas {result['gas_used']})"
                 f"\n  {len(result['anchors'])} epoch roots anchored on dataset "
                 f"{result['dataset_id']}")
    emit(result, as_json, text)


@app.command()
def verify(
    bundle: Annotated[Path | None, typer.Argument(help="Proof bundle folder (default: the "
                                                  "one the --model artefact names).")] = None,
    data: NeedDataOpt = None,
    q: Annotated[int, typer.Option("--q", min=0, help="Top segments per epoch.")] = 1,
    random_r: Annotated[int | None, typer.Option(
        "--random", min=0, help="Random segments (default: computed from --miss-rate and "
        "--forged).")] = None,
    miss_rate: Annotated[float, typer.Option(
        "--miss-rate", help="Accepted chance of missing a proof with a fraction --forged of "
        "fake segments.")] = DEFAULT_MISS_RATE,
    forged: Annotated[float, typer.Option("--forged", help="Fraction of fake segments the "
                                          "miss rate is stated for.")] = DEFAULT_FORGED,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Override the "
                                                    "calibrated error threshold.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model artefact the proof is "
                                              "for: checks its digest, anchors and init "
                                              "seed, takes the public challenge from the "
                                              "ledger, records the verdict.")] = None,
    record: Annotated[bool, typer.Option("--record/--no-record", help="With --model: record "
                                         "the verdict (verified or rejected).")] = True,
    delay: Annotated[int, typer.Option("--delay", min=1, help="With --model: the challenge "
                                       "block is this many blocks after publication.")]
    = DEFAULT_DELAY,
    secret: Annotated[str | None, typer.Option(
        "--secret", help="With --model: the verifier secret mixed into the public "
        "challenge (hex; default: 32 fresh random bytes, so the prover cannot know the "
        "draw; 'none' for the block alone, which a prover can grind). The report reveals "
        "it.")] = None,
    allow_unseeded: Annotated[bool, typer.Option(
        "--allow-unseeded", help="Move an accepted proof whose init seed was not fixed by "
        "the ledger to verified anyway.")] = False,
    trusted_code: Annotated[bool, typer.Option(
        "--trusted-code", help="A loop proof recorded in trusted-code mode: run the "
        "prover's pinned Python to replay it (read it first).")] = False,
    accept_trusted_code: Annotated[bool, typer.Option(
        "--accept-trusted-code", help="With --model: move an accepted trusted-code proof "
        "to verified (the override is named in the report).")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write an HTML report.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Fix the verifier's random "
                                             "segment seed (overrides the challenge).")] = None,
    device: Annotated[str, typer.Option("--device", help="Replay on this device.")] = "cpu",
    code: Annotated[list[Path] | None, typer.Option(
        "--code", help="A trusted-code loop proof: a folder holding the prover's pinned "
        "code (repeatable); it runs in a separate process after its digests are checked.")
    ] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=1, help="A trusted-code proof: stop its replay process after "
        "this many seconds (exit 2, nothing judged or recorded).")] = None,
    calibration: Annotated[Path | None, typer.Option(
        "--calibration", help="A 'pol calibrate --out' file: thresholds for replaying a "
        "proof trained on another platform (torch, device, dtype, CPU, BLAS) than this "
        "one. In the declared environment the replay must be exact.")] = None,
    threads: ThreadsOpt = 1,
    workers: Annotated[int, typer.Option(
        "--workers", help="Replay this many challenged segments at once, each in its own "
        "process (1 to 64; an exported loop proof). Same verdict and report as one.")] = 1,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="With --workers: replay on the Ray cluster at this address "
        "(host:port, ray://host:port, auto; 'local' starts one here).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a proof by partial replay. Exit 0: accepted; 1: rejected.

    A proof recorded from your own loop (mltrail.record_loop) carries its model, loss
    and transform as torch.export programs: it is replayed with none of the prover's
    Python. One recorded in trusted-code mode names them by import path instead: pass
    --trusted-code and the folder of that code with --code (its source digests are
    checked before it is imported; the replay runs it in a separate process).

    Example: mltrail pol verify proof --data train.safetensors
    """
    from mltrail.pol.workflows import VerifyRequest, verify_and_record

    _threads(threads)
    req = VerifyRequest(bundle=bundle, data=data, q=q, random_r=random_r, miss_rate=miss_rate,
                        forged=forged, threshold=threshold, model=model, record=record,
                        delay=delay, secret=secret, allow_unseeded=allow_unseeded,
                        trusted_code=trusted_code, accept_trusted_code=accept_trusted_code,
                        seed=seed,
                        device=device, code=list(code or []), timeout=timeout, report=report,
                        html=html_out, calibration=calibration, workers=workers, ray=ray)

    bars: list[Live] = []

    def seen(s: Any) -> None:
        bars[0].line(f"  segment #{s.index} steps {s.start_step}-{s.end_step} ({s.chosen}): error "
             f"{s.error:.3g}" + (f", optimizer {s.optim_error:.3g}" if s.optim_error
                                 is not None else "") + ("" if s.ok else "  [red]FAIL[/]"))

    with progress("replaying: segments", None, show_progress(as_json)) as live, \
            _ledger_if(model is not None, need_home=True) as led:
        bars.append(live)
        rep, out = verify_and_record(req, led, live.counted, on_segment=seen,
                                     on_plan=live.total)

    def human() -> None:
        ch = rep.challenge
        if ch is not None and ch.source == "ledger":
            console.print(f"  challenge: block {ch.block} hash {str(ch.block_hash)[:18]}… "
                          f"(publication + {delay})"
                          + (f", verifier secret {ch.secret}" if ch.secret else "")
                          + f" -> seed {rep.verifier_seed}", highlight=False)
        if rep.tolerance:
            console.print(f"  tolerance: {escape(str(rep.tolerance['why']))} (weights <= "
                          f"{rep.threshold:.3g}, optimizer <= {rep.optim_threshold or 0:.3g})",
                          highlight=False)
        rule = rep.r_rule
        if "miss_rate" in rule:
            console.print(f"  R = {rep.r} random of {rule['pool']} segments: a proof with "
                          f"{rule['forged_segments']} fake of {rule['segments']} escapes with "
                          f"probability {rule['predicted_miss']:.3g} <= "
                          f"{rule['effective_miss_rate']:.3g}"
                          + (f" ({len(set(rep.prior_rejections) | set(rep.publications))} "
                             "earlier publication(s) of these weights or rejection(s) "
                             "of its publisher)"
                             if rep.prior_rejections or rep.publications else ""),
                          highlight=False)
        for c in rep.checks:
            console.print(f"  {'[green]pass[/]' if c.ok else '[red]FAIL[/]'}  {c.name}: "
                          f"{escape(c.detail)}", highlight=False)
        console.print(escape(rep.summary()), highlight=False)
        rec = out.get("ledger")
        if rec and rec.get("recorded"):
            console.print(f"  model {out['model']} -> [bold]{rec['state']}[/] (evidence "
                          f"{rec['report_digest']}, tx {rec['tx_hash']} block {rec['block']} "
                          f"gas {rec['gas_used']})")
        elif rec:
            console.print(f"  not recorded: {rec['why']}")

    emit(out, as_json, human)
    if not rep.accepted:
        raise VerificationError(f"proof rejected: {rep.reasons[0] if rep.reasons else '?'}")


@app.command()
def dispute(
    model_id: Annotated[str, typer.Argument(help="A model artefact (any claimant's).")],
    data: Annotated[str, typer.Option("--data", help="The training data the proofs commit "
                                      "to: a data file, or 'digits'.")],
    q: Annotated[int, typer.Option("--q", min=0, help="Top segments per epoch.")] = 1,
    random_r: Annotated[int, typer.Option("--random", min=0, help="Random segments per "
                                          "proof.")] = 1,
    threads: ThreadsOpt = 1,
    as_json: JsonOpt = False,
) -> None:
    """Settle who trained a model: every claimant of its digest, by validity then chronology.

    Example: mltrail pol dispute 0x1234abcd --data digits
    """
    from mltrail.pol.datafile import load_data
    from mltrail.pol.dispute import claims_on_ledger, settle

    _threads(threads)
    x, y = load_data(data)
    from mltrail.identity import list_identities

    with open_ledger() as led:
        names = {i.address.lower(): f"{i.name} ({i.address[:10]}…)"
                 for i in list_identities(led.home)}
        digest, claims = claims_on_ledger(led, model_id)
        decision = settle(claims, (x, y), digest, ledger=led, q=q, r=random_r, names=names)
    emit(decision.as_dict(), as_json, "\n".join(decision.reasoning))
    if decision.winner is None:
        raise VerificationError("dispute undecided: no claimant is shown to have trained it")


@app.command()
def publish(bundle: Annotated[Path, typer.Argument(help="Proof bundle folder.")],
            name: Annotated[str, typer.Option("--name", help="Model name on the ledger.")]
            = "pol-model",
            parent: Annotated[list[str] | None, typer.Option(
                "--parent", "-p", help="A parent artefact (the dataset); repeatable.")] = None,
            as_json: JsonOpt = False) -> None:
    """Register the model a bundle proves (its final weights) and mark it trained.

    Example: mltrail pol publish proof --name my-model --parent 0x1234abcd
    """
    from mltrail.pol.onchain import publish_model

    with open_ledger() as led:
        res = publish_model(led, bundle, name=name, parents=parent or [])
    emit(res, as_json, f"model [bold]{res['model_id']}[/] -> trained\n  content "
         f"{res['content_digest']}\n  tx {res['tx_hash']} block {res['block']} "
         f"gas {res['gas_used']}")


@app.command()
def inspect(bundle: Annotated[Path, typer.Argument(help="Proof bundle folder.")],
            as_json: JsonOpt = False) -> None:
    """Show what a proof bundle claims (no verification).

    Example: mltrail pol inspect proof
    """
    from mltrail.pol.bundle import read_manifest

    man = read_manifest(bundle)
    h = man.header
    out = {"header_digest": man.header_digest, "chain_head": man.chain_head,
           "final_model": man.final_model, "complete": man.complete, "k": h.k,
           "training": h.training.model_dump(), "data": h.data.model_dump(),
           "init": h.init.model_dump(), "prover": h.prover, "torch": h.torch,
           "device": h.device, "checkpoints": len(man.checkpoints()),
           "anchors": [a.model_dump() for a in man.anchors]}
    emit(out, as_json, lambda: fields_table({**out, "anchors": len(man.anchors)}))


@app.command()
def pack(bundle: Annotated[Path, typer.Argument(help="Proof bundle folder.")],
         out: Annotated[Path, typer.Argument(help="Where to write the .tar.")],
         as_json: JsonOpt = False) -> None:
    """Pack a bundle folder into one deterministic tar (what the content store keeps).

    Example: mltrail pol pack proof proof.tar
    """
    from mltrail._fs import atomic_write
    from mltrail.pol.bundle import pack as pack_bundle
    from mltrail.provenance.digest import digest_bytes

    data = pack_bundle(bundle)
    atomic_write(out, data)
    emit({"path": str(out), "digest": digest_bytes(data), "bytes": len(data)}, as_json,
         f"packed {bundle} into {out} ({len(data)} bytes, {digest_bytes(data)})")


@app.command()
def unpack(archive: Annotated[Path, typer.Argument(help="A packed bundle (.tar).")],
           out: Annotated[Path, typer.Argument(help="New folder for the bundle.")],
           as_json: JsonOpt = False) -> None:
    """Unpack a packed bundle into a folder.

    Example: mltrail pol unpack proof.tar proof-copy
    """
    from mltrail.pol.bundle import unpack as unpack_bundle

    if not archive.is_file():
        raise InputError(f"no such file: {archive}")
    if out.exists():
        raise InputError(f"{out} exists; choose a new folder")
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        stage = unpack_bundle(archive.read_bytes(), Path(tmp) / "bundle")
        stage.rename(out)
    emit({"path": str(out)}, as_json, f"unpacked {archive} into {out}")


@app.command()
def calibrate(quick: Annotated[bool, typer.Option("--quick", help="One short run.")] = False,
              device: Annotated[str | None, typer.Option("--device", help="Also replay on "
                                                         "this device (e.g. cuda).")] = None,
              out: Annotated[Path | None, typer.Option("--out", help="Write the JSON.")] = None,
              bundle: Annotated[list[Path] | None, typer.Option(
                  "--bundle", help="Calibrate on your own set-up: honest proofs recorded "
                  "from your loop (repeatable) instead of the reference task.")] = None,
              data: Annotated[str | None, typer.Option(
                  "--data", help="With --bundle: the data those proofs commit to (a file, "
                  "a folder, or a dataset artefact).")] = None,
              code: Annotated[list[Path] | None, typer.Option(
                  "--code", help="With --bundle: a folder holding the pinned code "
                  "(repeatable).")] = None,
              as_json: JsonOpt = False) -> None:
    """Measure honest replay noise and derive the replay thresholds.

    Without --bundle, on the reference task (the numbers behind the defaults). With
    --bundle, on proofs of your own loop: every segment is replayed under two threads and
    in float64 (and on --device), so thresholds are calibrated for your regime; pass the
    result to verify --threshold.

    Example: mltrail pol calibrate --bundle proof --data train.safetensors --code src
    """
    from mltrail._fs import atomic_write
    from mltrail.pol.workflows import calibrate_runs

    if out is not None and out.is_dir():
        raise InputError(f"--out {out} is a folder; give the path of a new JSON file")

    @contextmanager
    def counting(total: int | None) -> Iterator[Callable[[int], None]]:
        with progress("calibrating: proofs replayed (each mode)", total,
                      show_progress(as_json)) as live:
            yield live.advance

    remote = bool(bundle) and data is not None and not Path(data).exists()
    with _ledger_if(remote) as led:
        res = calibrate_runs(quick=quick, device=device, bundles=list(bundle or []),
                             data=data, code=list(code or []), led=led, progress=counting)
    if out is not None:
        atomic_write(out, (json.dumps(res, indent=2) + "\n").encode())
    emit(res, as_json, f"honest replay error at most {res['honest_max']:.3g} over "
         f"{sum(m['segments'] for m in res['measurements'])} segment replays; implied "
         f"threshold {res['threshold']:.3g} (the old default was "
         f"{res['default_threshold']:.3g})")


@app.command(hidden=True)
def forge(honest: Annotated[Path, typer.Argument(help="An honest bundle to steal from.")],
          out: Annotated[Path, typer.Argument(help="Where to write the forgery.")],
          how: Annotated[str, typer.Option("--how", help="interpolate, zero-lr or copy.")]
          = "interpolate", as_json: JsonOpt = False) -> None:
    """Forge a proof for someone else's model (demo and tests only).

    Example: mltrail pol forge proof forged --how interpolate
    """
    from mltrail.testing.pol_forgeries import forge_named

    man = forge_named(honest, out, how, STATE.identity or "forger")
    emit({"bundle": str(out), "final_model": man.final_model}, as_json,
         f"forged proof ({how}) in {out} claiming {man.final_model}")
