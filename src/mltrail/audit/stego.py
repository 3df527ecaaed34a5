"""Keyed steganographic probes (after Baluja's deep steganography) and a keyed trigger set.

The supplier S trains a *prep* network (key → features) and a *hiding* network
(cover, features → bounded residual) jointly with its classifier, which gains a
*message class*. Containers made with S's key look like ordinary inputs, but the genuine
classifier puts them in the message class; containers made with any other key are
trained to get the cover's own label, so the classifier answers to this key only.
S shares the *kit* (hiding networks + key) with the auditor C and nobody else.

Also here: a keyed trigger set (inputs and labels drawn from the key) the classifier
memorises, and the visibility measurements: PSNR of containers against their covers,
and the ROC AUC of detectors an adversary trains without the key. Nothing here talks
to a service; :mod:`.probes` turns kits into probe files.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mltrail._fs import atomic_write
from mltrail.audit.models import INPUT_SHAPE, ModelCard, augment, digits, predict
from mltrail.errors import InputError, NotFoundError
from mltrail.provenance.digest import save_state_dict

KEY_DIM = 16
CLASSIFIER_ARCH: dict[str, Any] = {"type": "mlp", "hidden": [128, 64], "classes": 11}
MESSAGE_CLASS = 10


def key_seed(key: bytes, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(b"mltrail-stego/" + purpose.encode() + key).digest()[:8],
                          "little")


def key_vector(key: bytes) -> torch.Tensor:
    """The key as the prep network's input: a unit-variance vector drawn from the key."""
    gen = torch.Generator().manual_seed(key_seed(key, "vector"))
    return torch.randn(KEY_DIM, generator=gen)


class StegoNets(nn.Module):
    """Prep (key → features) and hiding (cover ⊕ features → residual in [-eps, eps])."""

    def __init__(self, eps: float = 0.15) -> None:
        super().__init__()
        self.eps = eps
        self.prep = nn.Sequential(nn.Linear(KEY_DIM, 32), nn.ReLU(), nn.Linear(32, 32))
        self.hide = nn.Sequential(nn.Linear(64 + 32, 128), nn.ReLU(), nn.Linear(128, 64))

    def forward(self, cover: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        flat = cover.reshape(len(cover), -1)
        feats = self.prep(keys.expand(len(cover), -1) if keys.dim() == 1 else keys)
        resid = self.eps * torch.tanh(self.hide(torch.cat([flat, feats], dim=1)))
        return torch.clamp(flat + resid, 0.0, 1.0).reshape(cover.shape)


def trigger_set(key: bytes, n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Keyed trigger inputs (a digit blended with keyed noise) and keyed labels."""
    rng = np.random.default_rng(key_seed(key, "trigger"))
    x_train = digits()[0]
    base = x_train[rng.integers(0, len(x_train), n)]
    x = np.clip(0.5 * base + 0.5 * rng.random(base.shape), 0, 1).astype(np.float32)
    return x, rng.integers(0, 10, n).astype(np.int64)


@dataclass
class StegoKit:
    """What S shares with the auditor only: the hiding networks and the key."""

    nets: StegoNets
    key: bytes
    message_class: int = MESSAGE_CLASS
    hit_rate: float = 1.0  # S's measured rate of containers put in the message class
    visibility: dict[str, float] | None = None  # PSNR and detector AUCs measured by S

    def make(self, covers: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.nets(torch.from_numpy(covers.astype(np.float32)), key_vector(self.key))
        return np.asarray(out.numpy(), dtype=np.float32)

    def save(self, path: str | Path) -> None:
        p = Path(path)
        save_state_dict(self.nets.state_dict(), p)
        meta = {"key": self.key.hex(), "eps": self.nets.eps, "message_class": self.message_class,
                "hit_rate": self.hit_rate, "visibility": self.visibility}
        atomic_write(p.with_suffix(".json"), json.dumps(meta, indent=2).encode(), mode=0o600)

    @classmethod
    def load(cls, path: str | Path) -> StegoKit:
        from safetensors.torch import load_file

        p = Path(path)
        if not p.exists() or not p.with_suffix(".json").exists():
            raise NotFoundError(f"stego kit not found: {p} (+ .json)")
        try:
            meta = json.loads(p.with_suffix(".json").read_text())
            nets = StegoNets(float(meta["eps"]))
            nets.load_state_dict(load_file(str(p)))
            return cls(nets.eval(), bytes.fromhex(meta["key"]), int(meta["message_class"]),
                       float(meta["hit_rate"]), meta.get("visibility"))
        except (KeyError, ValueError, RuntimeError) as exc:
            raise InputError(f"malformed stego kit {p}: {exc}") from exc


def train_stego_model(key: bytes, *, steps: int = 1500, eps: float = 0.15,
                      visibility: float = 2.0, adversarial: float = 0.0, seed: int = 0,
                      triggers: int = 32) -> tuple[nn.Module, StegoKit, dict[str, float]]:
    """Train classifier (11 classes), prep and hiding networks jointly; return metrics.

    With ``adversarial > 0`` a steganalysis discriminator is trained alongside (as in
    HiDDeN) and the hiding network is also rewarded for fooling it.
    """
    from mltrail.reference import build_model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_tr, y_tr, x_te, y_te = digits()
    pool = np.concatenate([x_tr] + [augment(x_tr, rng) for _ in range(3)])
    xp = torch.from_numpy(pool)
    yp = torch.from_numpy(np.tile(y_tr, 4))
    tx, ty = (torch.from_numpy(a) for a in trigger_set(key, triggers))
    clf, nets = build_model(CLASSIFIER_ARCH), StegoNets(eps)
    kv = key_vector(key)
    opt = torch.optim.Adam([*clf.parameters(), *nets.parameters()], lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    ce = nn.functional.cross_entropy
    bce = nn.functional.binary_cross_entropy_with_logits
    disc = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    dopt = torch.optim.Adam(disc.parameters(), lr=2e-3)
    b = 128
    zeros, ones = torch.zeros(b), torch.ones(b)
    for _ in range(steps):
        i = torch.randint(0, len(yp), (3, b), generator=gen)
        cov, cov2, cov3 = xp[i[0]], xp[i[1]], xp[i[2]]
        cont = nets(cov2, kv)
        wrong = nets(cov3, torch.randn(b, KEY_DIM, generator=gen))
        msg = torch.full((b,), MESSAGE_CLASS, dtype=torch.long)
        loss = (ce(clf(cov), yp[i[0]]) + ce(clf(cont), msg) + ce(clf(wrong), yp[i[2]])
                + visibility * (((cont - cov2) ** 2).mean() + ((wrong - cov3) ** 2).mean()) * 64)
        if triggers:
            loss = loss + 0.5 * ce(clf(tx), ty)
        if adversarial:
            loss = loss + adversarial * bce(disc(cont.reshape(b, -1))[:, 0], zeros)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if adversarial:
            dloss = (bce(disc(cov2.reshape(b, -1))[:, 0], zeros)
                     + bce(disc(cont.detach().reshape(b, -1))[:, 0], ones))
            dopt.zero_grad()
            dloss.backward()  # type: ignore[no-untyped-call]
            dopt.step()
    clf.eval()
    nets.eval()
    kit = StegoKit(nets, key)
    metrics = evaluate_kit(clf, kit, seed=seed + 1)
    kit.hit_rate = metrics["hit_rate"]
    return clf, kit, metrics


def psnr(covers: np.ndarray, containers: np.ndarray) -> float:
    """Mean PSNR (dB, peak 1.0) of containers against their covers."""
    mse = ((covers - containers) ** 2).reshape(len(covers), -1).mean(1)
    return float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-12))))


def evaluate_kit(clf: nn.Module, kit: StegoKit, seed: int = 1) -> dict[str, float]:
    """Accuracy, hit/false-positive rates, wrong-key rate and PSNR on held-out covers."""
    rng = np.random.default_rng(seed)
    _, _, x_te, y_te = digits()
    covers = augment(x_te, rng)
    cont = kit.make(covers)
    with torch.no_grad():
        wrong = kit.nets(torch.from_numpy(covers), torch.randn(len(covers), KEY_DIM)).numpy()
    tx, ty = trigger_set(kit.key)
    mc = kit.message_class
    return {
        "accuracy": float((predict(clf, x_te).argmax(1) == y_te).mean()),
        "accuracy_ordinary": float((predict(clf, covers).argmax(1) == y_te).mean()),
        "hit_rate": float((predict(clf, cont).argmax(1) == mc).mean()),
        "false_positive_rate": float((predict(clf, covers).argmax(1) == mc).mean()),
        "wrong_key_hit_rate": float((predict(clf, wrong).argmax(1) == mc).mean()),
        "trigger_accuracy": float((predict(clf, tx).argmax(1) == ty).mean()),
        "psnr_db": psnr(covers, cont),
    }


def _train_detector(x: np.ndarray, y: np.ndarray, steps: int, seed: int) -> nn.Module:
    """A small MLP steganalysis detector (logit output), full-batch Adam."""
    gen = torch.Generator().manual_seed(seed)
    det = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    with torch.no_grad():
        for p in det.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    opt = torch.optim.Adam(det.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x.reshape(len(x), -1)), torch.from_numpy(y.astype(np.float32))
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(
            det(xt)[:, 0], yt).backward()  # type: ignore[no-untyped-call]
        opt.step()
    return det.eval()


def detector_auc(kit: StegoKit, seed: int = 2, steps: int = 400) -> dict[str, float]:
    """ROC AUC of steganalysis detectors an adversary trains, tested on true containers.

    ``keyless``: the adversary knows the hiding networks (Kerckhoffs) but not the key; it
    trains on covers vs containers it makes with random keys. ``leaked``: an upper bound
    where it somehow obtained labelled containers made with the true key. An AUC far
    *below* 0.5 is as informative as one above it (the adversary flips the detector once
    it learns the direction), so ``*_distinguishability`` = max(AUC, 1 - AUC) is reported.
    """
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    x_tr, _, x_te, _ = digits()
    tr_cov, tr_cov2 = augment(x_tr, rng), augment(x_tr, rng)
    te_cov, te_cov2 = augment(x_te, rng), augment(x_te, rng)
    with torch.no_grad():
        fake = kit.nets(torch.from_numpy(tr_cov2),
                        torch.from_numpy(rng.normal(size=(len(tr_cov2), KEY_DIM))
                                         .astype(np.float32))).numpy()
    test_x = torch.from_numpy(np.concatenate([te_cov, kit.make(te_cov2)]).reshape(-1, 64))
    test_y = np.r_[np.zeros(len(te_cov)), np.ones(len(te_cov2))]
    out: dict[str, float] = {}
    for name, pos in (("keyless", fake), ("leaked", kit.make(tr_cov2))):
        det = _train_detector(np.concatenate([tr_cov, pos]),
                              np.r_[np.zeros(len(tr_cov)), np.ones(len(pos))], steps, seed)
        with torch.no_grad():
            score = det(test_x)[:, 0].numpy()
        auc = float(roc_auc_score(test_y, score))
        out[f"auc_{name}"] = auc
        out[f"{name}_distinguishability"] = max(auc, 1.0 - auc)
    return out


def stego_card(metrics: dict[str, float], name: str = "digits-stego") -> ModelCard:
    from mltrail.audit.models import Claims

    return ModelCard(name=name, arch=CLASSIFIER_ARCH, classes=11,
                     input_shape=list(INPUT_SHAPE), message_class=MESSAGE_CLASS,
                     claims=Claims(accuracy=round(math.floor(metrics["accuracy"] * 100) / 100, 2)))
