"""The coordinator of data-parallel training across untrusted workers on Ray.

Owns :func:`train_distributed`: synchronous rounds, one global optimizer step each. The
batch of every step and its split into per-worker shards are fixed before training from a
committed seed (:func:`plan`). In a round every active worker gets the global state and
its shard, and returns its gradient with a record (round, indices, digest of the state
before, digest of the update). The coordinator then, per update, draws from a secret keyed
by the digest it received (:class:`~mltrail.distributed.spotcheck.Challenger`) and
replays a fraction of them itself — with the loop's exported programs, never a worker's
code — under the tolerance :func:`mltrail.pol.tolerance.decide` gives (same platform:
bitwise). A failed check excludes the worker for the rest of the run, drops its update
and, with a ledger, anchors the evidence (:mod:`.evidence`). The accepted gradients are
averaged (weighted by shard size), the optimizer (and scheduler) step runs here, and the
global trajectory is recorded by the ordinary loop recorder into ONE bundle. It never
trusts a worker's digest, index list or state claim without checking it.

A worker caught after some of its updates were accepted unchecked has put updates into
the model that nobody replayed (and that the proof's verifier, which replays whole
segments, would reject): the coordinator then abandons the partial proof and trains
again from the start without that worker (its exclusion and evidence stay; the summary
lists the restart), so the one proof it writes holds only updates of workers never
caught.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from mltrail.distributed import polapi
from mltrail.distributed.evidence import evidence_digest, exclusion_evidence, record_exclusion
from mltrail.distributed.spotcheck import (
    DEFAULT_CHEAT_SHARE,
    DEFAULT_MISS_RATE,
    Challenger,
    cheated_updates,
    fraction,
)
from mltrail.distributed.worker import Behaviour, Worker
from mltrail.errors import InputError, MltrailError


@dataclass
class Options:
    """A run's settings (all public before training: the plan follows from them)."""

    workers: int = 3
    batch_size: int = 32  # per worker and step
    epochs: int = 2
    k: int = 10  # checkpoint interval of the global proof
    seed: int = 0  # the committed seed: batches, shards and the init (mltrail-fanin/1)
    miss_rate: float = DEFAULT_MISS_RATE
    cheat_share: float = DEFAULT_CHEAT_SHARE
    spot_check: float | None = None  # a fraction given outright (else from miss_rate)
    exclude: bool = True  # False: check and log only (the bench's observation mode)
    address: str | None = None  # a Ray cluster; None: a local one
    worker_cpus: float = 1.0
    grad_clip: float | None = None
    dataset_id: str | None = None  # the ledger's artefact of the training data
    log: bool = False  # keep every draw in the summary

    def check(self) -> None:
        if self.workers < 1 or self.workers > 1024:
            raise InputError("--workers must be between 1 and 1024")
        if self.batch_size < 1 or self.epochs < 1 or self.k < 1:
            raise InputError("batch size, epochs and k must be at least 1")
        if self.spot_check is not None and not 0.0 <= self.spot_check <= 1.0:
            raise InputError("--spot-check must be a fraction in [0, 1]")


def plan(n: int, opts: Options) -> list[list[list[list[int]]]]:
    """plan[epoch][step][worker] = the sample indices of that worker's shard: each epoch a
    permutation of the data drawn from the committed seed, cut into steps of
    ``workers * batch_size`` samples, each step cut into consecutive shards."""
    per_step = opts.workers * opts.batch_size
    steps = math.ceil(n / per_step)
    out = []
    for e in range(opts.epochs):
        g = torch.Generator().manual_seed(opts.seed * 1_000_003 + e)
        perm = torch.randperm(n, generator=g).tolist()
        epoch = []
        for s in range(steps):
            union = perm[s * per_step:(s + 1) * per_step]
            epoch.append([union[j * opts.batch_size:(j + 1) * opts.batch_size]
                          for j in range(opts.workers)])
        out.append(epoch)
    return out


class _Feed:
    """The global loop's batch sampler: yields the batch the coordinator accepted for the
    step it is about to take (so the proof records exactly the samples used)."""

    def __init__(self, steps: int, batch_size: int) -> None:
        self.steps, self.batch_size = steps, batch_size
        self.next: list[int] = []

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            yield self.next


def connect(address: str | None, cpus: int) -> None:
    """Join the Ray cluster at ``address``, or start a local one (no dashboard)."""
    import logging

    import ray

    if ray.is_initialized():
        return
    if address:
        _reachable(address)
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot reach a Ray cluster at {address}: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                         ) from None


def start_workers(n: int, cpus: float = 1.0, address: str | None = None) -> list[Any]:
    """``n`` worker actors (joining or starting the cluster first); pass them to
    :func:`train_distributed` as ``pool`` to serve several runs."""
    import ray

    connect(address, max(1, math.ceil(n * cpus)))
    actor_cls: Any = ray.remote(Worker).options(num_cpus=cpus)  # type: ignore[attr-defined]
    return [actor_cls.remote() for _ in range(n)]


def _reachable(address: str) -> None:
    """A host:port address must answer a TCP connection within 5 s (Ray itself retries
    an unreachable one for minutes); ``auto`` and ``ray://`` addresses are left to Ray."""
    import socket

    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InputError(f"--ray {address!r}: give HOST:PORT of the cluster's head, "
                         "'auto' or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as exc:
        raise InputError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}"
                         ) from None


class _Restart(Exception):
    """A worker caught after updates of its were accepted unchecked (see the module doc)."""

    def __init__(self, entry: dict[str, Any], unchecked: list[int]) -> None:
        super().__init__(f"worker {entry['worker']} caught at round {entry['round']}")
        self.entry, self.unchecked = entry, unchecked


@dataclass
class _Round:
    accepted: list[tuple[int, list[int], polapi.State]] = field(default_factory=list)


def train_distributed(out: str | Path, model: torch.nn.Module,
                      optimizer: torch.optim.Optimizer, dataset: Any, *, loss: Any,
                      opts: Options, scheduler: Any = None, scheduler_every: str = "step",
                      behaviours: Mapping[int, Behaviour] | None = None,
                      ledger: Any = None, secret: bytes | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      pool: Sequence[Any] | None = None) -> dict[str, Any]:
    """Train ``model`` data-parallel on ``opts.workers`` Ray actors; write the proof to
    ``out``; return the run's summary (see the module doc). ``behaviours`` makes worker i
    an adversary (tests, bench); ``pool`` reuses actors of :func:`start_workers`."""
    opts.check()
    if ledger is not None and opts.dataset_id is None:
        raise InputError("recording exclusions on a ledger needs the dataset's artefact id")
    from torch.nn.modules.batchnorm import _BatchNorm

    if any(isinstance(m, _BatchNorm) for m in model.modules()):
        raise InputError("BatchNorm computes statistics over the whole batch: per-shard "
                         "gradients do not add up to it (use GroupNorm or LayerNorm)")
    from torch.nn.modules.dropout import _DropoutNd

    if any(isinstance(m, _DropoutNd) and m.p > 0 for m in model.modules()):
        raise InputError("dropout draws per-worker random masks that a replay of the whole "
                         "batch cannot reproduce: train without dropout across workers")
    tensors = polapi.tensors_of(dataset)
    n = len(next(iter(tensors.values())))
    shards = plan(n, opts)
    steps = len(shards[0])
    feed = _Feed(steps, opts.workers * opts.batch_size)
    loader: DataLoader[Any] = DataLoader(dataset, batch_sampler=feed)  # type: ignore[arg-type]
    out = Path(out)
    if pool is not None and len(pool) < opts.workers:
        raise InputError(f"the pool has {len(pool)} workers, not {opts.workers}")
    if pool is None:
        connect(opts.address, max(1, math.ceil(opts.workers * opts.worker_cpus)))
    fresh = not out.exists()
    start = ({k: v.detach().clone() for k, v in model.state_dict().items()},
             optimizer.state_dict(), scheduler.state_dict() if scheduler is not None else None)
    excluded: dict[int, dict[str, Any]] = {}
    restarts: list[dict[str, Any]] = []
    try:
        while True:
            try:
                summary = _train(out, model, optimizer, tensors, shards, loader, feed,
                                 loss=loss, opts=opts, scheduler=scheduler,
                                 scheduler_every=scheduler_every, behaviours=behaviours,
                                 ledger=ledger, secret=secret, progress=progress, pool=pool,
                                 excluded=frozenset(excluded))
            except _Restart as again:  # from the start, without the worker
                excluded[again.entry["worker"]] = again.entry
                restarts.append({"worker": again.entry["worker"],
                                 "caught_round": again.entry["round"],
                                 "unchecked_rounds": again.unchecked})
                _reset(out, fresh, model, optimizer, scheduler, start)
                continue
            summary["caught"] = [*excluded.values(), *summary["caught"]]
            summary["restarts"] = restarts
            return summary
    except BaseException:
        if fresh:  # nothing half-written: a run that did not finish leaves no folder
            shutil.rmtree(out, ignore_errors=True)
        raise


def _reset(out: Path, fresh: bool, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: Any, start: tuple[dict[str, torch.Tensor], dict[str, Any], Any]
           ) -> None:
    """Back to the state before the first round: the partial proof removed (the folder
    kept if it was there before, empty), model, optimizer and scheduler restored."""
    shutil.rmtree(out, ignore_errors=True)
    if not fresh:
        out.mkdir(parents=True)
    model.load_state_dict(start[0])
    optimizer.load_state_dict(start[1])
    if scheduler is not None:
        scheduler.load_state_dict(start[2])


def _train(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           tensors: dict[str, torch.Tensor], shards: list[list[list[list[int]]]],
           loader: DataLoader[Any], feed: _Feed, *, loss: Any, opts: Options,
           scheduler: Any, scheduler_every: str, behaviours: Mapping[int, Behaviour] | None,
           ledger: Any, secret: bytes | None, progress: Callable[[int, int], None] | None,
           pool: Sequence[Any] | None, excluded: frozenset[int] = frozenset()
           ) -> dict[str, Any]:
    import ray

    steps = len(shards[0])
    rec = polapi.start_recording(out, model, optimizer, loader, shard_size=opts.batch_size,
                                 loss=loss, scheduler=scheduler,
                                 scheduler_every=scheduler_every, epochs=opts.epochs,
                                 k=opts.k, init_seed=opts.seed, grad_clip=opts.grad_clip,
                                 rng=False, **(polapi.ledger_anchoring(
                                     ledger, str(opts.dataset_id)) if ledger is not None
                                     else {}))
    spec = polapi.spec_json(rec)
    files = polapi.program_files(out, spec)
    state0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    code = polapi.program_code(spec, files, state0)  # the coordinator's own replay
    replay_model = code.model()
    replay_data = polapi.dataset_of(tensors, code.transform)
    rounds = opts.epochs * steps
    f = opts.spot_check if opts.spot_check is not None else \
        fraction(rounds, opts.miss_rate, opts.cheat_share)
    challenger = Challenger(secret)
    actors = list(pool[:opts.workers]) if pool is not None else \
        start_workers(opts.workers, opts.worker_cpus, opts.address)
    stack = ExitStack()  # the coordinator steps in the workers' declared environment
    try:  # the actors are killed and the environment restored on any failure
        behaviours = dict(behaviours or {})
        data_ref, files_ref, state_ref = ray.put(tensors), ray.put(files), ray.put(state0)
        envs = ray.get([a.load.remote(j, spec, files_ref, data_ref, state_ref, behaviours.get(j))
                        for j, a in enumerate(actors)])
        tols = [polapi.tolerance(e) for e in envs]
        stack.enter_context(polapi.declare_environment(rec, envs))
        active = set(range(opts.workers)) - excluded
        unchecked: dict[int, list[int]] = {}  # rounds whose update of worker j nobody replayed
        caught: list[dict[str, Any]] = []
        log: list[dict[str, Any]] = []
        checks = 0
        t0 = time.perf_counter()
        replay_s = 0.0
        run_id = spec_digest = rec.manifest.header_digest
        params = dict(model.named_parameters())
        for epoch in range(opts.epochs):
            it = iter(rec.loader)
            for s in range(steps):
                t = epoch * steps + s
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                sdig = polapi.digest_state_dict(state)
                sref = ray.put(state)
                jobs = [(j, shards[epoch][s][j]) for j in sorted(active)
                        if shards[epoch][s][j]]
                got = _gather([actors[j].compute.remote(t, sref, idx) for j, idx in jobs])
                rnd = _Round()
                for (j, idx), (record, upd) in zip(jobs, got, strict=True):
                    digest = polapi.digest_state_dict(upd) if _is_state(upd) else "invalid"
                    u = challenger.draw(t, j, digest)
                    honest_record = (isinstance(record, dict) and record.get("round") == t
                                     and record.get("worker") == j
                                     and record.get("indices") == idx
                                     and record.get("state") == sdig
                                     and record.get("update") == digest)
                    check = u < f or not honest_record
                    err, rdig = 0.0, None
                    if check:
                        checks += 1
                        r0 = time.perf_counter()
                        with polapi.replaying(envs[j]):
                            want = polapi.gradient(replay_model, code.loss, replay_data,
                                                   state, idx)
                        replay_s += time.perf_counter() - r0
                        err = polapi.compare(want, upd, tols[j].threshold) \
                            if _is_state(upd) else math.inf
                        if not honest_record:
                            err = math.inf
                        rdig = polapi.digest_state_dict(want)
                    ok = not check or err <= tols[j].threshold
                    if opts.log:
                        log.append({"round": t, "worker": j, "u": u, "checked": check,
                                    "ok": ok, "record_ok": honest_record})
                    if ok:
                        rnd.accepted.append((j, idx, upd))
                        if not check:
                            unchecked.setdefault(j, []).append(t)
                        continue
                    claim = {"round": t, "worker": j, "indices": idx, "state": sdig,
                             "update": digest}
                    ev = exclusion_evidence(claim, rdig or "", err, tols[j].as_dict(), run_id)
                    entry = {"worker": j, "round": t, "error": ev["error"],
                             "evidence": evidence_digest(ev)}
                    if ledger is not None and opts.exclude:
                        entry["ledger"] = record_exclusion(ledger, str(opts.dataset_id), ev)
                    caught.append(entry)
                    if opts.exclude and unchecked.get(j):
                        raise _Restart(entry, unchecked[j])
                    if opts.exclude:
                        active.discard(j)
                    else:
                        rnd.accepted.append((j, idx, upd))  # observation mode: keep it
                if not rnd.accepted:
                    raise MltrailError(f"round {t}: no worker's update was accepted "
                                       "(every worker is excluded)")
                _apply(rnd, params, optimizer, opts.grad_clip, opts.batch_size)
                feed.next = [i for _, idx, _ in rnd.accepted for i in idx]
                next(it)
                optimizer.step()
                if scheduler is not None and (scheduler_every == "step" or s == steps - 1):
                    scheduler.step()
                rec.step()
                if progress is not None:
                    progress(t + 1, rounds)
        rec.finish()
    finally:
        stack.close()
        if pool is None:
            for a in actors:
                ray.kill(a)
    wall = time.perf_counter() - t0
    out_summary: dict[str, Any] = {
        "bundle": str(out), "workers": opts.workers, "rounds": rounds,
        "steps_per_epoch": steps, "batch_per_worker": opts.batch_size,
        "spot_check": f, "miss_rate": opts.miss_rate, "cheat_share": opts.cheat_share,
        "covers_cheated_updates": cheated_updates(rounds, opts.cheat_share),
        "tolerance": tols[0].as_dict() if tols else None,
        "checks": checks, "caught": caught, "excluded": sorted(set(range(opts.workers))
                                                               - active),
        "restarts": [],
        "challenge": {"commitment": challenger.commitment, "secret": challenger.secret.hex()},
        "header_digest": spec_digest, "wall_s": wall, "replay_s": replay_s,
        "final_model": rec.manifest.final_model}
    if opts.log:
        out_summary["log"] = log
    return out_summary


def _gather(futures: list[Any]) -> list[tuple[Any, Any]]:
    """Each worker's (record, update); a worker that failed or sent something else gets
    (None, None), which no check accepts."""
    import ray

    out: list[tuple[Any, Any]] = []
    for fut in futures:
        try:
            got = ray.get(fut)
        except Exception:  # a worker's failure is its own: it is caught, not us
            got = None
        out.append(got if isinstance(got, tuple) and len(got) == 2 else (None, None))
    return out


def _is_state(upd: Any) -> bool:
    return isinstance(upd, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                         for k, v in upd.items())


def _apply(rnd: _Round, params: Mapping[str, torch.nn.Parameter],
           optimizer: torch.optim.Optimizer, grad_clip: float | None,
           shard_size: int) -> None:
    """Set each parameter's gradient to the shard-size-weighted mean of the accepted
    updates (in worker order), then clip as the loop declares: the arithmetic of
    :func:`mltrail.distributed.polapi.accumulate`, which the proof's replay runs too, on
    the split of the recorded batch it gives (checked here to be the accepted shards)."""
    batch = [i for _, idx, _ in rnd.accepted for i in idx]
    if polapi.split(batch, shard_size) != [idx for _, idx, _ in rnd.accepted]:
        raise MltrailError("the accepted shards are not the split a replay would make of "
                           "the recorded batch")  # pragma: no cover - plan()'s contract
    optimizer.zero_grad(set_to_none=True)
    polapi.accumulate(list(params.items()), [(len(idx), upd) for _, idx, upd in rnd.accepted],
                      grad_clip)
