"""A training worker: computes its shard's gradient at the round's global state.

Owns :class:`Worker`, the class the coordinator starts as a Ray actor (plain Python, so
tests can also call it directly), and :class:`Context`, what an adversarial behaviour
(:mod:`mltrail.testing.distributed_adversaries`) may use. A worker computes with the
loop's exported programs (:func:`mltrail.distributed.polapi.program_code`), declares its
environment, and returns each update with its record: round, batch indices, the digest of
the state it started from and the digest of the update. It never aggregates, never sees
the challenge secret and never touches the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch

from mltrail.distributed import polapi
from mltrail.distributed.polapi import State


class Behaviour(Protocol):
    """How a (possibly dishonest) worker turns its honest gradient into what it sends."""

    def update(self, ctx: Context, round_: int, indices: Sequence[int], state: State,
               honest: State) -> State: ...


class Context:
    """What a worker knows: its id, the programs, the data, its own memory."""

    def __init__(self, wid: int, spec: Mapping[str, Any], files: Mapping[str, bytes],
                 tensors: Mapping[str, torch.Tensor], state0: State) -> None:
        self.wid = wid
        self.code = polapi.program_code(spec, files, state0)
        self.model = self.code.model()
        self.dataset = polapi.dataset_of(tensors, self.code.transform)
        self.memory: dict[str, Any] = {}

    def gradient(self, state: State, indices: Sequence[int]) -> State:
        return polapi.gradient(self.model, self.code.loss, self.dataset, state, indices)


class Worker:
    """One data-parallel worker (see the module doc); :meth:`load` gives it a run, so one
    actor can serve several runs."""

    def __init__(self, threads: int = 1) -> None:
        torch.set_num_threads(threads)
        self.ctx: Context | None = None
        self.behaviour: Behaviour | None = None

    def load(self, wid: int, spec: Mapping[str, Any], files: Mapping[str, bytes],
             tensors: Mapping[str, torch.Tensor], state0: State,
             behaviour: Behaviour | None = None) -> dict[str, Any]:
        """Take on run ``spec`` as worker ``wid``; returns the declared environment."""
        self.ctx = Context(wid, spec, files, tensors, state0)
        self.behaviour = behaviour
        env: dict[str, Any] = polapi.environment().model_dump()
        return env

    def compute(self, round_: int, state: State, indices: Sequence[int]
                ) -> tuple[dict[str, Any], State]:
        """(record, update) for this round: the gradient of the worker's shard."""
        if self.ctx is None:
            raise RuntimeError("the worker has no run loaded")
        honest = self.ctx.gradient(state, indices)
        upd = honest if self.behaviour is None else \
            self.behaviour.update(self.ctx, round_, indices, state, honest)
        record = {"round": round_, "worker": self.ctx.wid, "indices": list(indices),
                  "state": polapi.digest_state_dict(state),
                  "update": polapi.digest_state_dict(upd)}
        return record, upd
