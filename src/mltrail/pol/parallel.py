"""Replaying a proof's challenged segments in parallel: local processes, or Ray.

Owns :func:`workers` (a context manager: how many replay workers, and which Ray cluster,
the verifications inside it use — ``mltrail pol verify --workers N [--ray ADDRESS]``),
:func:`check_workers`, and :func:`map_segments`, which the segment loop of
:func:`mltrail.pol.loopreplay.verify_job` calls: with one worker it calls the serial
replay in order, exactly as before; with more it hands each segment to a worker as data
and yields the replayed tensors as each one finishes. A proof that declares a lower CPU
capability than this machine's (:func:`mltrail.pol.environment.emulation`) always goes
to workers, started in that capability (``ATEN_CPU_CAPABILITY``), even with one worker.

What a worker gets is data only (:class:`SegmentJob`): the proof's spec, the bytes of its
exported programs (digests checked again in the worker), the states the segment starts
from, the rows of the committed data its batches use, the RNG states, and the thread
count and deterministic mode the verifier's process replays in (the declared
environment, :mod:`mltrail.pol.environment`). It returns the replayed tensors and its
platform; the errors, the segment's verdict and the report are computed by the
verifier's own process from those tensors, never taken from a worker. A worker on
another platform (CPU capability, BLAS, torch) than the verifier's is refused
(:class:`WorkerError`: replay there would not be exact); a worker that dies is the
verifier's own trouble, never a verdict (:class:`WorkerError`, an input error: exit 2,
nothing recorded).

This module never runs the prover's Python (a trusted-code proof replays serially in
its isolated child, :mod:`mltrail.pol.loopverify`), never touches the ledger and never
judges a segment.
"""

from __future__ import annotations

import hashlib
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mltrail.errors import InputError

MAX_WORKERS = 64
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_CODE: dict[str, Any] = {}  # in a worker: the last proof's rebuilt programs (stateless:
# each replay deep-copies the model, as the serial replay does)
State = dict[str, torch.Tensor]
Replayed = tuple[State, State] | str  # the new states, or why the segment cannot run


class WorkerError(InputError):
    """The verifier's own replay workers failed (died, or run on another platform): its
    own trouble, never a verdict about the proof (exit 2, nothing recorded)."""


@dataclass
class Plan:
    """How segments are replayed: ``workers`` at once, on Ray when ``ray`` is set (local
    processes are started once per :func:`workers` block, on the first parallel replay)."""

    workers: int = 1
    ray: str | None = None
    pool: Any = None  # the ProcessPoolExecutor, while the block lasts
    emulated: str | None = None  # the CPU capability the pool's processes were started in

    def executor(self, emulated: str | None = None) -> Any:
        if self.pool is not None and self.emulated != emulated:
            self.close()
        if self.pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            from mltrail.pol.environment import emulate

            self.pool = ProcessPoolExecutor(max_workers=self.workers,
                                            mp_context=multiprocessing.get_context("spawn"),
                                            initializer=emulate, initargs=(emulated,))
            self.emulated = emulated
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


_PLAN: ContextVar[Plan | None] = ContextVar("mltrail_replay_workers", default=None)


def check_workers(n: int, ray: str | None = None) -> Plan:
    """A :class:`Plan`, or :class:`InputError` for a count outside 1..64."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WORKERS:
        raise InputError(f"--workers must be between 1 and {MAX_WORKERS} (got {n!r})")
    if ray is not None and not ray.strip():
        raise InputError("--ray needs an address (host:port, ray://host:port, auto or local)")
    return Plan(workers=n, ray=ray)


def current() -> Plan:
    """The plan of the innermost :func:`workers` block (serial outside any)."""
    return _PLAN.get() or Plan()


@contextmanager
def workers(n: int = 1, ray: str | None = None) -> Iterator[Plan]:
    """Verifications inside the block replay segments on ``n`` workers: local processes,
    or tasks on the Ray cluster at ``ray`` ("local" starts one on this machine). The
    cluster is joined here, so an unreachable address fails (:class:`InputError`) before
    anything is verified or recorded."""
    plan = check_workers(n, ray)
    started = _join_ray(plan.ray, plan.workers) if plan.ray is not None else False
    token = _PLAN.set(plan)
    try:
        yield plan
    finally:
        _PLAN.reset(token)
        plan.close()
        if started:
            import ray as ray_mod

            ray_mod.shutdown()


def _join_ray(address: str, n: int) -> bool:
    """Connect to the cluster (True when this call started the connection)."""
    import ray as ray_mod

    if ray_mod.is_initialized():
        return False
    if address not in ("local", "auto"):
        _reachable(address)
    try:
        if address == "local":
            ray_mod.init(num_cpus=n, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
        else:
            ray_mod.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
        raise InputError(f"--ray {address}: cannot join the cluster: "
                         f"{type(exc).__name__}: {exc}".splitlines()[0][:300]) from None
    return True


def _reachable(address: str, timeout: float = 3.0) -> None:
    """``address`` (``[ray://]host:port``) answers like a Ray head: a gRPC (HTTP/2)
    server, so a wrong host or port fails in seconds (Ray itself retries for minutes)."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--ray {address}: give host:port, ray://host:port, auto or local")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
            s.sendall(H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # SETTINGS
            head = s.recv(9)
    except OSError as exc:
        raise InputError(f"--ray {address}: unreachable ({exc.strerror or exc})") from None
    if len(head) < 9 or head[3] != 4:  # a server's first frame is its SETTINGS
        raise InputError(f"--ray {address}: not a Ray cluster (no gRPC server answers there)")


# --------------------------------------------------------------------------- the work


@dataclass
class SegmentJob:
    """One segment, as data: everything a worker needs, nothing of the prover's Python."""

    index: int
    spec_json: str
    files: dict[str, bytes]  # the exported programs and their constants, by bundle path
    w0: State  # checkpoint 0's weights: the programs are rebuilt on them, as in make_code
    m0: State
    o0: State
    rows: dict[str, torch.Tensor]  # the committed data's rows these batches use
    batches: dict[int, list[int]]  # step -> positions in ``rows``
    rng: dict[int, torch.Tensor]
    start: int
    end: int
    device: str = "cpu"
    threads: int = 1
    deterministic: bool = False


def segment_job(index: int, spec: Any, folder: Path, dataset: Any, w0: State, m0: State,
                o0: State, batches: Mapping[int, list[int]], rng: Mapping[int, torch.Tensor],
                start: int, end: int, device: str) -> SegmentJob:
    """The :class:`SegmentJob` of steps ``start..end-1`` of an exported proof."""
    from mltrail.pol.bundle import bundle_path

    p = spec.program
    files = {}
    for pf in (p.model, p.loss, p.transform):
        if pf is None:
            continue
        for rel in (pf.file, pf.constants):
            if rel:
                files[rel] = bundle_path(folder, rel).read_bytes()
    used = sorted({i for t in range(start, end) for i in batches[t]})
    where = {i: n for n, i in enumerate(used)}
    pick = torch.tensor(used, dtype=torch.long)
    return SegmentJob(index=index, spec_json=spec.model_dump_json(), files=files, w0=w0, m0=m0,
                      o0=o0, rows={k: t[pick] for k, t in dataset.tensors.items()},
                      batches={t: [where[i] for i in batches[t]] for t in range(start, end)},
                      rng={t: rng[t] for t in range(start, end) if t in rng},
                      start=start, end=end, device=device, threads=torch.get_num_threads(),
                      deterministic=torch.are_deterministic_algorithms_enabled())


def replay_job(job: SegmentJob) -> tuple[int, Replayed, str]:
    """In a worker: replay ``job`` in the verifier's arithmetic; returns its index, the
    new states (or why it cannot run) and this worker's platform."""
    from mltrail.pol import environment
    from mltrail.pol.loopdata import ArrayDataset
    from mltrail.pol.loopprogram import ProgramCode
    from mltrail.pol.loopreplay import replay_segment
    from mltrail.pol.loopspec import LoopSpec
    from mltrail.provenance.digest import digest_state_dict

    torch.set_num_threads(job.threads)
    torch.use_deterministic_algorithms(job.deterministic)
    platform = environment.platform_key(environment.current(job.device))
    spec = LoopSpec.model_validate_json(job.spec_json)
    try:
        key = hashlib.sha256(job.spec_json.encode() + digest_state_dict(job.w0).encode()
                             + b"".join(hashlib.sha256(job.files[k]).digest()
                                        for k in sorted(job.files))).hexdigest()
        code: Any = _CODE.get(key)
        if code is None:  # rebuilt once per worker process and proof (it takes seconds)
            with tempfile.TemporaryDirectory(prefix="mltrail-segment-") as tmp:
                for rel, raw in job.files.items():
                    path = Path(tmp) / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(raw)
                code = ProgramCode(spec, Path(tmp), job.w0)  # as make_code builds it
            _CODE.clear()  # one proof's programs at a time
            _CODE[key] = code
        dataset = ArrayDataset.of(job.rows, code.transform)
        got: Replayed = replay_segment(spec, code, dataset, job.m0, job.o0, job.batches,
                                       job.rng, job.start, job.end, job.device)
    except Exception as exc:  # as the serial loop: a segment that cannot run, in one line
        got = f"{type(exc).__name__}: {exc}"
    return job.index, got, platform


# --------------------------------------------------------------------------- mapping


def map_segments(fn: Callable[[int], tuple[State, State]], items: Sequence[int],
                 job: Callable[[int], SegmentJob] | None = None, device: str = "cpu",
                 emulated: str | None = None) -> Iterator[tuple[int, Replayed]]:
    """``(i, fn(i))`` for each of ``items`` as it finishes (a failure as its one-line
    text). With one worker (or no ``job`` builder: a proof that is not exported) ``fn``
    runs here, in order; else each ``job(i)`` is replayed by a worker (see module doc).
    ``emulated`` (:func:`mltrail.pol.environment.emulation`): every segment goes to
    workers started in that CPU capability, even with one worker."""
    plan = current()
    if job is None or (emulated is None and (plan.workers == 1 or len(items) < 2)):
        for i in items:
            try:
                yield i, fn(i)
            except Exception as exc:  # the prover's proof: anything can go wrong
                yield i, f"{type(exc).__name__}: {exc}"
        return
    from mltrail.pol import environment

    with environment.declared(None, device, emulated) as here_env:
        here = environment.platform_key(here_env)
    runner = _ray_map if plan.ray is not None else _process_map
    for i, got, platform in runner(plan, job, items, emulated):
        if platform != here:
            raise WorkerError(f"a replay worker runs on another platform ({platform}) than "
                             f"this verifier ({here}): its replay would not be exact; "
                             "nothing judged")
        yield i, got


def _died(exc: BaseException) -> WorkerError:
    return WorkerError(f"a replay worker died ({type(exc).__name__}: {exc})".splitlines()[0]
                      [:300] + ": nothing judged; rerun with --workers 1")


def _process_map(plan: Plan, job: Callable[[int], SegmentJob], items: Sequence[int],
                 emulated: str | None) -> Iterator[tuple[int, Replayed, str]]:
    from concurrent.futures import FIRST_COMPLETED, Future, wait

    pending = list(items)
    running: set[Future[tuple[int, Replayed, str]]] = set()
    try:
        while pending or running:
            while pending and len(running) < plan.workers:  # n segments' tensors in flight
                running.add(plan.executor(emulated).submit(replay_job, job(pending.pop(0))))
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                try:
                    yield f.result()
                except Exception as exc:  # BrokenProcessPool, a pickling failure
                    raise _died(exc) from None
    except BaseException:
        plan.close()  # a broken or abandoned pool is not reused
        raise


def _ray_map(plan: Plan, job: Callable[[int], SegmentJob], items: Sequence[int],
             emulated: str | None) -> Iterator[tuple[int, Replayed, str]]:
    import ray

    if not ray.is_initialized():
        raise WorkerError("--ray: not connected to a cluster (use mltrail.pol.parallel.workers)")
    env: dict[str, Any] = {"env_vars": {"ATEN_CPU_CAPABILITY": emulated}} if emulated else {}
    remote = ray.remote(num_cpus=1, max_retries=0, runtime_env=env)(replay_job)
    pending = list(items)
    running: list[Any] = []
    while pending or running:
        while pending and len(running) < plan.workers:
            running.append(remote.remote(job(pending.pop(0))))
        done, running = ray.wait(running, num_returns=1)
        try:
            yield ray.get(done[0])
        except Exception as exc:  # a worker or node lost: the verifier's trouble
            raise _died(exc) from None
