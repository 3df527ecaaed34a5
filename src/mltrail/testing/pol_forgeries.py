"""Proof forgeries, built with real code, for tests, benchmarks and the demo.

Owns the adversary: :func:`forge_bundle` writes a bundle that is internally consistent
(files, digests, hash chain, epoch roots all recomputed) around whatever checkpoints
the forger chooses, and the spoofs of the PoL literature are built on it — the
interpolation spoofs (lr = 0 or the honest lr), reordered / dropped / substituted
checkpoints, edited hyperparameters, a re-signed copy, and a Zhang et al. (S&P 2022)
style adversarial-example spoof. Nothing here is used by the prover or the verifier.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mltrail._fs import atomic_write
from mltrail.pol.bundle import (
    Anchor,
    Header,
    Manifest,
    Record,
    epoch_groups,
    epoch_root,
    link_of,
    load_tensors,
    read_manifest,
    save_tensors,
    write_manifest,
)
from mltrail.pol.checks import expected_layout
from mltrail.pol.loopspec import LoopSpec
from mltrail.provenance.digest import digest_bytes, digest_json

State = dict[str, torch.Tensor]


def load_states(bundle: str | Path) -> tuple[Manifest, list[tuple[State, State]]]:
    """A bundle's manifest and every checkpoint's (model, optimizer) state."""
    folder = Path(bundle)
    man = read_manifest(folder)
    return man, [(load_tensors(folder, c.files["model"], c.digests["model"]),
                  load_tensors(folder, c.files["optim"], c.digests["optim"]))
                 for c in man.checkpoints()]


class Trainer:
    """An honest proof's own arithmetic, rebuilt as a forger who has the bundle and the
    data would: its exported model and loss, the committed data, the recorded batches
    (with the replay's code, :mod:`mltrail.pol.loopreplay`). For the reference task as
    ``pol train`` records it (exported programs, tensor data ``x``, ``y``)."""

    def __init__(self, bundle: str | Path, x: torch.Tensor, y: torch.Tensor) -> None:
        from mltrail.pol.limits import MAX_PARAMS
        from mltrail.pol.loopreplay import build_dataset, make_code, read_bundle

        self.folder = Path(bundle)
        self.man = read_manifest(self.folder)
        spec = self.man.header.training
        if not isinstance(spec, LoopSpec) or spec.program is None:
            raise ValueError("built for exported loop proofs (pol train's)")
        self.spec = spec
        self.code = make_code(spec, self.folder, self.man, [])
        self.dataset = build_dataset(spec, self.code, None, {"x": x, "y": y})
        _, self.batches, self.rng, _ = read_bundle(self.folder, spec, self.man, self.code,
                                                   MAX_PARAMS)

    def model(self, state: State) -> nn.Module:
        m: nn.Module = self.code.model()
        m.load_state_dict(state)
        return m

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = self.code.loss(out, target)
        return loss

    def lr_at(self, step: int) -> float:
        """The first group's learning rate at ``step`` (the declared schedule)."""
        from mltrail.pol.loopreplay import advance, scheduler_position
        from mltrail.pol.loopverify import _dummy

        opt, sched = _dummy(self.spec)
        if sched is not None:
            advance(sched, scheduler_position(self.spec, step, at_checkpoint=False))
        return float(opt.param_groups[0]["lr"])

    def replay(self, m0: State, o0: State, start: int, end: int,
               dataset: Any = None) -> tuple[State, State]:
        """Steps ``start..end-1`` from ``(m0, o0)`` (on ``dataset``, default the data)."""
        from mltrail.pol.loopreplay import replay_segment

        return replay_segment(self.spec, self.code, self.dataset if dataset is None
                              else dataset, m0, o0, self.batches, self.rng, start, end)

    def on(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        """A dataset of other tensors (a forger's perturbed data), unchecked."""
        from mltrail.pol.loopdata import ArrayDataset

        return ArrayDataset.of({"x": x, "y": y}, self.code.transform)


def forge_bundle(out: str | Path, header: Header, states: list[tuple[State, State]],
                 layout: list[tuple[str, int, int]] | None = None,
                 anchor: Callable[[int, bytes, int, str], Anchor | None] | None = None,
                 source: str | Path | None = None) -> Manifest:
    """Write a self-consistent bundle with ``states`` as its checkpoints.

    ``layout`` (default: what an honest recorder writes for ``header``) gives the record
    sequence; checkpoints are taken from ``states`` in order. Batch indices are the
    committed seeded order — for a user loop's proof, the ``source`` bundle's recorded
    indices and scheduler states, copied. Everything is re-hashed and re-chained.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if source is not None and (Path(source) / "program").is_dir():  # an exported loop's
        shutil.copytree(Path(source) / "program", folder / "program", dirs_exist_ok=True)
    spec = header.training
    man = Manifest(header=header, header_digest=digest_json(header.model_dump()))
    layout = layout if layout is not None else expected_layout(spec, header.k)
    src = read_manifest(source) if source is not None else None
    it = iter(states)
    ck = 0
    for n, (typ, step, epoch) in enumerate(layout):
        if typ == "checkpoint":
            model, optim = next(it)
            files = {"model": f"checkpoints/{n:06d}.model.safetensors",
                     "optim": f"checkpoints/{n:06d}.optim.safetensors"}
            digests = {"model": save_tensors(folder, files["model"], model),
                       "optim": save_tensors(folder, files["optim"], optim)}
            if src is not None and source is not None:
                old = src.checkpoints()[min(ck, len(src.checkpoints()) - 1)]
                if "sched" in old.files:
                    files["sched"] = f"checkpoints/{n:06d}.sched.json"
                    raw = (Path(source) / old.files["sched"]).read_bytes()
                    atomic_write(folder / files["sched"], raw)
                    digests["sched"] = digest_bytes(raw)
            ck += 1
        elif src is not None and source is not None:
            old = src.epoch_records()[epoch]
            files = {"indices": f"indices/epoch-{epoch:04d}.safetensors"}
            raw = (Path(source) / old.files["indices"]).read_bytes()
            atomic_write(folder / files["indices"], raw)
            digests = {"indices": digest_bytes(raw)}
        else:
            raise ValueError("a loop proof's forgery copies its batch indices: pass source")
        rec = Record(type=typ, seq=n, epoch=epoch, step=step, files=files,  # type: ignore[arg-type]
                     digests=digests, prev=man.chain_head)
        rec.link = link_of(rec)
        man.records.append(rec)
    for e, group in enumerate(epoch_groups(man.records)):
        root = epoch_root(group)
        receipt = anchor(e, root, len(group), man.header_digest) if anchor else None
        man.anchors.append(receipt or Anchor(epoch=e, root=root.hex(), count=len(group)))
    cks = man.checkpoints()
    man.final_model = cks[-1].digests["model"] if cks else None
    man.complete = True
    write_manifest(folder, man)
    return man


def _source(man: Manifest, honest: str | Path) -> Path:
    """The honest bundle, whose batch indices (and scheduler states) a forgery copies."""
    return Path(honest)


def _lerp(a: State, b: State, t: float) -> State:
    if t in (0.0, 1.0):  # exact endpoints: the forged proof ends on the stolen weights
        return {k: (a if t == 0.0 else b)[k].clone() for k in a}
    return {k: (a[k] + (b[k] - a[k]) * t) if a[k].is_floating_point() else b[k].clone()
            for k in a}


def interpolation_spoof(out: str | Path, honest: str | Path, *, lr: float | None,
                        anchor: Callable[[int, bytes, int, str], Anchor | None] | None = None
                        ) -> Manifest:
    """Claim the honest bundle's final model with checkpoints linearly interpolated from a
    fresh seeded init; ``lr=0`` is the reference-code spoof, ``lr=None`` keeps the honest
    learning rate. Optimizer state is written as zeros (or empty for lr=0).
    """
    man, states = load_states(honest)
    spec = man.header.training
    if lr is not None:
        spec = _with_lr(spec, lr)
    header = man.header.model_copy(update={"training": spec, "prover": "mallory",
                                           "note": "forged: interpolation"})
    w0: State = {k: v.clone() for k, v in states[0][0].items()}  # keep its init
    source = Path(honest)
    final = states[-1][0]
    n = len(states)
    forged = []
    for i in range(n):
        optim = {} if (i == 0 or lr == 0) else {k: torch.zeros_like(v)
                                                for k, v in states[i][1].items()}
        forged.append((_lerp(w0, final, i / (n - 1)), optim))
    return forge_bundle(out, header, forged, anchor=anchor, source=source)


def _with_lr(spec: LoopSpec, lr: float | None = None, scale: float = 1.0) -> LoopSpec:
    """A loop spec with every group's learning rate set to ``lr`` (or scaled)."""
    groups = [g.model_copy(update={"options": {**g.options, "lr": lr if lr is not None
                                               else float(g.options["lr"]) * scale}})
              for g in spec.optimizer.groups]
    return spec.model_copy(update={"optimizer": spec.optimizer.model_copy(
        update={"groups": groups})})


def tamper_states(out: str | Path, honest: str | Path, how: str, *, rechain: bool,
                  donor: str | Path | None = None) -> Manifest:
    """Reorder (swap two middle checkpoints), drop one, or substitute one from ``donor``.

    ``rechain=False`` edits the files behind the manifest's back (a naive forger);
    ``rechain=True`` writes a fully re-hashed, re-chained bundle.
    """
    man, states = load_states(honest)
    mid = len(states) // 2
    if how == "reorder":
        states[mid], states[mid + 1] = states[mid + 1], states[mid]
    elif how == "drop":
        del states[mid]
    elif how == "substitute":
        if donor is None:
            raise ValueError("substitute needs a donor bundle")
        states[mid] = load_states(donor)[1][mid]
    else:
        raise ValueError(how)
    if rechain:
        layout = expected_layout(man.header.training, man.header.k)
        if how == "drop":
            where = [i for i, r in enumerate(layout) if r[0] == "checkpoint"]
            del layout[where[mid]]
        return forge_bundle(out, man.header, states, layout=layout, source=_source(man, honest))
    shutil.copytree(honest, out)
    folder = Path(out)
    # the files change behind the manifest; their digests in it do not
    for c, (model, optim) in zip(man.checkpoints(), states, strict=False):
        save_tensors(folder, c.files["model"], model)
        save_tensors(folder, c.files["optim"], optim)
    return man


def edit_hyperparameters(out: str | Path, honest: str | Path, changes: dict[str, Any], *,
                         rechain: bool) -> Manifest:
    """Change optimizer settings in the manifest after training (naively or re-chained)."""
    man, states = load_states(honest)
    spec = man.header.training
    groups = [g.model_copy(update={"options": {**g.options, **changes}})
              for g in spec.optimizer.groups]  # the changes apply to every group
    training = spec.model_copy(update={"optimizer": spec.optimizer.model_copy(
        update={"groups": groups})})
    header = man.header.model_copy(update={"training": training})
    if rechain:
        return forge_bundle(out, header, states, source=_source(man, honest))
    shutil.copytree(honest, out)
    edited = man.model_copy(update={"header": header})
    write_manifest(Path(out), edited)
    return edited


def resign_copy(out: str | Path, honest: str | Path, prover: str,
                anchor: Callable[[int, bytes, int, str], Anchor | None] | None = None
                ) -> Manifest:
    """Someone else's honest proof under a new prover name, re-chained and re-anchored."""
    man, states = load_states(honest)
    header = man.header.model_copy(update={"prover": prover, "note": "mine, honestly"})
    return forge_bundle(out, header, states, anchor=anchor, source=_source(man, honest))


def adversarial_spoof(out: str | Path, honest: str | Path, x: torch.Tensor, y: torch.Tensor,
                      *, iters: int = 40, eps: float = 0.25, commit_perturbed: bool = False
                      ) -> tuple[Manifest, torch.Tensor]:
    """Zhang et al. style: interpolate the checkpoints, then perturb each batch so that
    the manifest's own step from W_t lands on W_{t+1} (gradient matching, ``iters`` Adam
    iterations on a perturbation bounded by ``eps``). Needs ``k = 1`` and one epoch in the
    honest bundle's spec so that every sample's perturbation is used by exactly one step.

    Returns the manifest and the perturbed inputs. ``commit_perturbed`` commits the
    digest of the perturbed data instead of the real one.
    """
    from mltrail.pol.loopdata import commit

    tr = Trainer(honest, x, y)
    man, states = load_states(honest)
    spec = tr.spec
    if man.header.k != 1 or spec.epochs != 1:
        raise ValueError("the adversarial spoof is built for k=1, one epoch")
    w0 = states[0][0]  # the init the ledger fixed: the forger keeps it
    n = len(states)
    targets = [_lerp(w0, states[-1][0], i / (n - 1)) for i in range(n)]
    xp = x.clone()
    forged: list[tuple[State, State]] = [(targets[0], {})]
    mom = float(spec.optimizer.groups[0].options.get("momentum", 0.0))
    for step in range(spec.total_steps):
        idx = torch.tensor(tr.batches[step], dtype=torch.int64)
        model = tr.model(targets[step])
        delta = _match_step(model, tr.loss, forged[-1][1], mom, tr.lr_at(step), x[idx],
                            y[idx], targets[step + 1], iters, eps)
        xp[idx] = (x[idx] + delta).clamp(0, 1)
        # commit to whatever the real step on the perturbed batch produces, from the target
        _, o1 = tr.replay(targets[step], forged[-1][1], step, step + 1, tr.on(xp, y))
        forged.append(({k: v.detach().clone() for k, v in targets[step + 1].items()}, o1))
    header = man.header.model_copy(update={"prover": "mallory", "note": "forged: adversarial"})
    if commit_perturbed:
        header = header.model_copy(update={"training": spec.model_copy(update={
            "data": commit(tr.on(xp, y))[0]})})
    return forge_bundle(out, header, forged, source=honest), xp


def _match_step(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                optim: State, mom: float, lr: float, xb: torch.Tensor, yb: torch.Tensor,
                target: State, iters: int, eps: float) -> torch.Tensor:
    """A perturbation of ``xb`` whose SGD step (lr, momentum buffers ``optim``) moves the
    model's parameters towards ``target``'s."""
    params = dict(model.named_parameters())
    bufs = {n: optim.get(f"{n}.momentum_buffer", torch.zeros_like(p)) for n, p in params.items()}
    want = {n: (p.detach() - target[n]) / lr for n, p in params.items()}  # desired direction
    delta = torch.zeros_like(xb, requires_grad=True)
    adam = torch.optim.Adam([delta], lr=0.02)
    for _ in range(iters):
        loss = loss_fn(model(xb + delta), yb)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        miss = torch.stack([(mom * bufs[n] + g - want[n]).pow(2).sum()
                            for n, g in zip(params, grads, strict=True)]).sum()
        adam.zero_grad()
        miss.backward()
        adam.step()
        with torch.no_grad():
            delta.clamp_(-eps, eps)
    return delta.detach()


def momentum_spoof(out: str | Path, honest: str | Path, x: torch.Tensor, y: torch.Tensor
                   ) -> Manifest:
    """Forge the optimizer state instead of the data (in the spirit of Fang et al.,
    EuroS&P 2023): for k = 1 and SGD with momentum μ, record at each interpolated
    checkpoint the momentum buffer m_t = ((W_t − W_{t+1}) / lr − g(W_t)) / μ, so that the
    replayed weights land exactly on W_{t+1}. The first step is honest (the buffer is
    empty at step 0). Only the optimizer-state comparison can catch it.
    """
    tr = Trainer(honest, x, y)
    man, states = load_states(honest)
    opts = tr.spec.optimizer
    mu = float(opts.groups[0].options.get("momentum", 0.0))
    if man.header.k != 1 or opts.name != "SGD" or mu == 0.0:
        raise ValueError("the momentum spoof is built for SGD with momentum and k=1")

    def grad_at(w: State, step: int) -> dict[str, torch.Tensor]:
        model = tr.model(w)
        params = dict(model.named_parameters())
        idx = torch.tensor(tr.batches[step], dtype=torch.int64)
        tr.loss(model(x[idx]), y[idx]).backward()
        return {n: p.grad.detach().clone() for n, p in params.items()
                if p.grad is not None}

    w0 = states[0][0]
    w1, o1 = tr.replay(w0, {}, 0, 1)  # the honest first step
    n = len(states)
    targets = [w0, w1] + [_lerp(w1, states[-1][0], i / (n - 2)) for i in range(1, n - 1)]
    forged: list[tuple[State, State]] = [(w0, {}), (w1, o1)]
    for t in range(1, n - 1):
        g = grad_at(targets[t], t)
        lr = tr.lr_at(t)
        m = {k: ((targets[t][k] - targets[t + 1][k]) / lr - g[k]) / mu for k in g}
        forged[t] = (targets[t], {f"{k}.momentum_buffer": v for k, v in m.items()})
        forged.append((targets[t + 1], {f"{k}.momentum_buffer": mu * m[k] + g[k] for k in g}))
    header = man.header.model_copy(update={"prover": "mallory", "note": "forged: momentum"})
    return forge_bundle(out, header, forged, source=honest)


FORGE_KINDS = ("interpolate", "zero-lr", "copy")


def forge_named(honest: str | Path, out: str | Path, how: str, prover: str) -> Manifest:
    """``mltrail pol forge``: one of :data:`FORGE_KINDS` built from ``honest`` into the new
    folder ``out`` (staged beside it, so a failure leaves nothing)."""
    import tempfile

    from mltrail.errors import InputError
    from mltrail.pol.bundle import read_manifest

    read_manifest(honest)
    out = Path(out)
    if out.exists():
        raise InputError(f"{out} exists; choose a new folder")
    if how not in FORGE_KINDS:
        raise InputError(f"--how must be {', '.join(FORGE_KINDS)}")
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        stage = Path(tmp) / "bundle"
        if how == "copy":
            man = resign_copy(stage, honest, prover)
        else:
            man = interpolation_spoof(stage, honest, lr=None if how == "interpolate" else 0.0)
        stage.rename(out)
    return man
