"""The verifier's side of every proof (a loop spec: ``pol train``'s and a user loop's):
every check, and the replay of an exported proof, in this process; a trusted-code
proof's replay in a child.

Owns :func:`verify_loop`, called by :func:`mltrail.pol.verifier.verify_bundle` for every
manifest (:class:`~mltrail.pol.loopspec.LoopSpec`). In this process it
checks everything that needs none of the prover's code: bounds, hash chain and layout,
hyperparameters (optimizer and scheduler classes of ``torch.optim``, rates and the
schedule's trajectory on dummy parameters), the data against its commitment (a mismatch
is the verifier's input error), the exported programs (:func:`programs`) or, in
trusted-code mode, the source digest of every pinned module (found on ``code_paths``
*without importing it*), anchors, the final model, and the ledger origin of the init
seed. An exported proof is then replayed here (:func:`mltrail.pol.loopreplay.verify_job`,
no code of the prover's). A trusted-code proof, only when the verifier asks for it, is
replayed in a separate Python process
(``python -I -m mltrail.pol.loopreplay``: isolated mode, an empty working folder, an
environment without mltrail passwords or anything named like a secret) which imports the
pinned code after checking its digests again and replays the challenged segments. It
never imports the prover's code itself and never touches the ledger except to read
anchors.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mltrail.errors import InputError, MltrailError
from mltrail.pol import checks, environment
from mltrail.pol.bundle import Manifest
from mltrail.pol.limits import MAX_SAMPLES, MAX_TOTAL_STEPS
from mltrail.pol.loopspec import FolderData, LoopSpec, LossSpec, TensorData, source_digest
from mltrail.pol.report import Check, CurvePoint, Report, Segment
from mltrail.provenance.digest import digest_state_dict

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger

SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")
LoopDataArg = Any  # a path, a mapping of tensors, an (x, y) pair or a tensor dataset


def bounds(man: Manifest, spec: LoopSpec) -> Check:
    if spec.n_samples > MAX_SAMPLES:
        return Check(name="bounds", ok=False, detail=f"n {spec.n_samples:,} exceeds "
                                                     f"{MAX_SAMPLES:,}")
    if spec.total_steps > MAX_TOTAL_STEPS or man.header.k > MAX_TOTAL_STEPS:
        return Check(name="bounds", ok=False, detail=f"{spec.epochs:,} epochs of "
                     f"{spec.steps_per_epoch:,} steps (k={man.header.k:,}) exceed "
                     f"{MAX_TOTAL_STEPS:,} steps")
    return Check(name="bounds", ok=True, detail=f"{spec.total_steps:,} steps within the "
                                                "verifier's limits")


def hyperparameters(spec: LoopSpec) -> Check:
    """Optimizer and scheduler are torch's own classes, rates plausible, and the
    schedule (run on dummy parameters) keeps every group's rate positive and finite."""
    from mltrail.pol.loopreplay import advance

    problems = []
    for n, g in enumerate(spec.optimizer.groups):
        o = g.options
        lr = o.get("lr")
        if not isinstance(lr, int | float) or not math.isfinite(lr) or not 0 < lr <= 10:
            problems.append(f"group {n}: learning rate {lr!r} is implausible")
        for key in ("momentum", "weight_decay", "dampening"):
            v = o.get(key, 0.0)
            if not isinstance(v, int | float) or not 0.0 <= v < 1.0:
                problems.append(f"group {n}: {key} must be in [0, 1)")
        betas = o.get("betas", [0.5, 0.5])
        if not (isinstance(betas, list) and all(isinstance(b, int | float) and 0 <= b < 1
                                                 for b in betas)):
            problems.append(f"group {n}: betas must be in [0, 1)")
        if o.get("maximize"):
            problems.append(f"group {n}: maximize=True is not learning")
    if problems:
        return Check(name="hyperparameters", ok=False, detail="; ".join(problems))
    try:
        opt, sched = _dummy(spec)
        low = min(g["lr"] for g in opt.param_groups)
        if sched is not None:
            positions = spec.total_steps if spec.scheduler is None or \
                spec.scheduler.every == "step" else spec.epochs
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(positions - 1):
                    advance(sched, 1)
                    low = min(low, *(float(g["lr"]) for g in opt.param_groups))
    except (MltrailError, RuntimeError, TypeError, ValueError, ZeroDivisionError) as exc:
        return Check(name="hyperparameters", ok=False,
                     detail=f"cannot be built: {str(exc).splitlines()[0][:200]}")
    if not math.isfinite(low) or low <= 0:
        return Check(name="hyperparameters", ok=False,
                     detail=f"the schedule drives a learning rate to {low:g}")
    return Check(name="hyperparameters", ok=True,
                 detail=f"{spec.optimizer.name} with {len(spec.optimizer.groups)} parameter "
                        f"groups, scheduler {spec.scheduler.name if spec.scheduler else 'none'}"
                        f", lowest rate {low:.3g}")


def _dummy(spec: LoopSpec) -> tuple[torch.optim.Optimizer, Any]:
    """The spec's optimizer and scheduler over one-element stand-ins for its parameters
    (the schedule depends on nothing else)."""
    from mltrail.pol.loopreplay import build_optimizer, build_scheduler

    dummy = torch.nn.Module()
    for n, g in enumerate(spec.optimizer.groups):
        for i, _ in enumerate(g.params):
            dummy.register_parameter(f"p{n}_{i}", torch.nn.Parameter(torch.zeros(1)))
    renamed = spec.model_copy(update={"optimizer": spec.optimizer.model_copy(update={
        "groups": [g.model_copy(update={"params": [f"p{n}_{i}" for i in range(len(g.params))]})
                   for n, g in enumerate(spec.optimizer.groups)]})})
    opt = build_optimizer(renamed, dummy)
    return opt, build_scheduler(renamed, opt)


def scheduler_states(folder: Path, man: Manifest, spec: LoopSpec) -> Check:
    """Each checkpoint's scheduler state is what the declared scheduler gives at that
    step (recomputed here, on stand-in parameters, without the prover's code)."""
    from mltrail.pol.bundle import bundle_path
    from mltrail.pol.loop import scheduler_state
    from mltrail.pol.loopreplay import advance, scheduler_position

    if spec.scheduler is None:
        if any("sched" in c.files for c in man.checkpoints()):
            return Check(name="scheduler", ok=False,
                         detail="checkpoints hold scheduler state but no scheduler is declared")
        return Check(name="scheduler", ok=True, detail="no scheduler declared")
    try:
        _, sched = _dummy(spec)
    except MltrailError as exc:
        return Check(name="scheduler", ok=False, detail=exc.message)
    pos = 0
    for c in man.checkpoints():
        if "sched" not in c.files:
            return Check(name="scheduler", ok=False,
                         detail=f"the checkpoint at step {c.step} has no scheduler state")
        want = scheduler_position(spec, c.step, at_checkpoint=True)
        advance(sched, want - pos)
        pos = want
        try:
            recorded = json.loads(bundle_path(folder, c.files["sched"]).read_bytes())
        except (ValueError, UnicodeDecodeError):
            recorded = None
        if recorded != json.loads(json.dumps(scheduler_state(sched))):
            return Check(name="scheduler", ok=False,
                         detail=f"the scheduler state at step {c.step} is not what "
                                f"{spec.scheduler.name} gives")
    return Check(name="scheduler", ok=True,
                 detail=f"{len(man.checkpoints())} scheduler states are {spec.scheduler.name} "
                        f"stepped every {spec.scheduler.every}")


def materialise(spec: LoopSpec, data: LoopDataArg, tmp: Path) -> tuple[Check, str | None]:
    """Check the verifier's data against the commitment; returns where the replay reads
    it (a safetensors file written into ``tmp``, or the data folder). Data that are not
    the committed bytes are the verifier's input error (:class:`InputError`, exit 2),
    never a verdict about the proof."""
    from mltrail.pol.loopdata import check_tensors, folder_digest, load_tensors_file, tensors_of

    committed = spec.data
    if isinstance(committed, FolderData):
        if not isinstance(data, str | Path) or not Path(data).is_dir():
            raise InputError("the proof's data is a folder of files: give that folder")
        digest, n = folder_digest(Path(data))
        if digest != committed.digest:
            raise InputError(f"the data folder {digest[:19]}… is not the committed "
                             f"{committed.digest[:19]}… (the verifier's data: nothing judged)")
        return Check(name="data", ok=True, detail=f"{n} files match {digest[:19]}…"), \
            str(data)
    assert isinstance(committed, TensorData)
    if isinstance(data, str | Path):
        tensors = load_tensors_file(data)
    elif isinstance(data, Mapping):
        tensors = {str(k): v for k, v in data.items()}
    elif isinstance(data, tuple) and len(data) == 2:
        tensors = {"x": data[0], "y": data[1]}
    else:
        found = tensors_of(data)
        if found is None:
            raise InputError("give the proof's data as a file, a folder, a mapping of "
                             "tensors or a tensor dataset")
        tensors = found
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    why = check_tensors(committed, tensors)
    if why:
        raise InputError(f"{why} (the verifier's data: nothing judged)")
    path = tmp / "data.safetensors"
    from mltrail.provenance.digest import save_state_dict

    save_state_dict(tensors, path)
    return Check(name="data", ok=True, detail=f"{committed.n} samples of "
                 f"{', '.join(committed.names)} match {digest_state_dict(tensors)[:19]}…"), \
        str(path)


def code_digests(spec: LoopSpec, paths: Sequence[str]) -> Check:
    """Every pinned module's source, found without importing it, has its digest. A module
    that cannot be found, or whose source is not the pinned one, is the verifier's input
    error (:class:`InputError`, exit 2: give the pinned code with ``--code``), never a
    verdict about the proof; nothing of it runs."""
    for ref in spec.refs():
        got = source_digest(ref.module, list(paths))
        if got != ref.source:  # the verifier's copy of the code: refused, never judged
            raise InputError(f"the source of {ref.module} does not match the digest pinned "
                             f"in the proof ({got[:19]}… found, {ref.source[:19]}… pinned): "
                             "refusing to run it; give the prover's pinned code")
    return Check(name="code", ok=True,
                 detail=f"{len(spec.refs())} pinned modules match their digests "
                        f"({', '.join(sorted({r.module for r in spec.refs()}))})")


def file_digests(folder: Path, man: Manifest) -> Check:
    """Every file the records name is inside the bundle and has its digest, checked
    before any of the prover's code runs (sizes bounded by the manifest limit each)."""
    from mltrail.errors import VerificationError
    from mltrail.pol.bundle import bundle_path
    from mltrail.pol.limits import MAX_PARAMS
    from mltrail.provenance.digest import digest_file

    limit = 16 * MAX_PARAMS + (1 << 20)
    n = 0
    try:
        for rec in man.records:
            if set(rec.files) != set(rec.digests):
                raise VerificationError(f"record {rec.seq} names files without digests")
            for role, rel in rec.files.items():
                path = bundle_path(folder, rel)
                if path.stat().st_size > limit:
                    raise VerificationError(f"bundle file {rel} is larger than any model")
                if digest_file(path) != rec.digests[role]:
                    raise VerificationError(f"bundle file {rel} does not match its digest in "
                                            "the manifest")
                n += 1
    except VerificationError as exc:
        return Check(name="files", ok=False, detail=exc.message)
    return Check(name="files", ok=True, detail=f"{n} files inside the bundle match their "
                                               "digests")


def programs(folder: Path, spec: LoopSpec) -> Check:
    """Every exported program is in the bundle with its digest and holds nothing but what
    a traced model needs (:func:`mltrail.pol.loopexport.check_program_json`)."""
    from mltrail.errors import VerificationError
    from mltrail.pol.loopexport import check_program_json, vocabulary_loss
    from mltrail.pol.loopprogram import _constants, _read

    assert spec.program is not None
    files = [f for f in (spec.program.model, spec.program.loss, spec.program.transform) if f]
    try:
        for pf in files:
            check_program_json(_read(folder, pf))
            _constants(folder, pf)
        if isinstance(spec.loss, LossSpec):
            vocabulary_loss(spec.loss.name, spec.loss.kwargs)
        elif spec.program.loss is None:
            raise VerificationError("the proof names no loss")
    except (VerificationError, InputError) as exc:
        return Check(name="program", ok=False, detail=exc.message.removeprefix("program: "))
    loss = f"loss {spec.loss.name}" if isinstance(spec.loss, LossSpec) else "an exported loss"
    return Check(name="program", ok=True,
                 detail=f"{len(files)} exported programs (torch {spec.program.torch}) call "
                        f"aten operators only; {loss}; no Python of the prover's runs")


def child_env(emulated: str | None = None) -> dict[str, str]:
    """The replay process's environment: the caller's, minus mltrail's and anything that
    looks like a secret; with ``emulated``, in that CPU capability
    (:func:`mltrail.pol.environment.emulation`)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MLTRAIL") and not any(w in k.upper() for w in SECRET_WORDS)}
    if emulated:
        env["ATEN_CPU_CAPABILITY"] = emulated
    return env


def run_child(job: dict[str, Any], tmp: Path, timeout: float | None = None,
              on_segment: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run :mod:`mltrail.pol.loopreplay` on ``job`` in a separate, isolated process (in
    the CPU capability ``job["emulated"]`` names: the whole child runs in it).
    ``on_segment`` sees each segment the child reports as it finishes (for display: the
    result is read from the child's result file once it exits)."""
    emulated = job.get("emulated")
    lines = tmp / "segments.jsonl"
    job = {**job, "result": str(tmp / "result.json"), "emulated": None,
           "segments_file": str(lines)}
    job_file = tmp / "job.json"
    job_file.write_text(json.dumps(job))
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    with open(tmp / "stderr.txt", "w+") as err:
        proc = subprocess.Popen([sys.executable, "-I", "-m", "mltrail.pol.loopreplay",
                                 str(job_file)], cwd=work, env=child_env(emulated),
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
        seen = 0
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)
            seen = _stream(lines, seen, on_segment)
            if proc.returncode is not None:
                break
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                proc.wait()  # the verifier's own limit: never a verdict
                return {"input_error": True, "error": f"the replay process ran past "
                        f"--timeout {timeout:g} s: nothing judged; give it longer"}
        err.seek(0)
        stderr = err.read()
    result = tmp / "result.json"
    if not result.is_file():
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the replay process died (exit {proc.returncode}): {last[:300]}"}
    loaded: dict[str, Any] = json.loads(result.read_text())
    return loaded


def _stream(lines: Path, seen: int, on_segment: Callable[[dict[str, Any]], None] | None
            ) -> int:
    """Pass the complete lines the child appended after byte ``seen``; the new offset."""
    if on_segment is None or not lines.is_file():
        return seen
    with open(lines, "rb") as f:
        f.seek(seen)
        chunk = f.read()
    done = chunk.rfind(b"\n") + 1
    for raw in chunk[:done].splitlines():
        try:
            on_segment(json.loads(raw))
        except (ValueError, TypeError):
            continue  # not a segment (the prover's code may write there too): display only
    return seen + done


def verify_loop(folder: Path, man: Manifest, data: LoopDataArg, rep: Report, *, q: int,
                r: int | None, miss_rate: float, forged: float, threshold: float,
                code_paths: Sequence[str] = (), ledger: Ledger | None = None,
                expected_model: str | None = None, device: str = "cpu",
                timeout: float | None = None,
                progress: Callable[[int], None] | None = None,
                trusted_code: bool = False,
                on_segment: Callable[[Segment], None] | None = None,
                on_plan: Callable[[int], None] | None = None) -> None:
    """Fill ``rep`` for a loop proof (see the module doc). Stops at the first failure.

    An exported proof is replayed in this process from its programs; a proof recorded in
    trusted-code mode is replayed only when ``trusted_code`` is True (else
    :class:`InputError`: running the prover's Python is the verifier's explicit choice)."""
    spec = man.header.training
    assert isinstance(spec, LoopSpec)
    paths = [str(Path(p).resolve()) for p in code_paths]
    if spec.trusted_code and not trusted_code:
        raise InputError("this proof was recorded in trusted-code mode: replaying it runs the "
                         "prover's Python. Read the pinned code, then pass --trusted-code "
                         "(Python: trusted_code=True); such a proof is never moved to "
                         "verified without --accept-trusted-code")
    rep.trusted_code = spec.trusted_code

    run = rep.run

    rep.data_digest = spec.data.digest
    with tempfile.TemporaryDirectory(prefix="mltrail-replay-") as tmp_name:
        tmp = Path(tmp_name)
        where: list[str | None] = [None]

        def data_check() -> Check:
            c, where[0] = materialise(spec, data, tmp)
            return c

        last = (lambda: code_digests(spec, paths)) if spec.trusted_code else \
            (lambda: programs(folder, spec))
        ok = run(lambda: bounds(man, spec), lambda: checks.chain(man),
                 lambda: checks.schedule(man), lambda: hyperparameters(spec), data_check,
                 last)
        if ok:
            anchor_check, rep.anchors = checks.anchors(man, ledger)
            ok = run(lambda: anchor_check, lambda: checks.final(man, expected_model),
                     lambda: file_digests(folder, man),
                     lambda: scheduler_states(folder, man, spec))
        if not ok:
            return
        job = {"bundle": str(folder.resolve()), "data": where[0], "code_paths": paths,
               "q": q, "r": r, "miss_rate": miss_rate, "forged": forged,
               "threshold": threshold, "seed": rep.verifier_seed,
               "prior": len(set(rep.prior_rejections) | set(rep.publications)),
               "device": device,
               "threads": torch.get_num_threads(),
               "emulated": environment.emulation(man.header.env, device)}
        def seen(seg: dict[str, Any]) -> None:  # as each finishes (parallel: any order)
            if set(seg) == {"planned"}:  # how many the challenge drew, before the first
                if on_plan is not None:
                    on_plan(int(seg["planned"]))
                return
            if on_segment is not None:
                on_segment(Segment(**seg))
            if progress is not None:
                progress(1)

        if spec.trusted_code:  # the child's lines are shown; its result file decides
            result = run_child(job, tmp, timeout, on_segment=seen)
            if result.get("input_error"):
                raise InputError(str(result["error"]))
        else:  # no code of the prover's: replayed here, from tensors and programs
            from mltrail.pol.loopreplay import verify_job

            try:
                result = verify_job(job, seen)
            except InputError:
                raise  # its workers, data or device (as the child's input_error): exit 2
            except MltrailError as exc:
                result = {"error": exc.message}
    if "error" in result:
        run(lambda: Check(name="replay", ok=False,
                          detail=f"the replay failed: {result['error']}"))
        return
    rep.curve = curve_of(result)
    for c in result["checks"]:
        params = c.pop("params", None)
        if c["name"] == "init" and c["ok"] and man.header.init.origin is not None:
            c, origin = ledger_origin(man, params or [], ledger), "ledger"
            if not c.ok:
                run(_const(c))
                return
            if not c.detail.startswith("every"):
                origin = "seed"
            result["init_origin"] = origin
            c = c.model_dump()
        if not run(_const(Check(**c))):
            return
    rep.init_origin = result.get("init_origin")
    rep.r_rule = result.get("rule", {})
    rep.r = int(rep.r_rule.get("r", 0))
    rep.reasons += result.get("reasons", [])
    rep.segments = [Segment(**s) for s in result["segments"]]
    how = "in a separate process (trusted code)" if spec.trusted_code else \
        "from the exported programs"
    run(lambda: rep.replay_check(f"{len(rep.segments)} segments replayed {how}, max error "
                                 f"{rep.max_error:.3g} <= {threshold:.3g}"))


def curve_of(result: Mapping[str, Any]) -> list[CurvePoint]:
    """The replay's training curve (computed by the verifier's replay, never read from the
    bundle); a malformed answer of a trusted-code child gives no curve."""
    from pydantic import ValidationError

    from mltrail.pol.curve import MAX_POINTS

    try:
        return [CurvePoint.model_validate({**p, "source": "verifier"})
                for p in list(result.get("curve") or [])[:MAX_POINTS]]
    except (ValidationError, TypeError):
        return []


def ledger_origin(man: Manifest, params: list[list[Any]], ledger: Ledger | None) -> Check:
    """The init seed of an exported loop proof is the one its start anchor's block fixes:
    the anchor, by the prover, before step 0, binds the data, the prover, the parameters'
    names and shapes and the scheme (:func:`mltrail.pol.loop.ledger_init`)."""
    from mltrail.pol.challenge import init_seed_from, start_root
    from mltrail.pol.checks import find_anchor
    from mltrail.pol.loop import loop_arch

    h, ic = man.header, man.header.init
    o = ic.origin
    assert o is not None
    root = start_root(h.data.digest, h.prover, 0, loop_arch((n, s) for n, s in params),
                      ic.scheme)
    if o.root != root.hex():
        return Check(name="init", ok=False, detail="the start anchor's root does not bind this "
                     "proof's data, prover and parameters")
    if ledger is None:
        return Check(name="init", ok=True, detail=f"parameters are exactly {ic.scheme} from "
                     f"seed {ic.seed}, said to come from block {o.block} (not checked: no "
                     "ledger)")
    ev = find_anchor(ledger, o.artefact_id, root, 0, None, actor=h.prover, block=o.block)
    blocks = list(ledger.backend.blocks(o.block, o.block)) if ev is not None else []
    if ev is None or ev["block"] != o.block or not blocks or not blocks[0].hash_ok:
        return Check(name="init", ok=False, detail=f"no start anchor by the prover at block "
                     f"{o.block} on {o.artefact_id[:10]}…: the init seed is not the ledger's")
    if init_seed_from(blocks[0].hash, root) != ic.seed:
        return Check(name="init", ok=False,
                     detail=f"the init seed is not the one block {o.block} fixes")
    return Check(name="init", ok=True, detail=f"every parameter at step 0 is exactly "
                 f"{ic.scheme} from the seed block {o.block} fixed (the prover's start "
                 "anchor, before step 0)")


def _const(check: Check) -> Callable[[], Check]:
    return lambda: check


def measure_loop(bundle: str | Path, data: LoopDataArg, *, code_paths: Sequence[str] = (),
                 threads: int = 1, dtype: str = "float32", device: str = "cpu"
                 ) -> list[tuple[float, float]]:
    """(weights, optimizer state) errors of every segment of a loop proof replayed (in a
    separate process) with ``threads`` threads in ``dtype`` on ``device``."""
    from mltrail.pol.bundle import read_manifest

    man = read_manifest(bundle)
    spec = man.header.training
    if not isinstance(spec, LoopSpec):
        raise InputError(f"{bundle} is not a proof of a user loop")
    with tempfile.TemporaryDirectory(prefix="mltrail-calibrate-") as tmp_name:
        tmp = Path(tmp_name)
        c, where = materialise(spec, data, tmp)
        if not c.ok:
            raise InputError(c.detail)
        job = {"mode": "calibrate", "bundle": str(Path(bundle).resolve()),
               "data": where, "code_paths": [str(Path(p).resolve()) for p in code_paths],
               "threads": threads, "dtype": dtype, "device": device}
        if spec.trusted_code:
            result = run_child(job, tmp)
        else:  # exported: no prover code, replayed here (thread count restored)
            from mltrail.pol.loopreplay import calibrate_job

            before = torch.get_num_threads()
            try:
                result = calibrate_job(job)
            except MltrailError as exc:
                result = {"error": exc.message}
            finally:
                torch.set_num_threads(before)
    if "error" in result:
        raise InputError(f"calibration replay failed: {result['error']}")
    return [(float(a), float(b)) for a, b in result["errors"]]


def loop_data_location(bundle: str | Path, data: str | None, ledger: Ledger | None
                       ) -> str:
    """Where a verifier finds a loop proof's data: ``data`` when it is a file or folder;
    else (with a ledger) the file or folder that the dataset artefact ``data`` names — or,
    with no ``data``, the artefact registered with the proof's data digest — when it
    holds exactly the committed bytes."""
    from mltrail.pol.bundle import read_manifest
    from mltrail.pol.datafile import BUILTIN
    from mltrail.pol.onchain import find_dataset, metadata
    from mltrail.pol.reftask import digits_file
    from mltrail.provenance.digest import digest_path

    if data is not None and Path(data).exists():
        return data
    if data == BUILTIN:
        return str(digits_file())
    spec = read_manifest(bundle).header.training
    if not isinstance(spec, LoopSpec):
        raise InputError(f"{bundle} is not a proof of a user loop")
    want = spec.data.digest
    if ledger is None:
        raise InputError("--data is required: the file or folder the proof's loop consumed"
                         if data is None else f"no data file or folder at {data}")
    art = ledger.artefact(data) if data is not None else find_dataset(ledger, want)
    path = metadata(ledger, art).get("path") if art is not None else None
    path = str(digits_file()) if path == BUILTIN else path
    if not path or not Path(str(path)).exists():
        raise InputError(f"no file or folder on this machine holds the proof's data "
                         f"{want[:19]}… (give --data)")
    if art is not None and art.content_digest != want and digest_path(str(path)) != want:
        raise InputError(f"dataset {art.id[:10]}… is not the data this proof committed to")
    return str(path)
