"""The arithmetic environment a proof was trained in, and putting a replay back into it.

Owns :class:`Environment` (what the manifest header's ``env`` records: torch version,
device, dtype, CPU thread count, deterministic-algorithm setting, TF32 on CUDA, CPU
capability and BLAS), :func:`current` (the running process's), :func:`platform_key` (the
part of an environment a verifier cannot change from inside its process, and TF32, which
changes the arithmetic by orders of magnitude more than the rest), :func:`emulation` (a
lower CPU capability that replay processes started with ``ATEN_CPU_CAPABILITY`` can
reproduce, so a prover gains nothing by declaring one) and :func:`declared` (a
context manager that sets what it can change — threads, deterministic mode and TF32 — to
a declared environment for the duration of a replay). Which tolerance follows from two
environments is :mod:`mltrail.pol.tolerance`'s. This module never judges a proof.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from mltrail.errors import InputError

MAX_THREADS = 256  # a declared thread count the verifier will reproduce
# x86 kernel levels, lowest first: a process started with ATEN_CPU_CAPABILITY=<level>
# dispatches to that level's kernels on any CPU that has a higher one
CPU_LEVELS = ("DEFAULT", "AVX2", "AVX512")


class Environment(BaseModel):
    """Where the arithmetic of every step happened (recorded before step 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    torch: str = Field(max_length=64)
    device: str = Field(max_length=32)  # device type: "cpu", "cuda", "mps", ...
    dtype: str = Field(max_length=32)  # "float32", "float64", ...
    threads: int = Field(ge=1, le=1 << 16)
    deterministic: bool
    cpu_capability: str = Field(max_length=64)  # torch.backends.cpu.get_cpu_capability()
    blas: str = Field(max_length=64)  # BLAS_INFO of torch.__config__ ("mkl", "open", ...)
    lapack: str = Field(default="", max_length=64)
    # CUDA matmuls and convolutions in TensorFloat-32 (10-bit mantissa); False on CPU and
    # in every proof written before it was recorded
    tf32: bool = False

    @model_serializer(mode="wrap")
    def _omit_tf32_off(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without TF32 the environment serialises as before the field existed, so the
        header digests of earlier proofs are unchanged."""
        out: dict[str, Any] = handler(self)
        if not out.get("tf32"):
            out.pop("tf32", None)
        return out


def _tf32(device: str) -> bool:
    """Whether CUDA work on ``device`` may run in TF32 (matmul or cuDNN)."""
    if torch.device(device).type != "cuda":
        return False
    return bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def _set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def _config_value(key: str) -> str:
    m = re.search(rf"\b{key}=([^,\s]+)", torch.__config__.show())
    return m.group(1) if m else "unknown"


def current(device: str = "cpu", dtype: torch.dtype | None = None) -> Environment:
    """The running process's environment, for a training on ``device`` in ``dtype``
    (default: torch's default dtype)."""
    dt = dtype or torch.get_default_dtype()
    return Environment(torch=torch.__version__, device=device,
                       dtype=str(dt).removeprefix("torch."),
                       threads=torch.get_num_threads(),
                       deterministic=torch.are_deterministic_algorithms_enabled(),
                       cpu_capability=str(torch.backends.cpu.get_cpu_capability()),
                       blas=_config_value("BLAS_INFO"), lapack=_config_value("LAPACK_INFO"),
                       tf32=_tf32(device))


def check_device(device: str) -> str:
    """``device`` if this process can replay on it, else :class:`InputError` (the
    verifier's own environment, never a verdict)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"unknown device {device!r} (cpu, cuda, cuda:N, mps)") from None
    if dev.type == "cpu":
        return device
    try:
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError, ValueError):
        raise InputError(f"device {device!r} is not available on this machine") from None
    return device


def emulation(declared: Environment | None, device: str = "cpu") -> str | None:
    """The ``ATEN_CPU_CAPABILITY`` value that makes a new replay process on this machine
    run the kernels of the proof's declared CPU capability (a lower x86 level than this
    machine's), or None when there is nothing to emulate or it cannot be."""
    if declared is None or torch.device(device).type != "cpu":
        return None
    mine = str(torch.backends.cpu.get_cpu_capability())
    want = declared.cpu_capability
    if want == mine or want not in CPU_LEVELS or mine not in CPU_LEVELS:
        return None
    if CPU_LEVELS.index(want) > CPU_LEVELS.index(mine):
        return None
    return want.lower()


def emulate(capability: str | None) -> None:
    """In a fresh replay process, before its first tensor operation: run the kernels of
    ``capability`` (torch reads ``ATEN_CPU_CAPABILITY`` once, at its first dispatch)."""
    import os

    if capability:
        os.environ["ATEN_CPU_CAPABILITY"] = capability


def platform_key(env: Environment) -> str:
    """What a verifier cannot set from inside its own process: torch, device, dtype,
    CPU capability and BLAS (threads and deterministic mode it sets with :func:`declared`),
    and TF32 when on: a CUDA run in TF32 replayed elsewhere needs its own calibration
    (its honest error is ~10^4 times that of one without)."""
    return f"torch={env.torch};device={env.device};dtype={env.dtype};" \
           f"cpu={env.cpu_capability};blas={env.blas}" + (";tf32=on" if env.tf32 else "")


def describe(env: Environment) -> str:
    return (f"torch {env.torch} on {env.device} ({env.dtype}"
            f"{', TF32' if env.tf32 else ''}), {env.threads} thread(s), "
            f"deterministic={'on' if env.deterministic else 'off'}, CPU {env.cpu_capability}, "
            f"BLAS {env.blas}")


@contextmanager
def declared(env: Environment | None, device: str = "cpu",
             emulated: str | None = None) -> Iterator[Environment]:
    """Run the block with the declared thread count, deterministic mode and (on CUDA)
    TF32 setting (restored after); yields the environment a replay on ``device`` runs
    in: with ``emulated`` (:func:`emulation`), that of the replay processes started with
    it. ``None`` (a proof that declares none) changes nothing."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if env is not None:
        if env.threads > MAX_THREADS:
            raise InputError(f"the proof declares {env.threads} threads; this verifier "
                             f"reproduces at most {MAX_THREADS}")
        torch.set_num_threads(env.threads)
        torch.use_deterministic_algorithms(env.deterministic)
        _set_tf32(env.tf32)
    here = current(device)
    if emulated:
        here = here.model_copy(update={"cpu_capability": emulated.upper()})
    try:
        yield here
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old_tf32
