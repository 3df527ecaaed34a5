"""The Proof-of-Learning workflows the command line runs, as library calls.

Owns :func:`train_and_publish` (record the reference training into a new bundle folder,
anchored on and registered in the ledger when one is given) and :func:`verify_and_record`
(replay a bundle, pol train's or a user loop's, with the public challenge and recorded verdict
when a model artefact is named). ``mltrail.cli.pol`` is argument parsing, one call here
and printing. A failed training never leaves a partial bundle behind. This module never
prints.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrail.errors import InputError
from mltrail.pol.challenge import DEFAULT_DELAY, DEFAULT_FORGED, DEFAULT_MISS_RATE

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger
    from mltrail.pol.report import Report, Segment

ARCHS: dict[str, dict[str, Any]] = {"cnn": {"type": "cnn"}, "mlp": {"type": "mlp"},
                                    "resnet20": {"type": "resnet", "depth": 20}}
Progress = Callable[[int | None], AbstractContextManager[Callable[[int], None]]]


def parse_arch(spec: str) -> dict[str, Any]:
    """A built-in architecture name (cnn, mlp, resnet20) or a JSON spec object."""
    if spec in ARCHS:
        return dict(ARCHS[spec])
    try:
        arch = json.loads(spec)
    except ValueError:
        raise InputError(f"--arch must be one of {', '.join(ARCHS)} or a JSON spec") from None
    if not isinstance(arch, dict):
        raise InputError("--arch JSON must be an object")
    return arch


def parse_secret(text: str | None) -> bytes | None:
    """A verifier secret: hex, 'random' (also the default, ``None``) for 32 fresh bytes,
    or 'none' for the public challenge alone (which a prover can grind: pol-format.md)."""
    if text == "none":
        return None
    if text is None or text == "random":
        import secrets

        return secrets.token_bytes(32)
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise InputError("--secret must be hex or 'random'") from None
    if not raw:
        raise InputError("--secret must not be empty")
    return raw


@dataclass(frozen=True)
class TrainRequest:
    """The options of ``mltrail pol train``."""

    out: Path
    data: str = "digits"
    arch: str = "cnn"
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    schedule: str = "constant"
    epochs: int = 3
    batch_size: int = 32
    k: int = 10
    seed: int = 0
    no_init_seed: bool = False
    name: str = "pol-model"


def _register_data(led: Ledger, req: TrainRequest, digest: str) -> str:
    from mltrail.pol.onchain import find_dataset

    ds = find_dataset(led, digest)
    if ds is not None:
        return ds.id
    reg = led.register(led.lifecycle.bound_kind("pol", "data_kind"), digest,
                       metadata={"name": f"{req.name}-data", "path": str(req.data)})
    return reg.artefact_id


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def train_and_publish(req: TrainRequest, led: Ledger | None,
                      progress: Progress, status: Callable[[str], None] | None = None
                      ) -> dict[str, Any]:
    """Train the reference task, a loop spec (:mod:`mltrail.pol.reftask`), into
    ``req.out``; with a ledger, anchor the epochs on the dataset artefact (registered if
    new), fix the init seed on chain unless ``no_init_seed``, and register the model.
    Returns what the CLI prints. ``status`` gets a line per step: step, loss, the last
    epoch's accuracy, proof size."""
    from mltrail.pol.datafile import load_data
    from mltrail.pol.loopdata import ArrayDataset, commit
    from mltrail.pol.reftask import record_reference

    out = req.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not empty; choose a new folder")
    arch = parse_arch(req.arch)
    x, y = load_data(req.data)
    opt: dict[str, Any] = ({"name": "sgd", "lr": req.lr, "momentum": req.momentum}
                           if req.optimizer == "sgd" else {"name": req.optimizer, "lr": req.lr})
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        anchor, dataset_id = None, None
        ledger_args: dict[str, Any] | None = {} if req.no_init_seed else None
        if led is not None:
            from mltrail.pol.loop import ledger_init
            from mltrail.pol.onchain import ledger_anchor
            from mltrail.reference import build_model

            data = ArrayDataset.of({"x": x, "y": y})
            dataset_id = _register_data(led, req, commit(data, pin_transform=False)[0].digest)
            anchor = ledger_anchor(led, dataset_id)
            if not req.no_init_seed:
                ledger_args = ledger_init(led, dataset_id, build_model(arch), data)
        steps = -(-len(y) // req.batch_size) * req.epochs
        shown: dict[str, Any] = {"acc": "-", "size": 0}

        def on_loss(step: int, loss: float, acc: float | None) -> None:
            if status is None:
                return
            if acc is not None:
                shown["acc"] = f"{acc:.1%}"
            if (step + 1) % req.k == 0 or acc is not None:
                shown["size"] = _folder_bytes(stage)
            status(f"step {step + 1}/{steps}  loss {loss:.4f}  accuracy {shown['acc']}  "
                   f"proof {int(shown['size']) / 1024:,.0f} KiB")

        with progress(steps) as advance:
            man = record_reference(stage, x, y, arch=arch, optimizer=opt,
                                   schedule=req.schedule, epochs=req.epochs,
                                   batch_size=req.batch_size, k=req.k, seed=req.seed,
                                   ledger_args=ledger_args, anchor=anchor,
                                   on_step=lambda _s: advance(1),
                                   on_loss=on_loss if status is not None else None)
        origin = ledger_args["init_origin"] if ledger_args else None
        if out.exists():
            out.rmdir()
        stage.rename(out)
        result: dict[str, Any] = {
            "bundle": str(out), "final_model": man.final_model, "steps": steps,
            "checkpoints": len(man.checkpoints()), "header_digest": man.header_digest,
            "anchors": [a.model_dump() for a in man.anchors], "dataset_id": dataset_id,
            "init_seed_block": origin.block if origin else None}
        if led is not None:
            from mltrail.pol.onchain import publish_model

            result.update(publish_model(led, out, name=req.name, parents=[dataset_id or ""]))
        return result
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def load_calibration(path: Path | None) -> list[dict[str, Any]]:
    """The ``pairs`` of a ``mltrail pol calibrate --out`` file (none without a file)."""
    if path is None:
        return []
    try:
        doc = json.loads(Path(path).read_bytes()[: 16 << 20])
    except (OSError, ValueError):
        raise InputError(f"--calibration {path}: not a readable calibration file") from None
    pairs = doc.get("pairs") if isinstance(doc, dict) else None
    if not isinstance(pairs, list) or not all(isinstance(p, dict) for p in pairs):
        raise InputError(f"--calibration {path}: no 'pairs' list (write it with "
                         "'mltrail pol calibrate --out')")
    return pairs


@dataclass(frozen=True)
class VerifyRequest:
    """The options of ``mltrail pol verify``."""

    bundle: Path | None = None
    data: str | None = None
    q: int = 1
    random_r: int | None = None
    miss_rate: float = DEFAULT_MISS_RATE
    forged: float = DEFAULT_FORGED
    threshold: float | None = None
    model: str | None = None
    record: bool = True
    delay: int = DEFAULT_DELAY
    secret: str | None = None
    allow_unseeded: bool = False
    trusted_code: bool = False
    accept_trusted_code: bool = False
    seed: int | None = None
    device: str = "cpu"
    code: list[Path] = field(default_factory=list)
    timeout: float | None = None
    calibration: Path | None = None
    report: Path | None = None
    html: Path | None = None
    workers: int = 1  # segments replayed at once (mltrail.pol.parallel)
    ray: str | None = None  # on this Ray cluster ("local": one started here)


def verify_and_record(req: VerifyRequest, led: Ledger | None, progress: Progress,
                      on_segment: Callable[[Segment], None] | None = None,
                      on_plan: Callable[[int], None] | None = None
                      ) -> tuple[Report, dict[str, Any]]:
    """Replay ``req.bundle`` (or the bundle ``req.model`` names); with a model artefact,
    take the public challenge from the ledger and record the verdict. Returns the report
    and what the CLI prints."""
    from mltrail.pol.bundle import read_manifest
    from mltrail.pol.parallel import check_workers, workers
    from mltrail.pol.verifier import verify_bundle

    check_workers(req.workers, req.ray)  # bad input refused before anything is read
    if req.bundle is None and req.model is None:
        raise InputError("give a BUNDLE folder or --model ID")
    if req.data is None and req.model is None:
        raise InputError("--data is required: the training data the proof commits to (a "
                         "data file, or 'digits' for the reference task)")
    bundle, model, expected, challenge = req.bundle, req.model, None, None
    prior: list[str] = []
    others: list[str] = []
    if led is not None and model is not None:
        from mltrail.pol.onchain import bundle_for, public_challenge

        art = led.artefact(model)
        model_kind = led.lifecycle.bound_kind("pol")
        if art.kind != model_kind:
            raise InputError(f"{art.id} is a {art.kind}, not a {model_kind}")
        expected, model = art.content_digest, art.id
        bundle = bundle if bundle is not None else bundle_for(led, art.id)
        challenge, prior, others = public_challenge(led, art.id, delay=req.delay,
                                                    secret=parse_secret(req.secret))
    assert bundle is not None
    from mltrail.pol.loopverify import loop_data_location

    read_manifest(bundle)  # an unreadable or old-format proof: refused before anything runs
    given = loop_data_location(bundle, req.data, led)
    with workers(req.workers, req.ray), progress(None) as advance:
        rep = verify_bundle(bundle, given, code_paths=[str(c) for c in req.code],
                            timeout=req.timeout, q=req.q, r=req.random_r,
                            miss_rate=req.miss_rate, forged=req.forged,
                            threshold=req.threshold, seed=req.seed, challenge=challenge,
                            prior_rejections=prior, publications=others,
                            expected_model=expected, ledger=led,
                            device=req.device, progress=advance,
                            calibration=load_calibration(req.calibration),
                            on_segment=on_segment, trusted_code=req.trusted_code,
                            on_plan=on_plan)
    if req.accept_trusted_code and rep.trusted_code:
        rep.overrides.append("accept-trusted-code")  # named, in the report on the ledger
    rep.save(req.report, req.html)
    out: dict[str, Any] = rep.model_dump()
    out["report_digest"] = rep.digest()
    if led is not None and model is not None and req.record:
        from mltrail.pol.onchain import record_verdict

        out["ledger"] = record_verdict(led, model, rep, allow_unseeded=req.allow_unseeded,
                                       accept_trusted_code=req.accept_trusted_code)
        out["model"] = model
    return rep, out


def calibrate_runs(*, quick: bool, device: str | None, bundles: list[Path],
                   data: str | None, code: list[Path], led: Ledger | None,
                   progress: Progress) -> dict[str, Any]:
    """``pol calibrate``: honest replay noise on the reference task (``quick``: one short
    run) or, with ``bundles``, on proofs of the user's own loop (their ``data``, and the
    ``code`` folders of trusted-code proofs). ``progress(total)`` counts the replays."""
    from mltrail.pol.calibration import calibrate, calibrate_loop, reference_runs
    from mltrail.pol.datafile import load_data
    from mltrail.pol.environment import check_device

    if device is not None:
        check_device(device)
    modes = 2 + (1 if device else 0)
    if bundles:
        from mltrail.pol.loopverify import loop_data_location

        where = loop_data_location(bundles[0], data, led)
        with progress(len(bundles) * modes) as advance:
            return calibrate_loop(bundles, where, code_paths=[str(c) for c in code],
                                  device=device, progress=advance)
    runs = reference_runs(1)[:2] if quick else reference_runs()
    with progress(len(runs) * modes) as advance:
        return calibrate(load_data("digits"), runs, device=device, progress=advance)
