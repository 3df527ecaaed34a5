"""The programs of an exported loop proof: written by the recorder, read by the verifier.

Owns :func:`export_programs` (the recorder exports the model on a sample batch, a loss of
the user's own on the model's output, and an :class:`~mltrail.pol.loopdata.ArrayDataset`'s
transform on one item; checks that each program computes bitwise what the eager code
computes; writes ``program/*.json`` and constants into the bundle) and
:class:`ProgramCode` (the verifier's stand-in for the prover's code: the model, loss and
transform rebuilt from those files by :func:`mltrail.pol.loopexport.load_program`, with
the same interface as :class:`mltrail.pol.loopreplay.Code`), and :func:`program_init`,
the init check that needs no code. Nothing here imports the
prover's Python; the safety of loading is :mod:`mltrail.pol.loopexport`'s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from mltrail._fs import atomic_write
from mltrail.errors import InputError, VerificationError
from mltrail.pol.loopexport import (
    LossModule,
    TransformModule,
    export,
    load_program,
    same_function,
    serialize,
    vocabulary_loss,
)
from mltrail.pol.loopspec import LoopSpec, LossSpec, ProgramFile, Programs
from mltrail.provenance.digest import digest_bytes, save_state_dict


def _write(out: Path, role: str, ep: torch.export.ExportedProgram) -> ProgramFile:
    raw, constants = serialize(ep)
    rel = f"program/{role}.json"
    atomic_write(out / rel, raw, durable=False)
    pf = ProgramFile(file=rel, digest=digest_bytes(raw))
    if constants:
        crel = f"program/{role}.safetensors"
        save_state_dict(constants, out / crel)
        pf.constants, pf.constants_digest = crel, digest_bytes((out / crel).read_bytes())
    return pf


def _sample(dataset: Any, batch_sampler: Any) -> Any:
    """A batch built like the loader builds one, from the first items (no RNG drawn)."""
    size = max(2, int(getattr(batch_sampler, "batch_size", None) or 2))
    batch = default_collate([dataset[i] for i in range(min(len(dataset), size))])
    if not isinstance(batch, list | tuple) or len(batch) != 2 or not all(
            isinstance(b, torch.Tensor) for b in batch):
        raise InputError("an exported proof needs batches of (inputs, targets) tensors")
    return batch


def export_programs(out: Path, model: nn.Module, loss: Any, dataset: Any, own_loss: bool,
                    batch_sampler: Any) -> Programs:
    """Export model, own loss and transform into ``out/program/`` (see module doc)."""
    from mltrail.pol.loopdata import ArrayDataset

    x, y = _sample(dataset, batch_sampler)
    ep = export(model, (x,), dynamic_batch=True)
    mpf = _write(out, "model", ep)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    program = load_program((out / mpf.file).read_bytes(), state, _constants(out, mpf))
    if not same_function(program, model, (x,)):
        raise InputError("the exported model does not compute what the model computes "
                         "(outputs or gradients differ); record with trusted_code=True")
    lpf = None
    if own_loss:
        if not callable(loss):
            raise InputError(f"loss {loss!r} is neither in the vocabulary nor a function")
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            sample_out = copy.deepcopy(model)(x).detach()
        lep = export(LossModule(loss), (sample_out, y), dynamic_batch=True)
        lpf = _write(out, "loss", lep)
        lprog = load_program((out / lpf.file).read_bytes(), {}, _constants(out, lpf))
        if not torch.equal(lprog(sample_out, y), loss(sample_out, y)):
            raise InputError("the exported loss does not compute what the loss computes")
    tpf = None
    if isinstance(dataset, ArrayDataset) and dataset._fn is not None:
        row = next(iter(dataset.tensors.values()))[0]
        tep = export(TransformModule(dataset._fn), (row,), dynamic_batch=False)
        tpf = _write(out, "transform", tep)
        tprog = load_program((out / tpf.file).read_bytes(), {}, _constants(out, tpf))
        rows = next(iter(dataset.tensors.values()))[:4]
        if not all(torch.equal(tprog(r), dataset._fn(r)) for r in rows):
            raise InputError("the exported transform does not compute what it computes")
    return Programs(torch=torch.__version__, model=mpf, loss=lpf, transform=tpf)


def _constants(folder: Path, pf: ProgramFile) -> dict[str, torch.Tensor]:
    from mltrail.pol.bundle import load_tensors
    from mltrail.pol.loopexport import MAX_CONSTANT_VALUES

    if pf.constants is None or pf.constants_digest is None:
        return {}
    got = load_tensors(folder, pf.constants, pf.constants_digest, None,
                       8 * MAX_CONSTANT_VALUES + (1 << 16))
    if sum(t.numel() for t in got.values()) > MAX_CONSTANT_VALUES:
        raise VerificationError("program: more constants than any model needs")
    return got


def _read(folder: Path, pf: ProgramFile) -> bytes:
    from mltrail.pol.bundle import bundle_path
    from mltrail.pol.loopexport import MAX_PROGRAM_BYTES

    path = bundle_path(folder, pf.file)
    if path.stat().st_size > MAX_PROGRAM_BYTES:
        raise VerificationError(f"{pf.file} is larger than any model graph")
    raw = path.read_bytes()
    if digest_bytes(raw) != pf.digest:
        raise VerificationError(f"bundle file {pf.file} does not match its digest in the "
                                "manifest")
    return raw


class ProgramCode:
    """The model, loss and transform of an exported proof, rebuilt from the bundle's
    programs (the interface of :class:`mltrail.pol.loopreplay.Code`)."""

    def __init__(self, spec: LoopSpec, folder: Path, state: Mapping[str, torch.Tensor]
                 ) -> None:
        assert spec.program is not None
        self.spec, p = spec, spec.program
        self._model = load_program(_read(folder, p.model), state, _constants(folder, p.model))
        self.loss: Callable[..., torch.Tensor]
        if p.loss is not None:
            if spec.loss is not None:
                raise VerificationError("the proof names a vocabulary loss and a loss program")
            self.loss = load_program(_read(folder, p.loss), {}, _constants(folder, p.loss))
        elif isinstance(spec.loss, LossSpec):
            try:
                self.loss = vocabulary_loss(spec.loss.name, spec.loss.kwargs)
            except InputError as exc:
                raise VerificationError(exc.message) from exc
        else:
            raise VerificationError("the proof names no loss")
        self.transform: Callable[[torch.Tensor], torch.Tensor] | None = None
        if p.transform is not None:
            self.transform = load_program(_read(folder, p.transform), {},
                                          _constants(folder, p.transform))
        self.load = None

    def model(self) -> nn.Module:
        import warnings

        with warnings.catch_warnings():  # torch's treespec copy warns of its own deprecation
            warnings.simplefilter("ignore", FutureWarning)
            return copy.deepcopy(self._model)


def program_init(man: Any, code: Any, w0: Mapping[str, torch.Tensor]
                 ) -> tuple[dict[str, Any], str | None]:
    """The init check of an exported proof: with the scheme ``mltrail-fanin/1`` and a
    seed, every parameter of checkpoint 0 is exactly what the scheme draws (no code of the
    prover's runs); with scheme ``prover`` the initial weights are the prover's choice."""
    from mltrail.pol.loopexport import INIT_SCHEME, reinit
    from mltrail.pol.loopreplay import _check

    init = man.header.init
    if init.scheme == "prover" and init.seed is None:
        return _check("init", True, "no init seed committed: the initial weights are the "
                      "prover's choice"), "unseeded"
    if init.scheme != INIT_SCHEME or init.seed is None:
        return _check("init", False, f"init scheme {init.scheme!r} is not {INIT_SCHEME} with "
                      "a seed, nor 'prover'"), None
    params = {n: w0[n] for n, _ in code.model().named_parameters() if n in w0}
    want = reinit(params, init.seed)
    out_params = [[n, list(t.shape)] for n, t in params.items()]
    bad = [n for n, t in params.items() if not torch.equal(t, want[n])]
    if bad or not params:
        return _check("init", False, f"initial weights are NOT {INIT_SCHEME} from seed "
                      f"{init.seed} ({', '.join(bad[:3])})"), None
    check = _check("init", True, f"every parameter at step 0 is exactly {INIT_SCHEME} from "
                   f"seed {init.seed} (buffers are the prover's)")
    check["params"] = out_params  # what the start anchor binds (checked by the parent)
    return check, "seed"
