"""Three users' own training loops, recorded with :class:`mltrail.pol.loop.LoopRecorder`.

Stands in for code a user writes (it is importable, so a verifier can import the same
factories, losses and transforms by path and pin their source): a small ResNet trained
with Adam on two parameter groups and a cosine schedule, an MLP on tabular numpy data
with a custom loss and a transform, and a tiny transformer (with dropout, so the RNG
state is recorded) on a token-sequence task. Each ``record_*`` function is an ordinary
loop with the recorder's three lines added. Used by tests, the bench and the demo;
nothing in the prover or verifier depends on it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from mltrail.pol.loop import LoopRecorder, record_loop
from mltrail.pol.loopdata import ArrayDataset

# --------------------------------------------------------------------------- models


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip: nn.Module = nn.Identity() if stride == 1 and cin == cout else \
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + self.skip(x))


class SmallResNet(nn.Module):
    def __init__(self, width: int = 4, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.body = nn.Sequential(Block(width, width, 1), Block(width, 2 * width, 2))
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.body(self.stem(x)).mean(dim=(2, 3)))
        return out


def make_resnet(width: int = 4, classes: int = 4) -> nn.Module:
    return SmallResNet(width, classes)


def make_mlp(features: int = 10, hidden: int = 16, classes: int = 3) -> nn.Module:
    return nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, classes))


class TinyTransformer(nn.Module):
    def __init__(self, vocab: int = 12, dim: int = 16, length: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(length, dim))
        self.layer = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.1, batch_first=True)
        self.out = nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.out(self.layer(self.embed(tokens) + self.pos[:tokens.shape[1]]))
        return out


def make_transformer(vocab: int = 12, dim: int = 16, length: int = 8) -> nn.Module:
    return TinyTransformer(vocab, dim, length)


# --------------------------------------------------------------------------- losses


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = nn.functional.cross_entropy(logits, target)
    return out


def smooth_margin_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A custom loss: label-smoothed cross-entropy plus a penalty on large logits."""
    ce = nn.functional.cross_entropy(logits, target, label_smoothing=0.1)
    return ce + 1e-3 * logits.pow(2).mean()


def token_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                    target.reshape(-1))
    return out


def standardise(row: torch.Tensor) -> torch.Tensor:
    """The tabular transform: centre and scale each feature (fixed constants)."""
    return (row - 0.5) * 2.0


# --------------------------------------------------------------------------- data


def image_data(n: int = 48, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.randn(n, 3, 8, 8, generator=g) * 0.5
    x[:, y % 3, :4, :4] += 1.0  # a learnable signal
    return TensorDataset(x, y)


def tabular_data(n: int = 96, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 10)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > x[:, 2] + 0.5).astype(np.int64) + (x[:, 3] > 0.8)
    return ArrayDataset(x=x, y=y.astype(np.int64), transform=standardise)


def load_sample(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A folder dataset's ``load``: one ``.npy`` row of 10 features and a label."""
    row = np.load(path)
    return torch.from_numpy(row[:10].astype(np.float32)), torch.tensor(int(row[10]))


def write_folder(root: Path, n: int = 32, seed: int = 0) -> Path:
    """A folder of ``n`` sample files (what a user's data on disk looks like)."""
    rows = tabular_data(n=n, seed=seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        x, y = rows.tensors["x"][i].numpy(), rows.tensors["y"][i].numpy()
        np.save(root / f"sample-{i:04d}.npy", np.concatenate([x.astype(np.float64), [y]]))
    return root


def token_data(n: int = 64, length: int = 8, vocab: int = 12, seed: int = 0
               ) -> TensorDataset:
    """Reverse a sequence: inputs are random tokens, targets the same tokens reversed."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (n, length), generator=g)
    return TensorDataset(x, x.flip(1))


# --------------------------------------------------------------------------- loops

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _loop(rec: LoopRecorder, model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
          loss_fn: Loss, epochs: int, per_epoch_sched: bool = False,
          hook: Callable[[int], None] | None = None) -> None:
    """The users' loop: the usual five lines, plus ``rec.step()``."""
    for _ in range(epochs):
        for xb, yb in rec.loader:
            if hook is not None:
                hook(rec.steps_done)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            if sched is not None and not per_epoch_sched:
                sched.step()
            rec.step()
        if sched is not None and per_epoch_sched:
            sched.step()


def record_resnet(out: str | Path, *, seed: int = 0, epochs: int = 2, k: int = 2,
                  **options: Any) -> Path:
    """Small ResNet, Adam with two parameter groups (body and head), cosine schedule."""
    torch.manual_seed(seed)
    model = make_resnet()
    head = [p for n, p in model.named_parameters() if n.startswith("head")]
    body = [p for n, p in model.named_parameters() if not n.startswith("head")]
    opt = torch.optim.Adam([{"params": body, "lr": 3e-3},
                            {"params": head, "lr": 1e-2, "weight_decay": 1e-4}])
    data = image_data(seed=seed)
    loader = DataLoader(data, batch_size=16, sampler=RandomSampler(
        data, generator=torch.Generator().manual_seed(seed)))
    steps = epochs * len(loader)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=1e-4)
    with record_loop(out, model, opt, loader, model_factory=make_resnet,
                     loss=cross_entropy, scheduler=sched, epochs=epochs, k=k,
                     init_seed=seed, **options) as rec:
        _loop(rec, model, opt, sched, cross_entropy, epochs)
    return Path(out)


def record_mlp(out: str | Path, *, seed: int = 0, epochs: int = 3, k: int = 3,
               loss: Loss = smooth_margin_loss, **options: Any) -> Path:
    """MLP on tabular numpy data, a custom loss, SGD + momentum, StepLR every epoch."""
    torch.manual_seed(seed)
    model = make_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    loader = DataLoader(tabular_data(seed=seed), batch_size=16, shuffle=True)
    with record_loop(out, model, opt, loader, model_factory=make_mlp, loss=loss,
                     scheduler=sched, scheduler_every="epoch", epochs=epochs, k=k,
                     **options) as rec:
        _loop(rec, model, opt, sched, loss, epochs, per_epoch_sched=True,
              hook=options.get("hook"))
    return Path(out)


def record_transformer(out: str | Path, *, seed: int = 0, epochs: int = 2, k: int = 2,
                       **options: Any) -> Path:
    """Tiny transformer (dropout 0.1) reversing token sequences, AdamW, no schedule."""
    torch.manual_seed(seed)
    model = make_transformer()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    loader = DataLoader(token_data(seed=seed), batch_size=16, shuffle=True)
    with record_loop(out, model, opt, loader, model_factory=make_transformer,
                     loss=token_loss, epochs=epochs, k=k, init_seed=seed, **options) as rec:
        _loop(rec, model, opt, None, token_loss, epochs)
    return Path(out)


def loop_data(bundle: str | Path) -> dict[str, torch.Tensor]:
    """The tensors a recorded example loop consumed (for its verifier)."""
    from mltrail.pol.bundle import read_manifest
    from mltrail.pol.loopdata import tensors_of
    from mltrail.provenance.digest import digest_state_dict

    want = read_manifest(bundle).header.data
    makers: list[Callable[..., Any]] = [image_data, tabular_data, token_data]
    for make in makers:
        for seed in range(64):
            tensors = tensors_of(make(n=want.n, seed=seed))
            if tensors is not None and digest_state_dict(tensors) == want.digest:
                return tensors
    raise ValueError("not one of the example loops' data")
