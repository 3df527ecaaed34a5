"""Replaying a user loop's proof: from its exported programs, or (trusted-code mode) the
prover's code in a separate process.

Owns :func:`import_ref` (import a pinned callable, its source digest checked before and
after the import), :func:`make_code` (the model, loss and transform of a proof: its
programs, :class:`~mltrail.pol.loopprogram.ProgramCode`, or the imported :class:`Code`),
the rebuilding of optimizer, scheduler and dataset from a
:class:`~mltrail.pol.loopspec.LoopSpec`, the replayed step (:func:`run_steps`), and the
replay side of verification (:func:`verify_job`, :func:`calibrate_job`): file checks,
the init check, the challenge plan and the replay of the chosen segments. For an exported
proof the verifier calls them in its own process; in trusted-code mode they run in
``python -I -m mltrail.pol.loopreplay JOB``, started by :mod:`mltrail.pol.loopverify`.
This module never touches the ledger and never decides the verdict.
"""

from __future__ import annotations

import importlib
import json
import math
import random
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import default_collate

from mltrail.errors import InputError, MltrailError, VerificationError
from mltrail.pol.loopspec import CodeRef, FolderData, LoopSpec, TensorData, find_source
from mltrail.pol.shards import accumulate, split
from mltrail.provenance.digest import digest_bytes, digest_file, digest_state_dict

State = dict[str, torch.Tensor]


# --------------------------------------------------------------------------- code


def import_ref(ref: CodeRef, paths: Sequence[str]) -> Any:
    """The object ``ref`` names, imported only if its module's source has the pinned
    digest (checked on the file found before importing, and on the file imported)."""
    for p in paths:  # appended: a --code folder never shadows an installed module
        if p not in sys.path:
            sys.path.append(p)
    found = find_source(ref.module, list(paths))
    if digest_file(found) != ref.source:
        raise VerificationError(f"the source of {ref.module} ({found.name}) does not match "
                                "the digest pinned in the proof")
    try:
        mod = importlib.import_module(ref.module)
    except Exception as exc:  # the prover's code: anything can go wrong
        raise VerificationError(f"importing {ref.module} failed: "
                                f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
    file = getattr(mod, "__file__", None)
    if not file or digest_file(file) != ref.source:
        raise VerificationError(f"{ref.module} was imported from another file than the "
                                "pinned source")
    obj: Any = mod
    for part in ref.attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise VerificationError(f"{ref.ref} does not exist")
    return obj


class Code:
    """Every callable of a spec, imported once (digests checked)."""

    def __init__(self, spec: LoopSpec, paths: Sequence[str], fresh: bool = False) -> None:
        if fresh:  # forget module-level state the prover's code kept (counters, caches)
            for ref in spec.refs():
                sys.modules.pop(ref.module, None)
        if not isinstance(spec.model, CodeRef) or not isinstance(spec.loss, CodeRef):
            raise VerificationError("a trusted-code proof names its model factory and loss")
        self.factory: Callable[..., nn.Module] = import_ref(spec.model, paths)
        self.loss: Callable[..., torch.Tensor] = import_ref(spec.loss, paths)
        self.kwargs = spec.model.kwargs
        self.transform: Callable[[torch.Tensor], torch.Tensor] | None = (
            import_ref(spec.transform, paths) if spec.transform else None)
        self.load: Callable[[Path], Any] | None = (
            import_ref(spec.data.load, paths) if isinstance(spec.data, FolderData) else None)
        for c in spec.code:
            import_ref(c, paths)
        self.spec = spec

    def model(self) -> nn.Module:
        return self.factory(**self.kwargs)


def make_code(spec: LoopSpec, folder: Path, man: Any, paths: Sequence[str],
              fresh: bool = False) -> Any:
    """The proof's model, loss and transform: from its exported programs (no Python of
    the prover's; the weights of checkpoint 0 fix the parameter names), or in
    trusted-code mode by importing the pinned code (:class:`Code`)."""
    if spec.program is None:
        return Code(spec, paths, fresh)
    from mltrail.pol.bundle import load_tensors
    from mltrail.pol.limits import MAX_PARAMS
    from mltrail.pol.loopprogram import ProgramCode

    c0 = man.checkpoints()[0]
    if "model" not in c0.files or "model" not in c0.digests:
        raise VerificationError("checkpoint 0 names no model file")
    state = load_tensors(folder, c0.files["model"], c0.digests["model"], None,
                         8 * MAX_PARAMS + (1 << 20))
    return ProgramCode(spec, folder, state)


# --------------------------------------------------------------------------- rebuilding


def build_optimizer(spec: LoopSpec, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer with exactly the manifest's groups and hyperparameters (step 0)."""
    cls = getattr(torch.optim, spec.optimizer.name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise InputError(f"torch.optim has no optimizer {spec.optimizer.name!r}")
    params = dict(model.named_parameters())
    groups: list[dict[str, Any]] = []
    for g in spec.optimizer.groups:
        missing = [n for n in g.params if n not in params]
        if missing:
            raise InputError(f"the optimizer names parameters the model lacks: {missing[:3]}")
        opts = dict(g.options)
        if isinstance(opts.get("betas"), list):
            opts["betas"] = tuple(opts["betas"])
        groups.append({"params": [params[n] for n in g.params], **opts})
    try:
        make = cast(Callable[..., torch.optim.Optimizer], cls)
        return make(groups)
    except (TypeError, ValueError, KeyError) as exc:
        raise InputError(f"{spec.optimizer.name} cannot be built from the manifest: {exc}"
                         ) from exc


def build_scheduler(spec: LoopSpec, opt: torch.optim.Optimizer) -> Any:
    """The scheduler at step 0, or None."""
    if spec.scheduler is None:
        return None
    from torch.optim import lr_scheduler

    cls = getattr(lr_scheduler, spec.scheduler.name, None)
    if not isinstance(cls, type) or not issubclass(cls, lr_scheduler.LRScheduler):
        raise InputError(f"torch.optim.lr_scheduler has no scheduler {spec.scheduler.name!r}")
    try:
        return cls(opt, **spec.scheduler.kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        raise InputError(f"{spec.scheduler.name} cannot be built from the manifest: {exc}"
                         ) from exc


def scheduler_position(spec: LoopSpec, step: int, *, at_checkpoint: bool) -> int:
    """How many times the scheduler has stepped before global step ``step`` runs (or, at a
    checkpoint taken after ``step`` steps, when the recorder saw it)."""
    if spec.scheduler is None or spec.scheduler.every == "step":
        return step
    if at_checkpoint:
        return max(step - 1, 0) // spec.steps_per_epoch
    return step // spec.steps_per_epoch


def advance(sched: Any, times: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(times):
            sched.step()


def build_dataset(spec: LoopSpec, code: Code, location: str | None,
                  tensors: Mapping[str, torch.Tensor] | None = None) -> Any:
    """The committed dataset, its bytes checked against the commitment."""
    from mltrail.pol.loopdata import (
        ArrayDataset,
        FolderDataset,
        check_tensors,
        folder_digest,
        load_tensors_file,
    )

    if isinstance(spec.data, TensorData):
        t = dict(tensors) if tensors is not None else load_tensors_file(str(location))
        why = check_tensors(spec.data, t)
        if why:
            raise VerificationError(why)
        return ArrayDataset.of({n: t[n] for n in spec.data.names}, code.transform)
    if location is None or not Path(location).is_dir():
        raise InputError("this proof's data is a folder of files: give the folder")
    digest, _ = folder_digest(Path(location))
    if digest != spec.data.digest:
        raise VerificationError(f"the data folder {digest[:19]}… is not the committed "
                                f"{spec.data.digest[:19]}…")
    fds = FolderDataset.__new__(FolderDataset)
    from mltrail.pol.loopdata import folder_files

    fds.root, fds.files, fds.load_ref = Path(location), folder_files(Path(location)), \
        spec.data.load.ref
    assert code.load is not None
    fds._load = code.load
    return fds


# --------------------------------------------------------------------------- the step


def _to(batch: Any, device: str, dtype: torch.dtype | None) -> Any:
    if isinstance(batch, torch.Tensor):
        out = batch.to(device)
        return out.to(dtype) if dtype is not None and out.is_floating_point() else out
    if isinstance(batch, list | tuple):
        return type(batch)(_to(b, device, dtype) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device, dtype) for k, v in batch.items()}
    return batch


def _backward(spec: LoopSpec, code: Code, model: nn.Module, dataset: Any,
              indices: Sequence[int], device: str, dtype: torch.dtype | None) -> None:
    """Forward and backward over the batch of ``indices`` (gradients accumulate)."""
    batch = _to(default_collate([dataset[i] for i in indices]), device, dtype)
    loss = code.loss(model(batch[0]), batch[1]) if spec.forward == "xy" else \
        code.loss(model, batch)
    loss.backward()


def run_steps(spec: LoopSpec, code: Code, dataset: Any, model: nn.Module,
              opt: torch.optim.Optimizer, sched: Any, batches: Mapping[int, list[int]],
              rng: Mapping[int, torch.Tensor], start: int, end: int, device: str = "cpu",
              dtype: torch.dtype | None = None) -> None:
    """Global steps ``start .. end-1`` exactly as the recorded loop ran them."""
    if spec.program is None:
        model.train()  # an exported program runs in the mode it was traced in (training)
    for t in range(start, end):
        if spec.rng:
            torch.set_rng_state(rng[t])
        opt.zero_grad(set_to_none=True)
        if spec.shard_size is None:
            _backward(spec, code, model, dataset, batches[t], device, dtype)
            if spec.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        else:  # data-parallel: per-shard gradients added as the coordinator adds them
            params = list(model.named_parameters())
            parts = []
            for shard in split(batches[t], spec.shard_size):
                for _, p in params:
                    p.grad = None
                _backward(spec, code, model, dataset, shard, device, dtype)
                parts.append((len(shard), {n: p.grad.detach().clone() if p.grad is not None
                                           else torch.zeros_like(p) for n, p in params}))
            accumulate(params, parts, spec.grad_clip)
        opt.step()
        if sched is not None and (spec.scheduler is None or spec.scheduler.every == "step"
                                  or (t + 1) % spec.steps_per_epoch == 0):
            advance(sched, 1)


def replay_segment(spec: LoopSpec, code: Code, dataset: Any, m0: State, o0: State,
                   batches: Mapping[int, list[int]], rng: Mapping[int, torch.Tensor],
                   start: int, end: int, device: str = "cpu",
                   dtype: torch.dtype | None = None) -> tuple[State, State]:
    """Steps ``start..end-1`` from the given states; returns the new states (CPU)."""
    from mltrail.pol.optstate import load_optimizer_tensors, optimizer_tensors

    with torch.random.fork_rng(devices=[]):
        model = code.model()
    model.load_state_dict(m0)
    model.to(device)
    if dtype is not None:
        model.to(dtype)
    opt = build_optimizer(spec, model)
    sched = build_scheduler(spec, opt)
    if sched is not None:
        advance(sched, scheduler_position(spec, start, at_checkpoint=False))
    load_optimizer_tensors(model, opt, {
        k: v.to(dtype) if dtype is not None and v.is_floating_point() and
        not k.endswith(".step") else v for k, v in o0.items()})
    run_steps(spec, code, dataset, model, opt, sched, batches, rng, start, end, device, dtype)
    return ({k: v.detach().to("cpu", m0[k].dtype) for k, v in model.state_dict().items()},
            {k: v.to(torch.float32) if v.is_floating_point() else v
             for k, v in optimizer_tensors(model, opt).items()})


# --------------------------------------------------------------------------- the child


def read_bundle(folder: Path, spec: LoopSpec, man: Any, code: Code, max_params: int
                ) -> tuple[list[tuple[State, State]], dict[int, list[int]],
                           dict[int, torch.Tensor], list[dict[str, Any] | None]]:
    """Every checkpoint (names and shapes checked before loading), the batch indices and
    RNG states per step, and each checkpoint's scheduler state."""
    from mltrail.pol.bundle import bundle_path, load_tensors

    with torch.random.fork_rng(devices=[]):
        ref = code.model()
    shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    n = sum(math.prod(s) for s in shapes.values())
    if n > max_params:
        raise VerificationError(f"the model has {n:,} values (at most {max_params:,})")
    per = {name: tuple(p.shape) for name, p in ref.named_parameters()}
    limit = 8 * n + (1 << 20)
    states, scheds = [], []
    for i, c in enumerate(man.checkpoints()):
        want = {"model", "optim"} | ({"sched"} if spec.scheduler else set())
        if set(c.files) != want or set(c.digests) != want:
            raise VerificationError(f"checkpoint record {i} names files other than "
                                    f"{', '.join(sorted(want))}")
        model = load_tensors(folder, c.files["model"], c.digests["model"], shapes, limit)
        optim = load_tensors(folder, c.files["optim"], c.digests["optim"], None, 4 * limit)
        for key, t in optim.items():
            pname = key.rpartition(".")[0]
            if pname not in per or (t.dim() > 0 and tuple(t.shape) != per[pname]):
                raise VerificationError(f"checkpoint {i}: optimizer state {key!r} does not "
                                        "fit the model")
        states.append((model, optim))
        if spec.scheduler:
            p = bundle_path(folder, c.files["sched"])
            raw = p.read_bytes()[:1 << 20]
            if digest_bytes(raw) != c.digests["sched"]:
                raise VerificationError(f"bundle file {c.files['sched']} does not match its "
                                        "digest in the manifest")
            try:
                scheds.append(json.loads(raw))
            except ValueError as exc:
                raise VerificationError(f"{c.files['sched']} is not JSON") from exc
        else:
            scheds.append(None)
    batches: dict[int, list[int]] = {}
    rng: dict[int, torch.Tensor] = {}
    for rec in man.epoch_records():
        got = load_tensors(folder, rec.files["indices"], rec.digests["indices"])
        flat, sizes = got.get("indices"), got.get("sizes")
        if flat is None or sizes is None or len(sizes) != spec.steps_per_epoch or \
                int(sizes.sum()) != len(flat) or (len(flat) and (
                    int(flat.min()) < 0 or int(flat.max()) >= spec.n_samples)) or \
                int(sizes.min()) < 1 or int(sizes.max()) > spec.batch_size:
            raise VerificationError(f"epoch {rec.epoch}: batch indices are malformed or "
                                    "outside the committed data")
        if spec.sampler == "permutation" and not torch.equal(
                flat.sort().values, torch.arange(spec.n_samples, dtype=flat.dtype)):
            raise VerificationError(f"epoch {rec.epoch}: the batches do not visit every "
                                    "committed sample exactly once, as the declared "
                                    "shuffle of the whole data does")
        first = rec.epoch * spec.steps_per_epoch
        pos = 0
        for j, size in enumerate(sizes.tolist()):
            batches[first + j] = flat[pos:pos + size].tolist()
            pos += size
        if spec.rng:
            r = got.get("rng")
            if r is None or r.dtype != torch.uint8 or len(r) != spec.steps_per_epoch:
                raise VerificationError(f"epoch {rec.epoch}: RNG states missing")
            for j in range(spec.steps_per_epoch):
                rng[first + j] = r[j].clone()
    return states, batches, rng, scheds


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail}


def verify_job(job: Mapping[str, Any],
               on_segment: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The child's part of verifying a loop proof (see the module doc); JSON out.
    ``on_segment`` sees each replayed segment as it finishes; the segments are replayed
    by :func:`mltrail.pol.parallel.map_segments` (in parallel inside its ``workers``)."""
    from mltrail.pol.bundle import read_manifest
    from mltrail.pol.limits import MAX_PARAMS
    from mltrail.pol.verifier import optim_threshold, plan, relative_error

    folder = Path(job["bundle"])
    man = read_manifest(folder)
    spec = man.header.training
    assert isinstance(spec, LoopSpec)
    out: dict[str, Any] = {"checks": [], "segments": [], "rule": {}, "init_origin": None}
    checks = out["checks"]
    torch.set_num_threads(int(job.get("threads", 1)))
    what = spec.model.ref if spec.model is not None else "the exported program"
    try:
        code = make_code(spec, folder, man, job.get("code_paths", []))
        dataset = build_dataset(spec, code, job.get("data"))
        states, batches, rng, _ = read_bundle(folder, spec, man, code, MAX_PARAMS)
    except InputError:
        raise  # the verifier's input (code not found, data missing): never a verdict
    except MltrailError as exc:
        checks.append(_check("tensors", False, exc.message))
        return out
    used = len({i for b in batches.values() for i in b})
    checks.append(_check("tensors", True, f"{len(states)} checkpoints fit {what}; "
                         f"{len(batches)} steps of batch indices inside the committed data "
                         f"(they use {used} of {spec.n_samples} samples"
                         f"{', each once per epoch' if spec.sampler else ''})"))
    out["curve"] = curve(spec, code, dataset, man, states, str(job.get("device", "cpu")))
    seed = man.header.init.seed
    if states[0][1]:
        checks.append(_check("init", False, "optimizer state at step 0 is not empty"))
        return out
    if spec.program is not None:
        from mltrail.pol.loopprogram import program_init

        check, out["init_origin"] = program_init(man, code, states[0][0])
        checks.append(check)
        if not check["ok"]:
            return out
    elif seed is None:
        out["init_origin"] = "unseeded"
        checks.append(_check("init", True, "no init seed committed: the initial weights are "
                             "the prover's choice"))
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            w0 = code.model().state_dict()
        if digest_state_dict(w0) != digest_state_dict(states[0][0]):
            checks.append(_check("init", False, f"initial weights are NOT {what}() "
                                 f"after torch.manual_seed({seed})"))
            return out
        out["init_origin"] = "seed"
        checks.append(_check("init", True, f"initial weights are exactly {what}() "
                             f"after torch.manual_seed({seed}), a seed the prover chose"))
    thr = float(job["threshold"])
    cks = man.checkpoints()
    chosen, score, rule = plan(man, states, int(job["q"]), job.get("r"),
                               float(job["miss_rate"]), float(job["forged"]), int(job["seed"]),
                               int(job.get("prior", 0)))
    out["rule"] = rule
    if on_segment is not None:  # for a progress bar's total (display only)
        on_segment({"planned": len(chosen)})
    device = str(job.get("device", "cpu"))
    # each segment from freshly imported code, in an order the prover cannot know: state
    # the code keeps between calls (a counter, a cache) is not in any checkpoint, so a
    # replay that starts mid-run must not inherit it from the segment replayed before
    order = list(chosen)
    random.Random(int(job["seed"])).shuffle(order)
    results: dict[int, dict[str, Any]] = {}
    whys, failed = dict(order), {}

    def replay(i: int) -> tuple[State, State]:
        nonlocal code, dataset
        if spec.program is None:  # the prover's code, freshly imported per segment
            code = Code(spec, job.get("code_paths", []), fresh=True)
            dataset = rebind(dataset, code)
        return replay_segment(spec, code, dataset, states[i][0], states[i][1], batches, rng,
                              cks[i].step, cks[i + 1].step, device)

    from mltrail.pol.loopdata import ArrayDataset
    from mltrail.pol.parallel import map_segments, segment_job

    exported = spec.program is not None and isinstance(dataset, ArrayDataset)
    emulated = job.get("emulated")
    if emulated and not exported:
        from mltrail.pol.parallel import WorkerError

        raise WorkerError(f"the proof declares CPU {emulated.upper()}, which only replay "
                          "processes started in it reproduce, and its data (a folder) "
                          "cannot be sent to them: verify on such a machine, or pass "
                          "--calibration for the pair")
    for i, got in map_segments(replay, [i for i, _ in order], (lambda i: segment_job(
            i, spec, folder, dataset, states[0][0], states[i][0], states[i][1], batches, rng,
            cks[i].step, cks[i + 1].step, device)) if exported else None, device,
            emulated):
        why = whys[i]
        (m0, o0), (m1, o1) = states[i], states[i + 1]
        if isinstance(got, str):  # the prover's proof: anything can go wrong
            err, cos, oerr = math.inf, None, None
            failed[i] = f"segment #{i} cannot be replayed: {got}".splitlines()[0]
        else:
            mr, orr = got
            err, cos = relative_error(mr, m0, m1)
            o0z = {n: o0.get(n, torch.zeros_like(t)) for n, t in o1.items()}
            oerr = relative_error(orr, o0z, o1)[0] if o1 or orr else None
        ok = err <= thr and (oerr is None or oerr <= optim_threshold(thr))
        results[i] = ({"index": i, "epoch": spec.epoch_of(cks[i].step),
                                "start_step": cks[i].step, "end_step": cks[i + 1].step,
                                "chosen": why, "update_norm": score[i],
                                "error": err if math.isfinite(err) else 1e300,
                                "optim_error": oerr, "cosine": cos, "ok": ok})
        if on_segment is not None:  # as each finishes (in parallel: in any order)
            on_segment(results[i])
    if failed:  # in replay order, whichever finished first
        out.setdefault("reasons", []).extend(failed[i] for i, _ in order if i in failed)
    out["segments"] = [results[i] for i, _ in chosen]
    return out


def curve(spec: LoopSpec, code: Any, dataset: Any, man: Any,
          states: Sequence[tuple[State, State]], device: str) -> list[dict[str, Any]]:
    """The verifier's training curve (:func:`mltrail.pol.curve.loop_curve`) as JSON; empty
    when the weights or the code do not run (it decides nothing: the checks say why)."""
    from mltrail.pol.curve import loop_curve

    steps = [c.step for c in man.checkpoints()]
    try:
        with torch.random.fork_rng(devices=[]):
            points = loop_curve(spec, code, dataset, steps, [m for m, _ in states], device)
    except Exception:  # the prover's code or programs: no curve, never a verdict
        return []
    return [p.model_dump() for p in points]


def rebind(dataset: Any, code: Code) -> Any:
    """Point a rebuilt dataset at freshly imported code (its bytes stay checked)."""
    if hasattr(dataset, "_fn"):
        dataset._fn = code.transform
    if hasattr(dataset, "_load") and code.load is not None:
        dataset._load = code.load
    return dataset


def calibrate_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """Replay every segment of an honest loop proof under the job's arithmetic (thread
    count, float64) and return the (weights, optimizer state) errors."""
    from mltrail.pol.bundle import read_manifest
    from mltrail.pol.limits import MAX_PARAMS
    from mltrail.pol.verifier import relative_error

    folder = Path(job["bundle"])
    man = read_manifest(folder)
    spec = man.header.training
    assert isinstance(spec, LoopSpec)
    code = make_code(spec, folder, man, job.get("code_paths", []))
    dataset = build_dataset(spec, code, job.get("data"))
    states, batches, rng, _ = read_bundle(folder, spec, man, code, MAX_PARAMS)
    torch.set_num_threads(int(job.get("threads", 1)))
    dtype = torch.float64 if job.get("dtype") == "float64" else None
    cks = man.checkpoints()
    errors = []
    for i in range(len(cks) - 1):
        (m0, o0), (m1, o1) = states[i], states[i + 1]
        if spec.program is None:
            code = Code(spec, job.get("code_paths", []), fresh=True)  # as the verifier does
            dataset = rebind(dataset, code)
        try:
            mr, orr = replay_segment(spec, code, dataset, m0, o0, batches, rng, cks[i].step,
                                     cks[i + 1].step, str(job.get("device", "cpu")), dtype)
        except Exception:  # the prover's code: a segment that cannot run does not reproduce
            errors.append([math.inf, math.inf])
            continue
        o0z = {n: o0.get(n, torch.zeros_like(t)) for n, t in o1.items()}
        errors.append([relative_error(mr, m0, m1)[0],
                       relative_error(orr, o0z, o1)[0] if o1 else 0.0])
    return {"errors": errors}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -I -m mltrail.pol.loopreplay JOB.json``: writes ``result`` next to it."""
    import numpy  # noqa: F401  (everything the replay needs is imported before any
    import safetensors.torch  # noqa: F401  --code folder is on the path)

    args = list(sys.argv[1:] if argv is None else argv)
    job_path = Path(args[0])
    job = json.loads(job_path.read_text())
    lines = job.get("segments_file")

    def seen(seg: dict[str, Any]) -> None:  # for the parent's display, as each finishes
        with open(lines, "a") as f:
            f.write(json.dumps(seg) + "\n")

    try:
        result = calibrate_job(job) if job.get("mode") == "calibrate" else \
            verify_job(job, seen if lines else None)
    except InputError as exc:
        result = {"error": exc.message, "input_error": True}
    except MltrailError as exc:
        result = {"error": exc.message}
    except Exception as exc:  # the prover's code: report it in one line
        result = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    Path(job["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
